// The store's schema as an ordered list of migrations. `PRAGMA user_version` records how many
// have run; each runs in its own transaction together with the version bump, so a failed
// migration leaves the database exactly at the previous version.

export interface Migration {
  /** The `user_version` after this migration. Versions are 1, 2, 3, ... without gaps. */
  version: number;
  description: string;
  sql: string;
}

export const migrations: readonly Migration[] = [
  {
    version: 1,
    description: 'policies, applied state, knob journal, baselines, report outbox',
    sql: `
      CREATE TABLE policies (
        uuid       TEXT PRIMARY KEY,
        name       TEXT,
        policy     TEXT NOT NULL,
        etag       TEXT NOT NULL,
        updated_at TEXT NOT NULL
      ) STRICT;

      CREATE TABLE applied (
        uuid             TEXT PRIMARY KEY,
        name             TEXT,
        policy           TEXT,
        plan             TEXT,
        applied_at       TEXT NOT NULL,
        result           TEXT NOT NULL,
        error            TEXT,
        drift            TEXT,
        drift_checked_at TEXT
      ) STRICT;

      CREATE TABLE knob_journal (
        knob     TEXT PRIMARY KEY,
        original INTEGER NOT NULL,
        current  INTEGER NOT NULL,
        holders  TEXT NOT NULL
      ) STRICT;

      CREATE TABLE baselines (
        uuid        TEXT PRIMARY KEY,
        captured_at TEXT NOT NULL,
        baseline    TEXT NOT NULL
      ) STRICT;

      CREATE TABLE outbox (
        id              INTEGER PRIMARY KEY AUTOINCREMENT,
        uuid            TEXT NOT NULL,
        seq             INTEGER NOT NULL,
        idempotency_key TEXT NOT NULL UNIQUE,
        body            TEXT NOT NULL,
        created_at      TEXT NOT NULL,
        attempts        INTEGER NOT NULL DEFAULT 0,
        next_attempt_at INTEGER NOT NULL,
        last_error      TEXT,
        state           TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'dead')),
        UNIQUE (uuid, seq)
      ) STRICT;
      CREATE INDEX outbox_pending ON outbox (state, uuid, id);

      -- Per-domain report sequence numbers outlive delivered entries, so a receiver can tell a
      -- gap (a report dropped from a full outbox) from a restart.
      CREATE TABLE outbox_seq (
        uuid     TEXT PRIMARY KEY,
        last_seq INTEGER NOT NULL
      ) STRICT;

      CREATE TABLE counters (
        name  TEXT PRIMARY KEY,
        value INTEGER NOT NULL
      ) STRICT;
    `,
  },
];

export const latestVersion = migrations.length;
