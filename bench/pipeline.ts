// es2d's stats pipeline built in-process from the same classes the daemon wires together
// (src/daemon/daemon.ts), so that one collection cycle can be timed without HTTP: the collector's
// bulk call and parse, then /metrics rendered, which builds every domain's savings report.

import { HostRoot, capabilityFeatures, probeHost } from '../src/host/index.js';
import type { Connection } from '../src/libvirt/index.js';
import { silentLogger } from '../src/daemon/logger.js';
import { Metrics, vmSnapshots } from '../src/report/metrics.js';
import { Reports, type Identity } from '../src/report/reports.js';
import { exitCosts } from '../src/savings/index.js';
import { StatsCollector } from '../src/stats/index.js';
import { Store } from '../src/store/index.js';
import type { Context } from './context.js';

export interface Pipeline {
  collector: StatsCollector;
  /** One full cycle: collect, then render /metrics. */
  cycle(): Promise<void>;
  /** Bytes of the last /metrics text (a sanity check that every domain was rendered). */
  lastMetricsBytes: number;
}

export interface PipelineOptions {
  /** es2d `--stats-interval`; the window is es2d's default 60 s. */
  intervalSeconds: number;
}

/**
 * The pipeline on `conn`, its rings filled to a full window first (the steady state of a running
 * es2d). The collector's clock is simulated: each cycle advances it by one interval, so the rings
 * hold the samples a real window holds although the cycles run back to back.
 */
export async function es2dPipeline(ctx: Context, conn: Connection, options: PipelineOptions): Promise<Pipeline> {
  const store = Store.open(ctx.tempDir('es2bench-store-'));
  ctx.defer(() => store.close());
  let now = Date.now() / 1000;
  // The cycle timeout (half the interval in es2d) is not under test: a slow call on this shared
  // machine must be measured, not turned into a failure.
  const collector = new StatsCollector(conn, {
    intervalSeconds: options.intervalSeconds, windowSeconds: 60, timeoutSeconds: 60, clock: () => now,
  });
  const names = new Map((await conn.listAllDomains()).map((d) => [d.uuid, d.name]));
  // The daemon answers this from the controller's identity cache (a Map lookup), filled from each
  // domain's XML once; no Nova metadata on the bench domains.
  const identify = (uuid: string): Identity | undefined => {
    const name = names.get(uuid);
    return name === undefined ? undefined : { name, project: null, flavor: null };
  };
  const logger = silentLogger();
  const reports = new Reports({ store, collector, costs: exitCosts({}), minIoOps: 1000, identify, logger });
  const features = capabilityFeatures(probeHost(new HostRoot('/')));
  const metrics = new Metrics({
    vms: () => vmSnapshots(collector, reports, identify),
    policies: () => [],
    capabilities: () => features,
    collector: () => collector.metrics,
    outbox: () => undefined,
  });
  const pipeline: Pipeline = {
    collector,
    lastMetricsBytes: 0,
    async cycle() {
      now += options.intervalSeconds;
      await collector.collect();
      pipeline.lastMetricsBytes = (await metrics.render()).length;
    },
  };
  const fill = Math.ceil(60 / options.intervalSeconds) + 1;
  for (let i = 0; i < fill; i++) await pipeline.cycle();
  return pipeline;
}
