// stats-memory: RSS growth over 10,000 bulk stats calls (the call es2d makes each cycle) on the real
// libvirtd with 30 domains, in a child process of its own. The foundation issue asks that such a
// loop not grow memory without bound; the checkpoints show whether it levels off.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

import type { Bench } from './bench.js';

const run = promisify(execFile);

export const statsMemory: Bench = {
  name: 'stats-memory',
  rows: ['stats-memory'],
  async run(ctx) {
    const fleet = await ctx.fleet();
    const calls = ctx.quick ? 1000 : 10_000;
    const child = new URL('./stats-memory-child.js', import.meta.url).pathname;
    const { stdout } = await run(process.execPath, ['--expose-gc', child, String(calls), '5'], { maxBuffer: 1 << 20 });
    const out = JSON.parse(stdout) as { warmup: number; records: number; startMiB: number; points: { calls: number; rssMiB: number }[] };
    const end = (out.points.at(-1) as { rssMiB: number }).rssMiB;
    const growth = end - out.startMiB;
    return [{
      name: 'stats-memory',
      ratio: end / out.startMiB,
      anchor: `RSS after ${out.warmup} warm-up calls (${out.startMiB.toFixed(1)} MiB), same process, full GC before each reading`,
      detail: `RSS grew ${growth >= 0 ? '+' : ''}${growth.toFixed(1)} MiB over ${calls} bulk calls of ${out.records} domain records `
        + `(${fleet.uuids.length} bench domains); RSS at ${out.points.map((p) => `${p.calls}: ${p.rssMiB.toFixed(1)}`).join(', ')} MiB`,
    }];
  },
};
