// The stats-memory loop in a process of its own (run with --expose-gc), so that nothing else the
// bench does moves its RSS: `node --expose-gc stats-memory-child.js CALLS CHECKPOINTS`. Makes the
// bulk call es2d makes (COLLECT_STATS, COLLECT_FLAGS) CALLS times after a warm-up and prints one
// JSON line: RSS in MiB after a full GC at the start and at each checkpoint.
import { Connection } from '../src/libvirt/index.js';
import { COLLECT_FLAGS, COLLECT_STATS } from '../src/stats/index.js';
import { SYSTEM_URI } from '../test/helpers/libvirtd.js';

const calls = Number(process.argv[2]);
const checkpoints = Number(process.argv[3]);
const gc = (globalThis as { gc?: () => void }).gc;
if (!Number.isSafeInteger(calls) || !Number.isSafeInteger(checkpoints) || checkpoints < 1 || gc === undefined) {
  process.stderr.write('usage: node --expose-gc stats-memory-child.js CALLS CHECKPOINTS\n');
  process.exit(2);
}
const rss = (): number => {
  gc();
  return process.memoryUsage().rss / 1048576;
};

const conn = await Connection.open(SYSTEM_URI, { events: false });
// Warm-up: JIT, libvirt's client buffers and the allocator's arenas reach their working size.
const warmup = Math.min(200, Math.ceil(calls / 10));
let records = 0;
for (let i = 0; i < warmup; i++) records = (await conn.getAllDomainStats(COLLECT_STATS, COLLECT_FLAGS)).length;
const start = rss();
const points: { calls: number; rssMiB: number }[] = [];
const step = Math.ceil(calls / checkpoints);
for (let done = 0; done < calls;) {
  const n = Math.min(step, calls - done);
  for (let i = 0; i < n; i++) await conn.getAllDomainStats(COLLECT_STATS, COLLECT_FLAGS);
  done += n;
  points.push({ calls: done, rssMiB: rss() });
}
await conn.close();
process.stdout.write(`${JSON.stringify({ warmup, records, startMiB: start, points })}\n`);
