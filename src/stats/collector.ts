// The stats cycle: one bulk stats call for all active domains per cycle (never one per domain),
// a bounded ring of samples per domain, and self-metrics. The cycle is a hot path (benchmark
// `stats-cycle`: the full cycle against the raw bulk call alone), so it parses each record once,
// copies nothing and allocates one sample per domain.

import { EventEmitter } from 'node:events';

import { Es2Error } from '../errors/index.js';
import { DomainStatsTypes, GetAllDomainStatsFlags, type DomainStatsRecord } from '../libvirt/index.js';
import type { Capture } from './capture.js';
import { sampleFromStats, type DomainSample } from './counters.js';

/** What the collector needs of libvirt; `Connection` satisfies it, and so does a capture replay. */
export interface StatsSource {
  getAllDomainStats(stats: number, flags: number): Promise<DomainStatsRecord[]>;
  /**
   * Unix seconds at which the records of the last call were taken, for a source that knows better
   * than the collector's clock (a replay). Live sources leave it undefined.
   */
  readonly lastSampleTime?: number | undefined;
}

export const COLLECT_STATS =
  DomainStatsTypes.STATE | DomainStatsTypes.VCPU | DomainStatsTypes.INTERFACE | DomainStatsTypes.BLOCK;
// NOWAIT: a domain whose job is busy answers with what needs no job instead of stalling the call.
export const COLLECT_FLAGS = GetAllDomainStatsFlags.ACTIVE | GetAllDomainStatsFlags.NOWAIT;

export interface StatsCollectorOptions {
  /** Seconds between cycle starts (es2d `--stats-interval`). Default 10. */
  intervalSeconds?: number;
  /** Length of the rolling current window in seconds. Default 60. */
  windowSeconds?: number;
  /**
   * A cycle whose bulk call takes longer fails. Default half the interval, within 2 to 5 s: a
   * busy libvirtd answering 30 domains can take most of a second, and cycles never overlap anyway.
   */
  timeoutSeconds?: number;
  /** Unix seconds; default the system clock. */
  clock?: () => number;
}

export interface CycleResult {
  /** Unix seconds the samples of this cycle carry. */
  time: number;
  /** Wall time of the cycle in seconds. */
  seconds: number;
  /** Domains sampled. */
  domains: number;
  /** Domains whose record was incomplete and left out (see `collect`). */
  skipped: number;
}

/** Self-metrics, read by the metrics endpoint. Counters only grow. */
export interface CollectorMetrics {
  cycles: number;
  errors: number;
  skippedDomains: number;
  /** Duration of the last cycle, successful or not; 0 before the first. */
  lastCycleSeconds: number;
}

export interface StatsCollectorEvents {
  cycle: [CycleResult];
  /** A cycle failed (bulk call error, timeout, or the previous call still running). */
  failed: [Error];
}

interface DomainRing {
  samples: DomainSample[];
  lastSeen: number;
  /** Counter keys of the last record seen, kept even when that record was skipped. */
  lastCounterKeys: number;
  lastHadKvmStats: boolean;
}

/**
 * Collects one bulk stats record per active domain every interval. Domains are keyed by UUID, or
 * by name when the source gives none. Each ring holds the shortest tail of samples that spans the
 * window (so `samples()` is the current window), and forgets a domain not seen for a window.
 */
export class StatsCollector extends EventEmitter<StatsCollectorEvents> {
  readonly intervalSeconds: number;
  readonly windowSeconds: number;
  readonly timeoutSeconds: number;
  readonly metrics: CollectorMetrics = { cycles: 0, errors: 0, skippedDomains: 0, lastCycleSeconds: 0 };

  private readonly source: StatsSource;
  private readonly clock: () => number;
  /** Hard bound per ring in case cycles come faster than the interval. */
  private readonly maxSamples: number;
  private readonly rings = new Map<string, DomainRing>();
  private inflight = false;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private generation = 0;
  /** Sample time of the last cycle if it succeeded; undefined after a failed one. */
  private lastCycleTime: number | undefined;

  constructor(source: StatsSource, options: StatsCollectorOptions = {}) {
    super();
    this.source = source;
    this.intervalSeconds = positive('intervalSeconds', options.intervalSeconds ?? 10);
    this.windowSeconds = positive('windowSeconds', options.windowSeconds ?? 60);
    this.timeoutSeconds = positive('timeoutSeconds', options.timeoutSeconds ?? Math.min(5, Math.max(2, this.intervalSeconds / 2)));
    this.clock = options.clock ?? (() => Date.now() / 1000);
    this.maxSamples = Math.ceil(this.windowSeconds / this.intervalSeconds) * 4 + 8;
  }

  /** Runs a cycle now and then one every interval, never two at once. */
  start(): void {
    if (this.running !== undefined) return;
    // A schedule left over from before a stop() must not carry on beside a new one.
    const generation = ++this.generation;
    const tick = (): void => {
      const started = this.clock();
      const cycle = this.collect().then(
        () => undefined,
        () => undefined, // counted in metrics.errors and emitted as `failed`
      );
      this.running = cycle;
      void cycle.then(() => {
        if (generation !== this.generation) return;
        const elapsedMs = (this.clock() - started) * 1000;
        this.timer = setTimeout(tick, Math.max(0, this.intervalSeconds * 1000 - elapsedMs));
      });
    };
    tick();
  }

  /** Stops the schedule and waits for a cycle in progress. */
  async stop(): Promise<void> {
    this.generation++;
    clearTimeout(this.timer);
    this.timer = undefined;
    const running = this.running;
    this.running = undefined;
    await running;
  }

  /**
   * One cycle: one bulk call (COLLECT_STATS, COLLECT_FLAGS) bounded by the timeout. Rejects, and
   * counts an error, when the call fails, times out, or a previous call has not returned yet (a
   * timed-out call may still be running in libvirt; a second one would only pile up).
   *
   * Under NOWAIT a busy domain answers without the stats that need a job, which would look like
   * counters dropping to zero. A record with fewer counter keys than the domain's previous record,
   * or without KVM counters when the previous had them, is therefore skipped and counted. The next
   * record is compared with the skipped one, so a device unplug costs one skipped cycle, not all.
   */
  async collect(): Promise<CycleResult> {
    const t0 = performance.now();
    try {
      const records = await this.bulkCall();
      const time = this.source.lastSampleTime ?? this.clock();
      const skipped = this.ingest(records, time);
      this.lastCycleTime = time;
      const result: CycleResult = { time, seconds: (performance.now() - t0) / 1000, domains: records.length - skipped, skipped };
      this.metrics.cycles++;
      this.metrics.skippedDomains += skipped;
      this.metrics.lastCycleSeconds = result.seconds;
      this.emit('cycle', result);
      return result;
    } catch (err) {
      this.lastCycleTime = undefined;
      this.metrics.errors++;
      this.metrics.lastCycleSeconds = (performance.now() - t0) / 1000;
      const error = err instanceof Error ? err : new Error(String(err));
      this.emit('failed', error);
      throw error;
    }
  }

  /** The current window of a domain (UUID, or name for a source without UUIDs), oldest first. */
  samples(key: string): DomainSample[] {
    return this.rings.get(key)?.samples.slice() ?? [];
  }

  latest(key: string): DomainSample | undefined {
    const s = this.rings.get(key)?.samples;
    return s?.[s.length - 1];
  }

  /**
   * Whether the last cycle succeeded and its bulk call returned this domain (complete record or
   * not): libvirt listed it as running one interval ago at most, which a caller may take instead of
   * asking libvirt again.
   */
  inLastCycle(key: string): boolean {
    return this.lastCycleTime !== undefined && this.rings.get(key)?.lastSeen === this.lastCycleTime;
  }

  /** How many domains have samples. */
  get size(): number {
    return this.rings.size;
  }

  /** Keys of the domains with samples. */
  keys(): string[] {
    return [...this.rings.keys()];
  }

  private bulkCall(): Promise<DomainStatsRecord[]> {
    if (this.inflight) {
      throw new Es2Error('LIBVIRT_UNAVAILABLE', 'the previous bulk stats call has not returned yet');
    }
    let call: Promise<DomainStatsRecord[]>;
    try {
      call = this.source.getAllDomainStats(COLLECT_STATS, COLLECT_FLAGS);
    } catch (err) {
      return Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
    this.inflight = true;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Es2Error('LIBVIRT_UNAVAILABLE', `bulk stats call took longer than ${this.timeoutSeconds} s`)),
        this.timeoutSeconds * 1000,
      );
      // After a timeout the call still settles here, which is what allows the next cycle.
      call.then(
        (records) => {
          clearTimeout(timer);
          this.inflight = false;
          resolve(records);
        },
        (err: unknown) => {
          clearTimeout(timer);
          this.inflight = false;
          reject(err);
        },
      );
    });
  }

  /** Appends one sample per complete record; returns how many records were skipped. */
  private ingest(records: readonly DomainStatsRecord[], time: number): number {
    let skipped = 0;
    for (let i = 0; i < records.length; i++) {
      const r = records[i] as DomainStatsRecord;
      const key = r.uuid === '' ? r.name : r.uuid;
      const sample = sampleFromStats(r.name, r.uuid, r.stats, time);
      let ring = this.rings.get(key);
      if (ring === undefined) {
        ring = { samples: [], lastSeen: time, lastCounterKeys: 0, lastHadKvmStats: false };
        this.rings.set(key, ring);
      }
      const partial =
        sample.counterKeys < ring.lastCounterKeys || (ring.lastHadKvmStats && !sample.hasKvmStats);
      ring.lastSeen = time;
      ring.lastCounterKeys = sample.counterKeys;
      ring.lastHadKvmStats = sample.hasKvmStats;
      if (partial) {
        skipped++;
        continue;
      }
      const s = ring.samples;
      s.push(sample);
      // Keep the shortest tail that spans the window: drop the oldest while the next one still
      // starts the window.
      const windowStart = time - this.windowSeconds;
      while (s.length > this.maxSamples || (s.length >= 2 && (s[1] as DomainSample).time <= windowStart)) s.shift();
    }
    const forgetBefore = time - this.windowSeconds;
    for (const [key, ring] of this.rings) if (ring.lastSeen < forgetBefore) this.rings.delete(key);
    return skipped;
  }
}

function positive(name: string, value: number): number {
  if (!Number.isFinite(value) || value <= 0) {
    throw new Es2Error('VALIDATION_FAILED', `${name} must be a positive number of seconds`, {
      details: [{ path: `/${name}`, message: `got ${String(value)}` }],
    });
  }
  return value;
}

export interface CaptureReplayOptions {
  /** UUIDs to give the capture's domains by name (a capture has none); default empty, keyed by name. */
  uuids?: Readonly<Record<string, string>>;
  /** Unix seconds; default the system clock. */
  clock?: () => number;
}

/**
 * Replays a capture as a stats source: each call returns the next block's records, their time
 * rebased so the first call happens "now" and later blocks keep the capture's spacing. After the
 * last block it loops to the first, one mean step later; the counters then fall, so the window
 * math sees a restart and skips that step, as it would on a real host. Timestamps follow the
 * capture's spacing, not the caller's schedule: run the collector at the capture's interval for
 * wall-clock times (the rates are right either way).
 */
export class CaptureReplaySource implements StatsSource {
  lastSampleTime: number | undefined;
  private readonly blocks: { time: number; records: DomainStatsRecord[] }[];
  private readonly clock: () => number;
  private readonly period: number;
  private next = 0;
  private offset: number | undefined;

  constructor(capture: Capture, options: CaptureReplayOptions = {}) {
    const uuids = options.uuids ?? {};
    this.clock = options.clock ?? (() => Date.now() / 1000);
    this.blocks = capture.blocks.map((b) => ({
      time: b.time,
      records: b.records.map((r) => ({ name: r.name, uuid: uuids[r.name] ?? '', id: null, stats: r.stats })),
    }));
    const first = (this.blocks[0] as { time: number }).time;
    const last = (this.blocks[this.blocks.length - 1] as { time: number }).time;
    const meanStep = this.blocks.length > 1 ? (last - first) / (this.blocks.length - 1) : 0;
    // A one-block capture (or one without spacing) still needs time to move forward.
    this.period = last - first + (meanStep > 0 ? meanStep : 10);
  }

  getAllDomainStats(_stats: number, _flags: number): Promise<DomainStatsRecord[]> {
    const n = this.blocks.length;
    const block = this.blocks[this.next % n] as { time: number; records: DomainStatsRecord[] };
    const loop = Math.floor(this.next / n);
    this.offset ??= this.clock() - block.time;
    this.lastSampleTime = block.time + this.offset + loop * this.period;
    this.next++;
    return Promise.resolve(block.records);
  }
}
