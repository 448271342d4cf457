// Savings reports of the domains es2d collects stats for: the stored baseline against the rolling
// window (src/savings does the math), and the push of each report through the durable outbox.
import { Es2Error } from '../errors/index.js';
import {
  baselineFromWindow,
  buildReport,
  type Baseline,
  type ExitCosts,
  type NovaIdentity,
  type SavingsReport,
} from '../savings/index.js';
import type { DomainSample, StatsCollector } from '../stats/index.js';
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

/** The report's Nova identity (null fields when unknown) against the one known now. */
function sameNova(a: NovaIdentity, b: NovaIdentity | null): boolean {
  return a.project === (b?.project ?? null) && a.flavor === (b?.flavor ?? null);
}

export class Reports {
  private lastPush = new Map<string, string>();
  private readonly cache = new Map<string, { latest: DomainSample; baselineAt: string | null; report: SavingsReport }>();

  constructor(private readonly deps: ReportsDeps) {}

  /** Domains with samples in the current window. */
  uuids(): string[] {
    return this.deps.collector.keys();
  }

  /** Whether the last stats cycle found this domain running (StatsCollector.inLastCycle). */
  sampledLastCycle(uuid: string): boolean {
    return this.deps.collector.inLastCycle(uuid);
  }

  /**
   * The report of one domain; CONFLICT when es2d has no stats for it. The same object is handed
   * out until its inputs change (callers only read it): the report is asked for on every GET
   * savings and for every domain on every /metrics scrape, while its window changes once a cycle.
   */
  report(uuid: string): SavingsReport {
    const latest = this.deps.collector.latest(uuid);
    if (latest === undefined) {
      this.cache.delete(uuid);
      // The domain exists (the caller resolved it); it just has no samples to report on.
      throw new Es2Error('CONFLICT', `no stats for domain ${uuid} yet: it is not running, or es2d has not sampled it (stats interval)`);
    }
    const id = this.deps.identify(uuid);
    const name = id?.name ?? latest.name ?? uuid;
    const nova = id === undefined ? null : { project: id.project, flavor: id.flavor };
    const baseline = this.deps.store.getBaseline<Baseline>(uuid)?.baseline ?? null;
    const hit = this.cache.get(uuid);
    // A new sample is a new object, and the window only changes when one is appended.
    if (hit !== undefined && hit.latest === latest && hit.baselineAt === (baseline?.capturedAt ?? null)
      && hit.report.name === name && sameNova(hit.report.nova, nova)) {
      return hit.report;
    }
    const report = buildReport({
      uuid,
      name,
      nova,
      baseline,
      current: this.deps.collector.samples(uuid),
      costs: this.deps.costs,
      minIoOps: this.deps.minIoOps,
    });
    this.cache.set(uuid, { latest, baselineAt: baseline?.capturedAt ?? null, report });
    // Domains the collector forgot (gone for a window) leave the cache with them.
    if (this.cache.size > 2 * this.deps.collector.size + 16) {
      for (const key of this.cache.keys()) if (this.deps.collector.latest(key) === undefined) this.cache.delete(key);
    }
    return report;
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
