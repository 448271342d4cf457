// stats-vs-per-domain: one stats call per domain, as exporters do, over es2d's bulk cycle. The
// per-domain side is libvirt calls alone (virDomainListGetStats with one domain, one after the
// other, same stats groups), while es2d's side is its full cycle: the figure is conservative.
import { DomainStatsTypes, GetAllDomainStatsFlags, isNoDomain, type Connection } from '../src/libvirt/index.js';
import { COLLECT_FLAGS, COLLECT_STATS } from '../src/stats/index.js';
import type { Bench } from './bench.js';
import { alternate, fmt, median, ms, msPerCall, ratioOfMedians, spread } from './measure.js';
import { es2dPipeline } from './pipeline.js';

/** One call per domain, one after the other; a domain gone meanwhile (another test's) is passed over. */
async function perCall(conn: Connection, uuids: readonly string[], stats: number): Promise<void> {
  for (const uuid of uuids) {
    await conn.domainListGetStats([uuid], stats, GetAllDomainStatsFlags.NOWAIT).catch((err: unknown) => {
      if (!isNoDomain(err)) throw err;
    });
  }
}

export const statsPerDomain: Bench = {
  name: 'stats-vs-per-domain',
  rows: ['stats-vs-per-domain'],
  async run(ctx) {
    const fleet = await ctx.fleet();
    const conn = await ctx.connection();
    const pipeline = await es2dPipeline(ctx, conn, { intervalSeconds: 1 });
    // All active domains, as the bulk call sees them (other tests' domains included).
    const uuids = (await conn.listAllDomains()).filter((d) => d.id !== null).map((d) => d.uuid);
    const perDomain = (): Promise<void> => perCall(conn, uuids, COLLECT_STATS);
    const alt = await alternate(
      { run: () => msPerCall(perDomain, 2) },
      { run: () => msPerCall(() => pipeline.cycle(), 2) },
      { rounds: ctx.quick ? 10 : 30, warmup: 2 },
    );
    // What limits the figure: libvirtd's own per-domain work (QEMU monitor queries, /proc and
    // cgroup reads) is the same both ways; only the per-call overhead differs. The STATE group
    // alone, which needs no such work, shows that overhead by itself.
    const state = await alternate(
      { run: () => msPerCall(() => perCall(conn, uuids, DomainStatsTypes.STATE), 2) },
      { run: () => msPerCall(() => conn.getAllDomainStats(DomainStatsTypes.STATE, COLLECT_FLAGS), 2) },
      { rounds: ctx.quick ? 5 : 15, warmup: 1 },
    );
    return [{
      name: 'stats-vs-per-domain',
      ratio: ratioOfMedians(alt),
      anchor: "es2d's full bulk cycle (one virConnectGetAllDomainStats, parse, savings, /metrics)",
      detail: `${uuids.length} sequential per-domain calls ${ms(median(alt.subject))} vs es2d cycle ${ms(median(alt.anchor))}; `
        + `${spread(alt)}; ${fleet.uuids.length} bench domains; STATE group alone: per-domain ${ms(median(state.subject))} `
        + `vs bulk ${ms(median(state.anchor))} = ${fmt(ratioOfMedians(state))}`,
      goal: { op: '>=', value: 3.0, text: '>= 3.0' },
    }];
  },
};
