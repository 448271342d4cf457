// `npm run test:reliability`: runs the reliability tier with a fresh figures file, then prints the
// figures summary; exits with the tests' status.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { FIGURES_ENV } from './figures.js';
import { formatSummary, readFigures } from './summary.js';

const here = dirname(fileURLToPath(import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'es2-reliability-'));
const file = join(dir, 'figures.jsonl');
const result = spawnSync(process.execPath, [
  '--test', '--test-concurrency=1', '--test-reporter=spec', ...process.argv.slice(2).length > 0 ? process.argv.slice(2) : [here],
], { stdio: 'inherit', env: { ...process.env, [FIGURES_ENV]: file } });
process.stdout.write(`\n${formatSummary(readFigures(file))}`);
rmSync(dir, { recursive: true, force: true });
process.exitCode = result.status ?? 1;
