// stats-cycle: es2d's full collection cycle (bulk call, parse, savings, metrics) over the raw bulk
// stats call alone, on 30 running domains. What es2 adds on top of libvirt's own cost.
import { COLLECT_FLAGS, COLLECT_STATS } from '../src/stats/index.js';
import type { Bench } from './bench.js';
import { alternate, median, ms, msPerCall, ratioOfMedians, spread } from './measure.js';
import { es2dPipeline } from './pipeline.js';

// Back-to-back calls per timed measurement: one call is a few ms, close to scheduler noise.
const BATCH = 4;

export const statsCycle: Bench = {
  name: 'stats-cycle',
  rows: ['stats-cycle'],
  async run(ctx) {
    const fleet = await ctx.fleet();
    const conn = await ctx.connection();
    const interval = 1;
    const pipeline = await es2dPipeline(ctx, conn, { intervalSeconds: interval });
    const raw = await conn.getAllDomainStats(COLLECT_STATS, COLLECT_FLAGS);
    const keys = raw.reduce((n, r) => n + Object.keys(r.stats).length, 0);
    const alt = await alternate(
      { run: () => msPerCall(() => pipeline.cycle(), BATCH) },
      { run: () => msPerCall(() => conn.getAllDomainStats(COLLECT_STATS, COLLECT_FLAGS), BATCH) },
      { rounds: ctx.quick ? 10 : 40, warmup: 3 },
    );
    return [{
      name: 'stats-cycle',
      ratio: ratioOfMedians(alt),
      anchor: 'raw bulk stats call alone (virConnectGetAllDomainStats, same stats groups and flags)',
      detail: `cycle ${ms(median(alt.subject))} vs raw ${ms(median(alt.anchor))} (medians of ${BATCH}-call means); `
        + `${spread(alt)}; ${raw.length} domain records (${fleet.uuids.length} bench domains), ${keys} stats keys in all; `
        + `window 60 s at a ${interval} s interval (rings full); /metrics ${pipeline.lastMetricsBytes} bytes; `
        + `fleet idle at ${fleet.idleCores.toFixed(2)} cores`,
      goal: { op: '<=', value: 1.3, text: '<= 1.3' },
    }];
  },
};
