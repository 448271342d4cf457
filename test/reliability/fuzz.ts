// fast-check runs for the reliability suite: a fixed seed (ES2_FUZZ_SEED overrides it) printed
// before every property, a fixed number of runs and a time limit, and every counterexample kept as
// a regression case under test/reliability/regressions/ (JSON: property, seed, path, input), which
// the same test file replays as plain tests before fuzzing again.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { it } from 'node:test';

import fc from 'fast-check';

import { repoRoot } from '../helpers/paths.js';
import type { Tally } from './figures.js';

export const DEFAULT_SEED = 20_260_427;
export const FUZZ_SEED = process.env.ES2_FUZZ_SEED === undefined ? DEFAULT_SEED : Number(process.env.ES2_FUZZ_SEED);
export const REGRESSIONS_DIR = join(repoRoot, 'test', 'reliability', 'regressions');

export interface Regression<T> {
  property: string;
  seed: number;
  path: string | null;
  input: T;
  error: string;
  file: string;
}

export interface FuzzOptions {
  numRuns: number;
  /** Whole property, shrinking included. */
  timeLimitMs: number;
  tally: Tally;
}

function caseFile(property: string, input: unknown): string {
  const hash = createHash('sha256').update(JSON.stringify(input) ?? 'undefined').digest('hex').slice(0, 12);
  return join(REGRESSIONS_DIR, `${property}-${hash}.json`);
}

/**
 * Checks `check` on `numRuns` inputs of `arbitrary` (seeded). A failure writes the shrunk
 * counterexample as a regression file and fails with fast-check's report (seed and path included).
 */
export async function fuzz<T>(property: string, arbitrary: fc.Arbitrary<T>, check: (input: T) => Promise<void> | void, options: FuzzOptions): Promise<void> {
  console.log(`# fuzz ${property}: seed=${FUZZ_SEED} numRuns=${options.numRuns} (replay: ES2_FUZZ_SEED=${FUZZ_SEED})`);
  const details = await fc.check(fc.asyncProperty(arbitrary, async (input) => {
    options.tally.requestsFuzzed++;
    await check(input);
  }), { seed: FUZZ_SEED, numRuns: options.numRuns, interruptAfterTimeLimit: options.timeLimitMs, markInterruptAsFailure: false });
  if (details.interrupted) console.log(`# fuzz ${property}: stopped by the time limit after ${details.numRuns} runs`);
  if (!details.failed) return;
  const input = details.counterexample?.[0] as T;
  const file = caseFile(property, input);
  mkdirSync(REGRESSIONS_DIR, { recursive: true });
  const error = details.errorInstance instanceof Error ? details.errorInstance.message : String(details.errorInstance);
  writeFileSync(file, `${JSON.stringify({ property, seed: details.seed, path: details.counterexamplePath, input, error }, null, 2)}\n`);
  throw new Error(`${fc.defaultReportMessage(details) ?? `property ${property} failed`}\nfailure: ${error}\nkept as a regression case: ${file}`);
}

/** The stored counterexamples of one property. */
export function regressions<T>(property: string): Regression<T>[] {
  if (!existsSync(REGRESSIONS_DIR)) return [];
  return readdirSync(REGRESSIONS_DIR)
    .filter((f) => f.startsWith(`${property}-`) && f.endsWith('.json'))
    .sort()
    .map((f) => ({ ...(JSON.parse(readFileSync(join(REGRESSIONS_DIR, f), 'utf8')) as Omit<Regression<T>, 'file'>), file: f }));
}

/** One plain test per stored counterexample of `property` (call inside a describe). */
export function replayRegressions<T>(property: string, check: (input: T) => Promise<void> | void): void {
  for (const r of regressions<T>(property)) {
    it(`regression ${r.file} (seed ${r.seed}): ${r.error.split('\n')[0]!.slice(0, 100)}`, async () => {
      await check(r.input);
    });
  }
}
