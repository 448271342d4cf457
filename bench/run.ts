// `npm run bench [-- --only a,b] [-- --quick]`: runs the benchmarks of issue 9, prints a table and
// writes bench/results.json (the figures only: a benchmark that cannot run here is printed with
// the reason and left out, never given a number). docs/BENCHMARKS.md says how to read them.

import { writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

import { repoRoot } from '../test/helpers/paths.js';
import { apiRead } from './api-read.js';
import { applyLatency } from './apply-latency.js';
import { met, type Bench, type Result, type Row } from './bench.js';
import { Context, Unavailable } from './context.js';
import { es2dResources } from './es2d-resources.js';
import { hookOverhead } from './hook-overhead.js';
import { fmt } from './measure.js';
import { statsCycle } from './stats-cycle.js';
import { statsMemory } from './stats-memory.js';
import { statsPerDomain } from './stats-per-domain.js';
import { xmlApply } from './xml-apply.js';

// Order matters: the pure benchmark first, then those that share the fleet of domains, and the
// hook last because it reloads libvirtd.
const BENCHES: Bench[] = [xmlApply, statsCycle, statsPerDomain, statsMemory, apiRead, applyLatency, es2dResources, hookOverhead];

const USAGE = `usage: npm run bench [-- --only NAME[,NAME...]] [-- --quick] [-- --profile DIR]
  --only     run these benchmarks (or rows) only: ${BENCHES.map((b) => b.name).join(', ')}
  --quick    fewer rounds and shorter runs (a smoke test; figures are noisier)
  --profile  every es2d started writes a V8 CPU profile into DIR when it stops`;

interface Options {
  only: Set<string> | null;
  quick: boolean;
  profileDir: string | undefined;
}

function parseArgs(argv: string[]): Options {
  const options: Options = { only: null, quick: false, profileDir: undefined };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    if (a === '--quick') options.quick = true;
    else if (a === '--profile') {
      options.profileDir = argv[++i];
      if (options.profileDir === undefined) throw new Error('--profile needs a directory');
      options.profileDir = resolve(options.profileDir);
    } else if (a === '--only' || a.startsWith('--only=')) {
      const list = a === '--only' ? argv[++i] : a.slice('--only='.length);
      if (list === undefined || list === '') throw new Error('--only needs a comma-separated list');
      options.only = new Set(list.split(',').map((s) => s.trim()).filter((s) => s !== ''));
    } else if (a === '-h' || a === '--help') {
      process.stdout.write(`${USAGE}\n`);
      process.exit(0);
    } else throw new Error(`unknown argument ${a}`);
  }
  if (options.only !== null) {
    const known = new Set(BENCHES.flatMap((b) => [b.name, ...b.rows]));
    const unknown = [...options.only].filter((n) => !known.has(n));
    if (unknown.length > 0) throw new Error(`unknown benchmark ${unknown.join(', ')}`);
  }
  return options;
}

interface Outcome {
  bench: string;
  rows: Row[];
  /** Why it did not run (unavailable here) or failed. */
  skipped?: string;
  failed?: string;
}

function table(outcomes: Outcome[]): string {
  const lines: string[][] = [['name', 'ratio', 'goal', 'met?', 'detail']];
  for (const o of outcomes) {
    if (o.skipped !== undefined || o.failed !== undefined) {
      lines.push([o.bench, '-', '-', o.failed !== undefined ? 'FAILED' : 'skipped', o.failed ?? o.skipped ?? '']);
      continue;
    }
    for (const r of o.rows) {
      const ok = met(r);
      lines.push([
        r.name,
        r.unit === undefined ? fmt(r.ratio) : `${fmt(r.ratio, r.unit === 'MB' ? 1 : 3)} ${r.unit}`,
        r.goal?.text ?? '(none)',
        ok === null ? '-' : ok ? 'yes' : 'NO',
        r.detail,
      ]);
    }
  }
  const widths = [0, 1, 2, 3].map((c) => Math.max(...lines.map((l) => (l[c] as string).length)));
  return lines.map((l) => l.map((cell, c) => (c < 4 ? cell.padEnd(widths[c] as number) : cell)).join('  ')).join('\n');
}

async function main(): Promise<number> {
  let options: Options;
  try {
    options = parseArgs(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`bench: ${(err as Error).message}\n${USAGE}\n`);
    return 2;
  }
  const ctx = new Context({ quick: options.quick, profileDir: options.profileDir });
  let interrupted = false;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (interrupted) return;
    interrupted = true;
    process.stderr.write(`bench: ${signal}: cleaning up\n`);
    void ctx.cleanup().finally(() => process.exit(130));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  const selected = BENCHES.filter((b) => options.only === null || options.only.has(b.name) || b.rows.some((r) => options.only!.has(r)));
  const outcomes: Outcome[] = [];
  try {
    for (const bench of selected) {
      if (ctx.interrupted) break;
      process.stderr.write(`bench: ${bench.name} ...\n`);
      const t0 = Date.now();
      try {
        let rows: Row[];
        const mark = ctx.connectionMark();
        try {
          rows = await ctx.scoped(() => bench.run(ctx));
        } catch (err) {
          // Other tests on a shared machine kill and restart libvirtd: one more try on a new
          // connection (the fleet's QEMU processes outlive libvirtd, which finds them again).
          if (err instanceof Unavailable || ctx.interrupted || !ctx.lostSince(mark)) throw err;
          process.stderr.write(`bench: ${bench.name}: the libvirt connection was lost (${(err as Error).message}); running it again\n`);
          rows = await ctx.scoped(() => bench.run(ctx));
        }
        if (options.only !== null && !options.only.has(bench.name)) rows = rows.filter((r) => options.only!.has(r.name));
        const disturbed = ctx.takeDisturbance();
        if (disturbed !== undefined) throw new Error(disturbed);
        outcomes.push({ bench: bench.name, rows });
      } catch (caught) {
        // A disturbance noted by the bench explains a failure better than its symptom does.
        const disturbed = ctx.takeDisturbance();
        const err = disturbed === undefined ? caught : new Error(disturbed);
        if (err instanceof Unavailable) outcomes.push({ bench: bench.name, rows: [], skipped: err.message });
        else {
          outcomes.push({ bench: bench.name, rows: [], failed: (err as Error).message });
          process.stderr.write(`bench: ${bench.name} failed: ${(err as Error).stack ?? String(err)}\n`);
        }
      }
      process.stderr.write(`bench: ${bench.name} done in ${((Date.now() - t0) / 1000).toFixed(0)} s\n`);
    }
  } finally {
    await ctx.cleanup();
  }

  process.stdout.write(`${table(outcomes)}\n`);
  const results: Result[] = outcomes.flatMap((o) => o.rows.map(({ name, ratio, anchor, detail }) => ({ name, ratio, anchor, detail })));
  const file = join(repoRoot, 'bench', 'results.json');
  writeFileSync(file, `${JSON.stringify(results, null, 2)}\n`);
  process.stdout.write(`\nwrote ${results.length} result(s) to ${file}${options.quick ? ' (--quick: fewer rounds, noisier)' : ''}\n`);
  return outcomes.some((o) => o.failed !== undefined) ? 1 : 0;
}

process.exitCode = await main();
