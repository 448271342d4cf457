import { join } from 'node:path';

import { packageRoot } from '../../src/package/root.js';

/** The repository root (tests run from dist/, fixtures stay in the source tree). */
export const repoRoot = packageRoot;

/** Path of a file under test/fixtures/. */
export function fixture(...parts: string[]): string {
  return join(repoRoot, 'test', 'fixtures', ...parts);
}

/** The built entry points, for tests that run the real binaries. */
export const bin = {
  es2d: join(repoRoot, 'dist', 'src', 'daemon', 'main.js'),
  es2ctl: join(repoRoot, 'dist', 'src', 'cli', 'main.js'),
};
