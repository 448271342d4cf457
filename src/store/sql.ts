// Every SQL statement the store runs (besides the migrations in schema.ts), prepared once per
// connection.
import type Database from 'better-sqlite3';

const statements = {
  policyGet: 'SELECT uuid, name, policy, etag, updated_at FROM policies WHERE uuid = ?',
  policyList: 'SELECT uuid, name, policy, etag, updated_at FROM policies ORDER BY uuid',
  policyUpsert: `INSERT INTO policies (uuid, name, policy, etag, updated_at) VALUES (@uuid, @name, @policy, @etag, @updatedAt)
                 ON CONFLICT (uuid) DO UPDATE SET name = excluded.name, policy = excluded.policy,
                   etag = excluded.etag, updated_at = excluded.updated_at`,
  policyDelete: 'DELETE FROM policies WHERE uuid = ?',

  appliedGet: 'SELECT * FROM applied WHERE uuid = ?',
  appliedList: 'SELECT * FROM applied ORDER BY uuid',
  appliedUpsert: `INSERT INTO applied (uuid, name, policy, plan, applied_at, result, error, drift, drift_checked_at)
                  VALUES (@uuid, @name, @policy, @plan, @appliedAt, @result, @error, NULL, NULL)
                  ON CONFLICT (uuid) DO UPDATE SET name = excluded.name, policy = excluded.policy,
                    plan = excluded.plan, applied_at = excluded.applied_at, result = excluded.result,
                    error = excluded.error, drift = NULL, drift_checked_at = NULL`,
  appliedSetDrift: 'UPDATE applied SET drift = @drift, drift_checked_at = @checkedAt WHERE uuid = @uuid',
  appliedDelete: 'DELETE FROM applied WHERE uuid = ?',

  knobGet: 'SELECT knob, original, current, holders FROM knob_journal WHERE knob = ?',
  knobList: 'SELECT knob, original, current, holders FROM knob_journal ORDER BY knob',
  knobUpsert: `INSERT INTO knob_journal (knob, original, current, holders) VALUES (@knob, @original, @current, @holders)
               ON CONFLICT (knob) DO UPDATE SET current = excluded.current, holders = excluded.holders`,
  knobDelete: 'DELETE FROM knob_journal WHERE knob = ?',

  baselineGet: 'SELECT uuid, captured_at, baseline FROM baselines WHERE uuid = ?',
  baselineList: 'SELECT uuid, captured_at, baseline FROM baselines ORDER BY uuid',
  baselineUpsert: `INSERT INTO baselines (uuid, captured_at, baseline) VALUES (@uuid, @capturedAt, @baseline)
                   ON CONFLICT (uuid) DO UPDATE SET captured_at = excluded.captured_at, baseline = excluded.baseline`,
  baselineDelete: 'DELETE FROM baselines WHERE uuid = ?',

  outboxByKey: 'SELECT * FROM outbox WHERE idempotency_key = ?',
  outboxById: 'SELECT * FROM outbox WHERE id = ?',
  outboxNextSeq: `INSERT INTO outbox_seq (uuid, last_seq) VALUES (?, 1)
                  ON CONFLICT (uuid) DO UPDATE SET last_seq = last_seq + 1 RETURNING last_seq`,
  outboxInsert: `INSERT INTO outbox (uuid, seq, idempotency_key, body, created_at, next_attempt_at)
                 VALUES (@uuid, @seq, @idempotencyKey, @body, @createdAt, @nextAttemptAt)`,
  outboxCount: 'SELECT COUNT(*) AS n FROM outbox',
  outboxCountByState: 'SELECT COUNT(*) AS n FROM outbox WHERE state = ?',
  outboxOldest: 'SELECT * FROM outbox ORDER BY id LIMIT ?',
  // Only the oldest pending entry of each domain is eligible, which is what keeps order per domain.
  outboxHeads: `SELECT * FROM outbox WHERE id IN (SELECT MIN(id) FROM outbox WHERE state = 'pending' GROUP BY uuid)
                  AND next_attempt_at <= ? ORDER BY next_attempt_at, id LIMIT ?`,
  outboxNextAttemptAt: `SELECT MIN(next_attempt_at) AS t FROM outbox
                          WHERE id IN (SELECT MIN(id) FROM outbox WHERE state = 'pending' GROUP BY uuid)`,
  outboxList: 'SELECT * FROM outbox ORDER BY id',
  outboxListByState: 'SELECT * FROM outbox WHERE state = ? ORDER BY id',
  outboxDelete: 'DELETE FROM outbox WHERE id = ?',
  outboxRecordAttempt: `UPDATE outbox SET attempts = attempts + 1, next_attempt_at = @nextAttemptAt, last_error = @error
                        WHERE id = @id AND state = 'pending'`,
  outboxDeadLetter: `UPDATE outbox SET attempts = attempts + 1, last_error = @error, state = 'dead'
                     WHERE id = @id AND state = 'pending'`,

  counterGet: 'SELECT value FROM counters WHERE name = ?',
  counterAdd: `INSERT INTO counters (name, value) VALUES (@name, @delta)
               ON CONFLICT (name) DO UPDATE SET value = value + excluded.value`,
} as const;

export type StatementName = keyof typeof statements;
export type Statements = { [K in StatementName]: Database.Statement };

export function prepareStatements(db: Database.Database): Statements {
  const prepared = {} as Statements;
  for (const name of Object.keys(statements) as StatementName[]) prepared[name] = db.prepare(statements[name]);
  return prepared;
}
