// Pushes each domain's savings reports from the durable outbox (SQLite, see src/store) to the
// orchestrator. Delivery is at least once with an Idempotency-Key per report, so the receiver
// can make it exactly once; order holds per domain because only the oldest pending entry of a
// domain is ever in flight.
//
// What happens to a report the receiver does not accept:
// - 400, 413 and 422 judge the report itself, so retrying the same bytes cannot help: it becomes
//   a dead letter (kept in the store, counted, logged) and the domain's next report goes.
// - Everything else (connection errors, timeouts, 3xx, 401/403/404 from a misconfigured receiver,
//   408, 409, 429, 5xx) is retried with exponential backoff and jitter, honouring Retry-After:
//   reports wait for the fix, bounded by the outbox capacity, whose drops are counted and logged.
import type { Logger } from 'winston';

import type { EnqueueResult, OutboxEntry, OutboxInput, Store } from '../store/index.js';

export interface BackoffOptions {
  initialMs: number;
  maxMs: number;
  factor: number;
  /** Fraction of each delay that is random: 0.5 waits between half and all of it. */
  jitter: number;
}

export const DEFAULT_BACKOFF: BackoffOptions = { initialMs: 1000, maxMs: 300_000, factor: 2, jitter: 0.5 };

export interface Timers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export interface OutboxPusherOptions {
  store: Store;
  /** The orchestrator endpoint each report is POSTed to. */
  url: string;
  /** Sent as `Authorization: Bearer <token>`. */
  token?: string;
  /** A header of the receiver's choosing, e.g. an API key. */
  header?: { name: string; value: string };
  timeoutMs?: number;
  logger: Logger;
  backoff?: Partial<BackoffOptions>;
  /** Domains whose reports are in flight at once. */
  concurrency?: number;
  /** Epoch milliseconds. */
  clock?: () => number;
  /** In [0, 1). */
  random?: () => number;
  timers?: Timers;
}

export interface OutboxMetrics {
  /** Pending reports (`es2_outbox_depth`). */
  depth: number;
  /** Reports the receiver refused for good, still in the store. */
  deadLettered: number;
  /** Reports dropped from a full outbox, ever. */
  dropped: number;
  /** Reports delivered by this process. */
  delivered: number;
  /** Failed delivery attempts of this process. */
  failures: number;
}

export interface RoundResult {
  delivered: number;
  retried: number;
  deadLettered: number;
}

type Outcome = 'delivered' | 'retried' | 'deadLettered' | 'stopped';

const REJECTS_REPORT: ReadonlySet<number> = new Set([400, 413, 422]);
const DEFAULT_TIMEOUT_MS = 10_000;
const ERROR_TEXT_MAX = 300;

/** The wait before the next attempt after `attempts` failed ones (1 = the first failure). */
export function backoffDelay(attempts: number, options: BackoffOptions, random: () => number): number {
  const full = Math.min(options.maxMs, options.initialMs * options.factor ** Math.max(0, attempts - 1));
  return Math.round(full * (1 - options.jitter * random()));
}

/** Retry-After in milliseconds (delta-seconds or an HTTP date); undefined when absent or unreadable. */
export function parseRetryAfter(value: string | null, now: number): number | undefined {
  if (value === null) return undefined;
  if (/^\d+$/.test(value.trim())) return Number(value.trim()) * 1000;
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

const realTimers: Timers = {
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
};

export class OutboxPusher {
  private readonly store: Store;
  private readonly url: string;
  private readonly headers: Record<string, string>;
  private readonly timeoutMs: number;
  private readonly logger: Logger;
  private readonly backoff: BackoffOptions;
  private readonly concurrency: number;
  private readonly clock: () => number;
  private readonly random: () => number;
  private readonly timers: Timers;

  private delivered = 0;
  private failures = 0;
  private timer: unknown;
  private round: Promise<RoundResult> | undefined;
  private wakeDuringRound = false;
  private started = false;
  private abort = new AbortController();

  constructor(options: OutboxPusherOptions) {
    this.store = options.store;
    this.url = new URL(options.url).href;
    this.headers = { 'content-type': 'application/json' };
    if (options.token !== undefined) this.headers.authorization = `Bearer ${options.token}`;
    if (options.header !== undefined) this.headers[options.header.name.toLowerCase()] = options.header.value;
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.logger = options.logger;
    this.backoff = { ...DEFAULT_BACKOFF, ...options.backoff };
    this.concurrency = options.concurrency ?? 8;
    this.clock = options.clock ?? Date.now;
    this.random = options.random ?? Math.random;
    this.timers = options.timers ?? realTimers;
  }

  /**
   * Puts a report in the outbox and pushes it soon. Producers enqueue here rather than in the
   * store, so that reports dropped from a full outbox are logged.
   */
  enqueue(input: OutboxInput): EnqueueResult {
    const result = this.store.enqueueReport(input);
    for (const entry of result.dropped) {
      this.logger.warn(`report outbox full (capacity ${this.store.outboxCapacity}): dropped the oldest report, ${entry.idempotencyKey} of domain ${entry.uuid}`, {
        uuid: entry.uuid, idempotencyKey: entry.idempotencyKey, seq: entry.seq, createdAt: entry.createdAt,
        attempts: entry.attempts, state: entry.state, droppedTotal: this.store.outboxStats().dropped,
      });
    }
    if (result.duplicate) this.logger.debug(`report ${input.idempotencyKey} is already in the outbox`, { uuid: result.entry.uuid });
    this.wake();
    return result;
  }

  /** Starts pushing in the background: now, then whenever something is due or enqueued. */
  start(): void {
    if (this.started) return;
    this.started = true;
    this.abort = new AbortController();
    this.schedule(0);
  }

  /** Stops pushing; requests in flight are abandoned without counting as attempts. */
  async stop(): Promise<void> {
    this.started = false;
    this.timers.clearTimeout(this.timer);
    this.timer = undefined;
    this.abort.abort();
    // runRound reports a failed round; here it only has to be over.
    await this.round?.catch(() => undefined);
  }

  metrics(): OutboxMetrics {
    const { depth, deadLettered, dropped } = this.store.outboxStats();
    return { depth, deadLettered, dropped, delivered: this.delivered, failures: this.failures };
  }

  /** One round: the head report of each domain that is due, domains in parallel. */
  async pushOnce(): Promise<RoundResult> {
    const heads = this.store.outboxHeads(this.clock(), this.concurrency);
    const outcomes = await Promise.all(heads.map((entry) => this.deliver(entry)));
    const count = (outcome: Outcome): number => outcomes.filter((o) => o === outcome).length;
    return { delivered: count('delivered'), retried: count('retried'), deadLettered: count('deadLettered') };
  }

  private wake(): void {
    if (!this.started) return;
    if (this.round) this.wakeDuringRound = true;
    else this.schedule(0);
  }

  private schedule(delayMs: number): void {
    this.timers.clearTimeout(this.timer);
    this.timer = this.timers.setTimeout(() => void this.runRound(), delayMs);
  }

  private async runRound(): Promise<void> {
    this.timer = undefined;
    this.wakeDuringRound = false;
    let result: RoundResult | undefined;
    try {
      this.round = this.pushOnce();
      result = await this.round;
    } catch (err) {
      this.logger.error(`report push round failed: ${(err as Error).message}`, { error: (err as Error).message });
    } finally {
      this.round = undefined;
    }
    if (!this.started) return;
    if (result === undefined) {
      this.schedule(this.backoff.initialMs);
    } else if (this.wakeDuringRound || result.delivered > 0) {
      // A delivery may have uncovered the next report of its domain.
      this.schedule(0);
    } else {
      const next = this.store.outboxNextAttemptAt();
      if (next !== null) this.schedule(Math.max(0, next - this.clock()));
    }
  }

  private async deliver(entry: OutboxEntry): Promise<Outcome> {
    let response: Response;
    let text: string;
    try {
      response = await fetch(this.url, {
        method: 'POST',
        headers: {
          ...this.headers,
          'idempotency-key': entry.idempotencyKey,
          'x-es2-domain': entry.uuid,
          'x-es2-sequence': String(entry.seq),
        },
        body: JSON.stringify(entry.body),
        redirect: 'manual',
        signal: AbortSignal.any([this.abort.signal, AbortSignal.timeout(this.timeoutMs)]),
      });
      text = await response.text();
    } catch (err) {
      if (this.abort.signal.aborted) return 'stopped';
      const reason = (err as Error).name === 'TimeoutError' ? `no answer within ${this.timeoutMs} ms` : describeFetchError(err);
      return this.retry(entry, reason, undefined);
    }
    if (response.ok) {
      this.store.markDelivered(entry.id);
      this.delivered++;
      this.logger.debug(`report ${entry.idempotencyKey} delivered`, { uuid: entry.uuid, seq: entry.seq, status: response.status });
      return 'delivered';
    }
    const reason = `HTTP ${response.status}${text ? `: ${text.slice(0, ERROR_TEXT_MAX)}` : ''}`;
    if (REJECTS_REPORT.has(response.status)) {
      this.store.deadLetter(entry.id, reason);
      this.failures++;
      this.logger.error(`orchestrator refused report ${entry.idempotencyKey} of domain ${entry.uuid} (${reason}): kept as a dead letter, not retried`, {
        uuid: entry.uuid, idempotencyKey: entry.idempotencyKey, seq: entry.seq, status: response.status,
      });
      return 'deadLettered';
    }
    return this.retry(entry, reason, parseRetryAfter(response.headers.get('retry-after'), this.clock()));
  }

  private retry(entry: OutboxEntry, reason: string, retryAfterMs: number | undefined): Outcome {
    const attempts = entry.attempts + 1;
    const delay = Math.min(this.backoff.maxMs, Math.max(backoffDelay(attempts, this.backoff, this.random), retryAfterMs ?? 0));
    this.store.recordAttempt(entry.id, reason, this.clock() + delay);
    this.failures++;
    this.logger.warn(`report ${entry.idempotencyKey} of domain ${entry.uuid} not delivered (${reason}); attempt ${attempts}, next in ${delay} ms`, {
      uuid: entry.uuid, idempotencyKey: entry.idempotencyKey, seq: entry.seq, attempts, retryInMs: delay,
    });
    return 'retried';
  }
}

/** fetch reports network failures as "fetch failed" with the real reason in `cause`. */
function describeFetchError(err: unknown): string {
  const cause = (err as { cause?: { code?: string; message?: string } }).cause;
  const message = cause?.message ?? (err as Error).message;
  return cause?.code === undefined || message.includes(cause.code) ? message : `${message} (${cause.code})`;
}
