// The durable state of es2d: what operators asked for, what was applied, the host-knob journal,
// baselines and the report outbox. Nova hard reboot regenerates domain XML, so this store, not
// the domain metadata, is the source of truth.
import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

import Database from 'better-sqlite3';

import { Es2Error, validationFailed } from '../errors/index.js';
import { latestVersion, migrations as allMigrations, type Migration } from './schema.js';
import { prepareStatements, type Statements } from './sql.js';

export type { Migration } from './schema.js';

/** The ETag of a domain without a stored policy; as `ifMatch` it means "none may be stored". */
export const ABSENT_ETAG = 'none';

export interface PolicyRecord<P = unknown> {
  uuid: string;
  /** The domain name when the writer knew it; a policy may precede the domain. */
  name: string | null;
  policy: P;
  /** Opaque; a new value on every write. */
  etag: string;
  updatedAt: string;
}

export type AppliedResult = 'ok' | 'partial' | 'failed';

export interface AppliedRecord {
  uuid: string;
  name: string | null;
  /** The policy that was applied (null after removal). */
  policy: unknown;
  plan: unknown;
  appliedAt: string;
  result: AppliedResult;
  error: string | null;
  /** What a drift check last found (null until one ran after this apply). */
  drift: unknown;
  driftCheckedAt: string | null;
}

export interface AppliedInput {
  uuid: string;
  name?: string | null;
  policy: unknown;
  plan: unknown;
  result: AppliedResult;
  error?: string | null;
}

export interface KnobJournalEntry {
  knob: string;
  /** The value found before es2 first wrote the knob; written back when the last holder goes. */
  original: number;
  /** The value es2 last wrote. */
  current: number;
  /** Holder (domain UUID or `operator`) → the value it asked for. */
  holders: Record<string, number>;
}

export interface BaselineRecord<B extends { capturedAt: string } = { capturedAt: string }> {
  uuid: string;
  capturedAt: string;
  baseline: B;
}

export type OutboxState = 'pending' | 'dead';

export interface OutboxEntry {
  id: number;
  uuid: string;
  /** Per-domain sequence number, never reused. */
  seq: number;
  idempotencyKey: string;
  body: unknown;
  createdAt: string;
  attempts: number;
  /** Epoch milliseconds. */
  nextAttemptAt: number;
  lastError: string | null;
  /** `dead`: the receiver refused it for good; kept (and counted) for the operator, not retried. */
  state: OutboxState;
}

export interface OutboxInput {
  uuid: string;
  idempotencyKey: string;
  body: unknown;
  createdAt?: string;
}

export interface EnqueueResult {
  /** The stored entry; for a repeated idempotency key the one stored before. */
  entry: OutboxEntry;
  /** The key was already in the outbox: nothing new was stored. */
  duplicate: boolean;
  /** Entries removed to stay within capacity, oldest first. Also added to the dropped counter. */
  dropped: OutboxEntry[];
}

export interface OutboxStats {
  /** Pending entries (`es2_outbox_depth`). */
  depth: number;
  deadLettered: number;
  /** Entries ever dropped because the outbox was full (persists across restarts). */
  dropped: number;
}

export interface StoreOptions {
  /** Most entries (pending and dead) the outbox keeps; when full the oldest is dropped. */
  outboxCapacity?: number;
  busyTimeoutMs?: number;
}

export const DB_FILE = 'es2.db';
export const DEFAULT_OUTBOX_CAPACITY = 10_000;
const DROPPED_COUNTER = 'outbox_dropped';

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Canonical (lower-case) form of a domain UUID; VALIDATION_FAILED for anything else. */
export function normalizeUuid(uuid: string): string {
  if (!UUID_RE.test(uuid)) throw validationFailed(`not a UUID: ${JSON.stringify(uuid)}`);
  return uuid.toLowerCase();
}

function newEtag(): string {
  return randomBytes(12).toString('base64url');
}

function parseJson(text: string | null): unknown {
  return text === null ? null : JSON.parse(text);
}

interface PolicyRow { uuid: string; name: string | null; policy: string; etag: string; updated_at: string }
interface AppliedRow {
  uuid: string; name: string | null; policy: string | null; plan: string | null; applied_at: string;
  result: AppliedResult; error: string | null; drift: string | null; drift_checked_at: string | null;
}
interface KnobRow { knob: string; original: number; current: number; holders: string }
interface BaselineRow { uuid: string; captured_at: string; baseline: string }
interface OutboxRow {
  id: number; uuid: string; seq: number; idempotency_key: string; body: string; created_at: string;
  attempts: number; next_attempt_at: number; last_error: string | null; state: OutboxState;
}

function policyRecord<P>(row: PolicyRow): PolicyRecord<P> {
  return { uuid: row.uuid, name: row.name, policy: JSON.parse(row.policy) as P, etag: row.etag, updatedAt: row.updated_at };
}

function appliedRecord(row: AppliedRow): AppliedRecord {
  return {
    uuid: row.uuid, name: row.name, policy: parseJson(row.policy), plan: parseJson(row.plan),
    appliedAt: row.applied_at, result: row.result, error: row.error,
    drift: parseJson(row.drift), driftCheckedAt: row.drift_checked_at,
  };
}

function knobEntry(row: KnobRow): KnobJournalEntry {
  return { knob: row.knob, original: row.original, current: row.current, holders: JSON.parse(row.holders) as Record<string, number> };
}

function baselineRecord<B extends { capturedAt: string }>(row: BaselineRow): BaselineRecord<B> {
  return { uuid: row.uuid, capturedAt: row.captured_at, baseline: JSON.parse(row.baseline) as B };
}

function outboxEntry(row: OutboxRow): OutboxEntry {
  return {
    id: row.id, uuid: row.uuid, seq: row.seq, idempotencyKey: row.idempotency_key, body: JSON.parse(row.body),
    createdAt: row.created_at, attempts: row.attempts, nextAttemptAt: row.next_attempt_at,
    lastError: row.last_error, state: row.state,
  };
}

/**
 * Brings `db` to the last version of `list`, one transaction per migration. Refuses a database
 * written by a newer es2 (its `user_version` is beyond the list) rather than guess at its layout.
 */
export function migrate(db: Database.Database, list: readonly Migration[], file = db.name): number {
  const target = list.length;
  const found = db.pragma('user_version', { simple: true }) as number;
  if (found > target) {
    throw new Es2Error('INTERNAL',
      `${file} has schema version ${found}, but this es2 knows versions up to ${target}: ` +
      'it was written by a newer es2. Run that es2 again, or move the state dir aside to start afresh.');
  }
  for (const [index, migration] of list.entries()) {
    if (migration.version !== index + 1) {
      throw new Es2Error('INTERNAL', `migration ${index + 1} is numbered ${migration.version}: versions run 1, 2, 3, ...`);
    }
    if (migration.version <= found) continue;
    db.transaction(() => {
      db.exec(migration.sql);
      db.pragma(`user_version = ${migration.version}`);
    }).immediate();
  }
  return target;
}

export class Store {
  /** The schema version this es2 writes. */
  static readonly schemaVersion = latestVersion;

  readonly file: string;
  readonly outboxCapacity: number;
  private readonly db: Database.Database;
  private readonly q: Statements;

  private constructor(db: Database.Database, file: string, outboxCapacity: number) {
    this.db = db;
    this.file = file;
    this.outboxCapacity = outboxCapacity;
    this.q = prepareStatements(db);
  }

  /** Opens (creating when needed) `<stateDir>/es2.db` and migrates it to the current schema. */
  static open(stateDir: string, options: StoreOptions = {}): Store {
    const capacity = options.outboxCapacity ?? DEFAULT_OUTBOX_CAPACITY;
    if (!Number.isSafeInteger(capacity) || capacity < 1) {
      throw validationFailed(`outbox capacity must be a positive integer, got ${capacity}`);
    }
    mkdirSync(stateDir, { recursive: true, mode: 0o700 });
    const file = join(stateDir, DB_FILE);
    const db = new Database(file);
    try {
      db.pragma('journal_mode = WAL');
      db.pragma(`busy_timeout = ${options.busyTimeoutMs ?? 5000}`);
      // The knob journal holds values that exist nowhere else once overwritten: every commit
      // reaches the disk, not only the WAL checkpoints.
      db.pragma('synchronous = FULL');
      migrate(db, allMigrations, file);
      return new Store(db, file, capacity);
    } catch (err) {
      db.close();
      throw err;
    }
  }

  close(): void {
    this.db.close();
  }

  /**
   * Runs `fn` in one write transaction (BEGIN IMMEDIATE: the write lock is taken before the first
   * read, so a read-check-write inside cannot interleave with another connection's). Nested
   * calls become savepoints.
   */
  transaction<T>(fn: () => T): T {
    return this.db.transaction(fn).immediate();
  }

  // --- desired policies ----------------------------------------------------------------------

  getPolicy<P = unknown>(uuid: string): PolicyRecord<P> | undefined {
    const row = this.q.policyGet.get(normalizeUuid(uuid)) as PolicyRow | undefined;
    return row && policyRecord<P>(row);
  }

  listPolicies<P = unknown>(): PolicyRecord<P>[] {
    return (this.q.policyList.all() as PolicyRow[]).map((row) => policyRecord<P>(row));
  }

  /**
   * Stores the desired policy of a domain. With `ifMatch` the write happens only if the stored
   * ETag is that value (`*`: if any policy is stored); otherwise PRECONDITION_FAILED.
   */
  putPolicy<P>(uuid: string, policy: P, options: { name?: string | null; ifMatch?: string } = {}): PolicyRecord<P> {
    const key = normalizeUuid(uuid);
    return this.transaction(() => {
      const current = this.q.policyGet.get(key) as PolicyRow | undefined;
      this.checkIfMatch(key, current, options.ifMatch);
      const row: PolicyRow = {
        uuid: key,
        name: options.name === undefined ? (current?.name ?? null) : options.name,
        policy: JSON.stringify(policy),
        etag: newEtag(),
        updated_at: new Date().toISOString(),
      };
      this.q.policyUpsert.run({ uuid: row.uuid, name: row.name, policy: row.policy, etag: row.etag, updatedAt: row.updated_at });
      return policyRecord<P>(row);
    });
  }

  /** Removes a desired policy; false when none was stored. `ifMatch` as for putPolicy. */
  deletePolicy(uuid: string, options: { ifMatch?: string } = {}): boolean {
    const key = normalizeUuid(uuid);
    return this.transaction(() => {
      const current = this.q.policyGet.get(key) as PolicyRow | undefined;
      this.checkIfMatch(key, current, options.ifMatch);
      return this.q.policyDelete.run(key).changes > 0;
    });
  }

  private checkIfMatch(uuid: string, current: PolicyRow | undefined, ifMatch: string | undefined): void {
    if (ifMatch === undefined) return;
    if (ifMatch === ABSENT_ETAG) {
      // The ETag a reader saw when no policy was stored: the write must still find none.
      if (current !== undefined) {
        throw new Es2Error('PRECONDITION_FAILED', `If-Match ${ifMatch}: a policy was stored for ${uuid} since it was read (ETag ${current.etag})`);
      }
      return;
    }
    if (current === undefined) {
      throw new Es2Error('PRECONDITION_FAILED', `If-Match ${ifMatch}: no policy is stored for ${uuid}`);
    }
    if (ifMatch !== '*' && ifMatch !== current.etag) {
      throw new Es2Error('PRECONDITION_FAILED',
        `If-Match ${ifMatch} does not match the policy of ${uuid} (ETag ${current.etag}): it changed since it was read`);
    }
  }

  // --- applied state ---------------------------------------------------------------------------

  getApplied(uuid: string): AppliedRecord | undefined {
    const row = this.q.appliedGet.get(normalizeUuid(uuid)) as AppliedRow | undefined;
    return row && appliedRecord(row);
  }

  listApplied(): AppliedRecord[] {
    return (this.q.appliedList.all() as AppliedRow[]).map(appliedRecord);
  }

  /** Records an apply (or removal) attempt; clears the drift found for the previous one. */
  putApplied(input: AppliedInput): AppliedRecord {
    const uuid = normalizeUuid(input.uuid);
    this.q.appliedUpsert.run({
      uuid,
      name: input.name ?? null,
      policy: JSON.stringify(input.policy ?? null),
      plan: JSON.stringify(input.plan ?? null),
      appliedAt: new Date().toISOString(),
      result: input.result,
      error: input.error ?? null,
    });
    return this.getApplied(uuid) as AppliedRecord;
  }

  /** Records a drift check; false when nothing was applied to that domain. */
  setDrift(uuid: string, drift: unknown): boolean {
    const info = this.q.appliedSetDrift.run({
      uuid: normalizeUuid(uuid), drift: JSON.stringify(drift ?? null), checkedAt: new Date().toISOString(),
    });
    return info.changes > 0;
  }

  deleteApplied(uuid: string): boolean {
    return this.q.appliedDelete.run(normalizeUuid(uuid)).changes > 0;
  }

  // --- host-knob journal ---------------------------------------------------------------------

  getKnob(knob: string): KnobJournalEntry | undefined {
    const row = this.q.knobGet.get(knob) as KnobRow | undefined;
    return row && knobEntry(row);
  }

  listKnobs(): KnobJournalEntry[] {
    return (this.q.knobList.all() as KnobRow[]).map(knobEntry);
  }

  /** Creates or updates a journal entry. The original of an existing entry is never overwritten. */
  putKnob(entry: KnobJournalEntry): void {
    this.q.knobUpsert.run({ knob: entry.knob, original: entry.original, current: entry.current, holders: JSON.stringify(entry.holders) });
  }

  deleteKnob(knob: string): boolean {
    return this.q.knobDelete.run(knob).changes > 0;
  }

  // --- baselines ---------------------------------------------------------------------------------

  getBaseline<B extends { capturedAt: string }>(uuid: string): BaselineRecord<B> | undefined {
    const row = this.q.baselineGet.get(normalizeUuid(uuid)) as BaselineRow | undefined;
    return row && baselineRecord<B>(row);
  }

  listBaselines<B extends { capturedAt: string }>(): BaselineRecord<B>[] {
    return (this.q.baselineList.all() as BaselineRow[]).map((row) => baselineRecord<B>(row));
  }

  putBaseline<B extends { capturedAt: string }>(uuid: string, baseline: B): BaselineRecord<B> {
    const key = normalizeUuid(uuid);
    if (typeof baseline.capturedAt !== 'string' || Number.isNaN(Date.parse(baseline.capturedAt))) {
      throw validationFailed('a baseline needs capturedAt as an ISO 8601 time', [{ path: '/capturedAt', message: 'not a time' }]);
    }
    this.q.baselineUpsert.run({ uuid: key, capturedAt: baseline.capturedAt, baseline: JSON.stringify(baseline) });
    return { uuid: key, capturedAt: baseline.capturedAt, baseline };
  }

  deleteBaseline(uuid: string): boolean {
    return this.q.baselineDelete.run(normalizeUuid(uuid)).changes > 0;
  }

  // --- report outbox -----------------------------------------------------------------------------

  /**
   * Adds a report to the outbox, due at once. A key already in the outbox stores nothing new.
   * When the outbox is full the oldest entries go to make room; they are returned and counted so
   * the caller can log them.
   */
  enqueueReport(input: OutboxInput): EnqueueResult {
    const uuid = normalizeUuid(input.uuid);
    if (input.idempotencyKey.length === 0 || input.idempotencyKey.length > 255) {
      throw validationFailed('an idempotency key has 1 to 255 characters');
    }
    return this.transaction(() => {
      const existing = this.q.outboxByKey.get(input.idempotencyKey) as OutboxRow | undefined;
      if (existing) return { entry: outboxEntry(existing), duplicate: true, dropped: [] };
      const count = (this.q.outboxCount.get() as { n: number }).n;
      const excess = count - this.outboxCapacity + 1;
      const dropped = excess > 0 ? (this.q.outboxOldest.all(excess) as OutboxRow[]).map(outboxEntry) : [];
      for (const entry of dropped) this.q.outboxDelete.run(entry.id);
      if (dropped.length > 0) this.q.counterAdd.run({ name: DROPPED_COUNTER, delta: dropped.length });
      const { last_seq: seq } = this.q.outboxNextSeq.get(uuid) as { last_seq: number };
      const info = this.q.outboxInsert.run({
        uuid, seq, idempotencyKey: input.idempotencyKey, body: JSON.stringify(input.body),
        createdAt: input.createdAt ?? new Date().toISOString(), nextAttemptAt: 0,
      });
      const entry = outboxEntry(this.q.outboxById.get(info.lastInsertRowid) as OutboxRow);
      return { entry, duplicate: false, dropped };
    });
  }

  /** The oldest pending entry of each domain whose next attempt is due at `now`, soonest first. */
  outboxHeads(now: number, limit: number): OutboxEntry[] {
    return (this.q.outboxHeads.all(now, limit) as OutboxRow[]).map(outboxEntry);
  }

  /** When the earliest domain head is due (epoch ms); null when nothing is pending. */
  outboxNextAttemptAt(): number | null {
    return (this.q.outboxNextAttemptAt.get() as { t: number | null }).t;
  }

  listOutbox(state?: OutboxState): OutboxEntry[] {
    const rows = state === undefined ? this.q.outboxList.all() : this.q.outboxListByState.all(state);
    return (rows as OutboxRow[]).map(outboxEntry);
  }

  /** The receiver accepted the entry: it leaves the outbox. */
  markDelivered(id: number): boolean {
    return this.q.outboxDelete.run(id).changes > 0;
  }

  /** A failed attempt that will be retried at `nextAttemptAt`. */
  recordAttempt(id: number, error: string, nextAttemptAt: number): boolean {
    return this.q.outboxRecordAttempt.run({ id, error, nextAttemptAt }).changes > 0;
  }

  /** The receiver refused the entry for good: it stays, visible, but no longer blocks its domain. */
  deadLetter(id: number, error: string): boolean {
    return this.q.outboxDeadLetter.run({ id, error }).changes > 0;
  }

  outboxStats(): OutboxStats {
    const count = (state: OutboxState): number => (this.q.outboxCountByState.get(state) as { n: number }).n;
    const dropped = this.q.counterGet.get(DROPPED_COUNTER) as { value: number } | undefined;
    return { depth: count('pending'), deadLettered: count('dead'), dropped: dropped?.value ?? 0 };
  }
}
