// Savings reports of the domains es2d collects stats for: the stored baseline against the rolling
// window (src/savings does the math), and the push of each report through the durable outbox.
import { Es2Error } from '../errors/index.js';
import {
  baselineFromWindow,
  buildReport,
  type Baseline,
  type ExitCosts,
  type SavingsReport,
} from '../savings/index.js';
import type { StatsCollector } from '../stats/index.js';
import type { BaselineRecord, Store } from '../store/index.js';
import type { Logger } from '../daemon/logger.js';
import type { OutboxPusher } from './outbox.js';

export interface Identity {
  name: string;
  project: string | null;
  flavor: string | null;
}

export interface ReportsDeps {
  store: Store;
  collector: StatsCollector;
  costs: ExitCosts;
  minIoOps: number;
  /** Name and Nova identity of a domain the collector knows (by UUID), when known. */
  identify: (uuid: string) => Identity | undefined;
  logger: Logger;
  outbox?: OutboxPusher | undefined;
}

export class Reports {
  private lastPush = new Map<string, string>();

  constructor(private readonly deps: ReportsDeps) {}

  /** Domains with samples in the current window. */
  uuids(): string[] {
    return this.deps.collector.keys();
  }

  /** Whether the last stats cycle found this domain running (StatsCollector.inLastCycle). */
  sampledLastCycle(uuid: string): boolean {
    return this.deps.collector.inLastCycle(uuid);
  }

  /** The report of one domain; DOMAIN_NOT_FOUND when es2d has no stats for it. */
  report(uuid: string): SavingsReport {
    const samples = this.deps.collector.samples(uuid);
    if (samples.length === 0) {
      // The domain exists (the caller resolved it); it just has no samples to report on.
      throw new Es2Error('CONFLICT', `no stats for domain ${uuid} yet: it is not running, or es2d has not sampled it (stats interval)`);
    }
    const id = this.deps.identify(uuid);
    return buildReport({
      uuid,
      name: id?.name ?? samples.at(-1)?.name ?? uuid,
      nova: id === undefined ? null : { project: id.project, flavor: id.flavor },
      baseline: this.deps.store.getBaseline<Baseline>(uuid)?.baseline ?? null,
      current: samples,
      costs: this.deps.costs,
      minIoOps: this.deps.minIoOps,
    });
  }

  all(): SavingsReport[] {
    return this.uuids().map((uuid) => this.report(uuid));
  }

  /** Takes the baseline now from the current window (replacing a stored one). */
  captureBaseline(uuid: string): BaselineRecord<Baseline> {
    const baseline = baselineFromWindow(this.deps.collector.samples(uuid));
    if (baseline === null) {
      throw new Es2Error('CONFLICT', `no baseline can be taken for ${uuid} yet: it needs two samples of the running domain (stats interval permitting)`);
    }
    this.deps.store.putBaseline(uuid, baseline);
    this.deps.logger.info('baseline captured', { uuid, seconds: baseline.seconds, ioOpsPerSecond: baseline.ioOpsPerSecond });
    return { uuid, capturedAt: baseline.capturedAt, baseline };
  }

  /**
   * Queues each domain's report once per window for the orchestrator. The idempotency key names
   * the domain and the window end, so a receiver sees a replayed report as the same one.
   */
  push(): void {
    const outbox = this.deps.outbox;
    if (outbox === undefined) return;
    for (const uuid of this.uuids()) {
      const report = this.report(uuid);
      const end = report.current.end;
      if (end === null || this.lastPush.get(uuid) === end) continue;
      outbox.enqueue({ uuid, idempotencyKey: `${uuid}/${end}`, body: report });
      this.lastPush.set(uuid, end);
    }
  }
}
