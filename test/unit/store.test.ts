import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';

import Database from 'better-sqlite3';

import { isEs2Error } from '../../src/errors/index.js';
import { DB_FILE, migrate, Store, type Migration } from '../../src/store/index.js';

const U1 = '6f1c2b7e-3a4d-4e5f-8a9b-0c1d2e3f4a5b';
const U2 = '7a2d3c8f-4b5e-4f60-9bac-1d2e3f4a5b6c';

function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'es2-'));
}

describe('Store: migrations', () => {
  let dir: string;
  before(() => { dir = tempDir(); });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('creates the schema, and a reopened store keeps its data', () => {
    const store = Store.open(dir);
    store.putPolicy(U1, { enabled: true }, { name: 'vm1' });
    store.close();

    const again = Store.open(dir);
    assert.deepEqual(again.getPolicy(U1)?.policy, { enabled: true });
    assert.equal(again.getPolicy(U1)?.name, 'vm1');
    again.close();

    const raw = new Database(join(dir, DB_FILE), { readonly: true });
    assert.equal(raw.pragma('user_version', { simple: true }), Store.schemaVersion);
    assert.equal(raw.pragma('journal_mode', { simple: true }), 'wal');
    raw.close();
  });

  it('refuses a database written by a newer schema and leaves it untouched', () => {
    const raw = new Database(join(dir, DB_FILE));
    raw.pragma(`user_version = ${Store.schemaVersion + 1}`);
    raw.close();

    assert.throws(() => Store.open(dir), (err: unknown) =>
      isEs2Error(err, 'INTERNAL') && /schema version 2.*written by a newer es2/.test(err.message));

    const check = new Database(join(dir, DB_FILE), { readonly: true });
    assert.equal(check.pragma('user_version', { simple: true }), Store.schemaVersion + 1);
    check.close();
  });

  it('runs each migration in its own transaction: a failing one leaves the previous version', () => {
    const db = new Database(':memory:');
    const list: Migration[] = [
      { version: 1, description: 'one', sql: 'CREATE TABLE a (x INTEGER);' },
      { version: 2, description: 'two, broken halfway', sql: 'CREATE TABLE b (x INTEGER); INSERT INTO nowhere VALUES (1);' },
    ];
    assert.throws(() => migrate(db, list), /no such table: nowhere/);
    assert.equal(db.pragma('user_version', { simple: true }), 1);
    const tables = db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").pluck().all();
    assert.deepEqual(tables, ['a']);

    const fixed: Migration[] = [list[0] as Migration, { version: 2, description: 'two', sql: 'CREATE TABLE b (x INTEGER);' }];
    assert.equal(migrate(db, fixed), 2);
    assert.equal(db.pragma('user_version', { simple: true }), 2);
    db.close();
  });

  it('refuses a migration list with a gap in its versions', () => {
    const db = new Database(':memory:');
    assert.throws(() => migrate(db, [{ version: 2, description: 'x', sql: '' }]), /numbered 2/);
    db.close();
  });
});

describe('Store: desired policies', () => {
  let dir: string;
  let store: Store;
  before(() => { dir = tempDir(); store = Store.open(dir); });
  after(() => { store.close(); rmSync(dir, { recursive: true, force: true }); });

  it('puts, gets, lists and deletes by UUID (case-insensitively)', () => {
    const first = store.putPolicy(U1.toUpperCase(), { enabled: true });
    assert.equal(first.uuid, U1);
    assert.equal(first.name, null);
    store.putPolicy(U2, { enabled: false }, { name: 'vm2' });
    assert.deepEqual(store.listPolicies().map((p) => p.uuid), [U1, U2]);
    assert.equal(store.deletePolicy(U2), true);
    assert.equal(store.deletePolicy(U2), false);
    assert.equal(store.getPolicy(U2), undefined);
  });

  it('changes the ETag on every write, even of the same policy, and keeps a known name', () => {
    const a = store.putPolicy(U1, { enabled: true }, { name: 'vm1' });
    const b = store.putPolicy(U1, { enabled: true });
    assert.notEqual(a.etag, b.etag);
    assert.equal(b.name, 'vm1');
  });

  it('writes with If-Match only when the ETag is current', () => {
    const current = store.putPolicy(U1, { enabled: true });
    const next = store.putPolicy(U1, { enabled: false }, { ifMatch: current.etag });
    assert.throws(() => store.putPolicy(U1, { enabled: true }, { ifMatch: current.etag }),
      (err: unknown) => isEs2Error(err, 'PRECONDITION_FAILED'));
    assert.throws(() => store.deletePolicy(U1, { ifMatch: current.etag }),
      (err: unknown) => isEs2Error(err, 'PRECONDITION_FAILED'));
    assert.deepEqual(store.getPolicy(U1)?.policy, { enabled: false });
    assert.equal(store.getPolicy(U1)?.etag, next.etag);
    assert.ok(store.putPolicy(U1, { enabled: true }, { ifMatch: '*' }));
  });

  it('If-Match on a domain with no policy is a failed precondition', () => {
    assert.throws(() => store.putPolicy(U2, { enabled: true }, { ifMatch: '*' }),
      (err: unknown) => isEs2Error(err, 'PRECONDITION_FAILED'));
  });

  it('refuses something that is not a UUID', () => {
    assert.throws(() => store.putPolicy('vm1', {}), (err: unknown) => isEs2Error(err, 'VALIDATION_FAILED'));
  });
});

// Real concurrency: each worker thread has its own SQLite connection to the same file.
const workerSource = `
const { workerData, parentPort } = require('node:worker_threads');
import(workerData.storeUrl).then(({ Store }) => {
  const store = Store.open(workerData.dir);
  Atomics.wait(new Int32Array(workerData.go), 0, 0);
  const outcome = { won: 0, refused: 0, other: [] };
  const attempt = (fn) => {
    try { fn(); outcome.won++; return true; }
    catch (err) { if (err.code === 'PRECONDITION_FAILED') { outcome.refused++; return false; } outcome.other.push(String(err)); return true; }
  };
  if (workerData.mode === 'stale') {
    attempt(() => store.putPolicy(workerData.uuid, { writer: workerData.id }, { ifMatch: workerData.etag }));
  } else {
    for (let i = 0; i < workerData.increments; i++) {
      while (!attempt(() => {
        const cur = store.getPolicy(workerData.uuid);
        store.putPolicy(workerData.uuid, { count: cur.policy.count + 1 }, { ifMatch: cur.etag });
      }));
    }
  }
  store.close();
  parentPort.postMessage(outcome);
});
`;

interface WorkerOutcome { won: number; refused: number; other: string[] }

async function race(dir: string, count: number, data: Record<string, unknown>): Promise<WorkerOutcome[]> {
  const go = new SharedArrayBuffer(4);
  const storeUrl = pathToFileURL(join(import.meta.dirname, '../../src/store/index.js')).href;
  const workers = Array.from({ length: count }, (_, id) =>
    new Worker(workerSource, { eval: true, workerData: { ...data, id, dir, go, storeUrl } }));
  const results = workers.map((w) => new Promise<WorkerOutcome>((resolve, reject) => {
    w.once('message', resolve);
    w.once('error', reject);
  }));
  // Give every worker time to open its connection, then release them together.
  await new Promise((resolve) => setTimeout(resolve, 300));
  const flag = new Int32Array(go);
  Atomics.store(flag, 0, 1);
  Atomics.notify(flag, 0);
  const outcomes = await Promise.all(results);
  await Promise.all(workers.map((w) => w.terminate()));
  return outcomes;
}

describe('Store: compare-and-set under concurrent writers', () => {
  let dir: string;
  before(() => { dir = tempDir(); });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('of many writers with the same ETag exactly one wins', async () => {
    const store = Store.open(dir);
    const { etag } = store.putPolicy(U1, { writer: 'initial' });
    const outcomes = await race(dir, 12, { mode: 'stale', uuid: U1, etag });
    assert.deepEqual(outcomes.flatMap((o) => o.other), []);
    assert.equal(outcomes.reduce((n, o) => n + o.won, 0), 1);
    assert.equal(outcomes.reduce((n, o) => n + o.refused, 0), 11);
    assert.notEqual(store.getPolicy(U1)?.etag, etag);
    store.close();
  });

  it('read-modify-write loops that retry on a stale ETag lose no update', async () => {
    const store = Store.open(dir);
    store.putPolicy(U2, { count: 0 });
    const outcomes = await race(dir, 10, { mode: 'increment', uuid: U2, increments: 10 });
    assert.deepEqual(outcomes.flatMap((o) => o.other), []);
    assert.deepEqual(store.getPolicy(U2)?.policy, { count: 100 });
    store.close();
  });
});

describe('Store: applied state and baselines', () => {
  let dir: string;
  let store: Store;
  before(() => { dir = tempDir(); store = Store.open(dir); });
  after(() => { store.close(); rmSync(dir, { recursive: true, force: true }); });

  it('records an apply, then drift, and a new apply clears the drift', () => {
    store.putApplied({ uuid: U1, name: 'vm1', policy: { enabled: true }, plan: { steps: 2 }, result: 'ok' });
    assert.equal(store.setDrift(U1, { pins: 'changed' }), true);
    const drifted = store.getApplied(U1);
    assert.deepEqual(drifted?.drift, { pins: 'changed' });
    assert.ok(drifted?.driftCheckedAt);

    const again = store.putApplied({ uuid: U1, policy: null, plan: null, result: 'failed', error: 'libvirt went away' });
    assert.equal(again.drift, null);
    assert.equal(again.error, 'libvirt went away');
    assert.equal(again.result, 'failed');
    assert.equal(store.setDrift(U2, {}), false);
    assert.deepEqual(store.listApplied().map((a) => a.uuid), [U1]);
    assert.equal(store.deleteApplied(U1), true);
  });

  it('keeps baselines as opaque JSON with their capture time', () => {
    const baseline = { capturedAt: '2025-01-02T03:04:05.000Z', seconds: 60, byReason: { exits: { perSecond: 5 } } };
    store.putBaseline(U1, baseline);
    assert.deepEqual(store.getBaseline(U1), { uuid: U1, capturedAt: baseline.capturedAt, baseline });
    assert.equal(store.listBaselines().length, 1);
    assert.throws(() => store.putBaseline(U2, { capturedAt: 'yesterday' }), (err: unknown) => isEs2Error(err, 'VALIDATION_FAILED'));
    assert.equal(store.deleteBaseline(U1), true);
    assert.equal(store.getBaseline(U1), undefined);
  });
});

describe('Store: knob journal rows', () => {
  let dir: string;
  before(() => { dir = tempDir(); });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('never overwrites the recorded original', () => {
    const store = Store.open(dir);
    store.putKnob({ knob: 'halt_poll_ns', original: 200000, current: 300000, holders: { [U1]: 300000 } });
    store.putKnob({ knob: 'halt_poll_ns', original: 300000, current: 400000, holders: { [U1]: 300000, [U2]: 400000 } });
    store.close();
    const again = Store.open(dir);
    assert.deepEqual(again.getKnob('halt_poll_ns'), {
      knob: 'halt_poll_ns', original: 200000, current: 400000, holders: { [U1]: 300000, [U2]: 400000 },
    });
    assert.equal(again.deleteKnob('halt_poll_ns'), true);
    assert.deepEqual(again.listKnobs(), []);
    again.close();
  });
});

describe('Store: report outbox', () => {
  let dir: string;
  before(() => { dir = tempDir(); });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('hands out only the oldest pending entry of each domain', () => {
    const store = Store.open(join(dir, 'heads'));
    for (const [uuid, key] of [[U1, 'a1'], [U2, 'b1'], [U1, 'a2'], [U2, 'b2']] as const) {
      store.enqueueReport({ uuid, idempotencyKey: key, body: { key } });
    }
    assert.deepEqual(store.outboxHeads(Date.now(), 10).map((e) => e.idempotencyKey), ['a1', 'b1']);

    const [a1] = store.outboxHeads(Date.now(), 1);
    assert.ok(a1);
    assert.equal(store.recordAttempt(a1.id, 'HTTP 500', Date.now() + 60_000), true);
    // a1 waits for its retry and a2 must not overtake it.
    assert.deepEqual(store.outboxHeads(Date.now(), 10).map((e) => e.idempotencyKey), ['b1']);
    assert.equal(store.outboxNextAttemptAt(), 0);

    const b1 = store.listOutbox().find((e) => e.idempotencyKey === 'b1');
    assert.ok(b1);
    assert.equal(store.markDelivered(b1.id), true);
    assert.deepEqual(store.outboxHeads(Date.now(), 10).map((e) => [e.idempotencyKey, e.seq]), [['b2', 2]]);
    assert.deepEqual(store.outboxHeads(Date.now() + 60_000, 10).map((e) => e.idempotencyKey), ['b2', 'a1']);

    const retried = store.listOutbox().find((e) => e.idempotencyKey === 'a1');
    assert.equal(retried?.attempts, 1);
    assert.equal(retried?.lastError, 'HTTP 500');
    store.close();
  });

  it('moves a dead letter aside so the next entry of its domain can go', () => {
    const store = Store.open(join(dir, 'dead'));
    const { entry } = store.enqueueReport({ uuid: U1, idempotencyKey: 'x1', body: {} });
    store.enqueueReport({ uuid: U1, idempotencyKey: 'x2', body: {} });
    assert.equal(store.deadLetter(entry.id, 'HTTP 400: bad report'), true);
    assert.deepEqual(store.outboxHeads(Date.now(), 10).map((e) => e.idempotencyKey), ['x2']);
    assert.deepEqual(store.listOutbox('dead').map((e) => [e.idempotencyKey, e.lastError]), [['x1', 'HTTP 400: bad report']]);
    assert.deepEqual(store.outboxStats(), { depth: 1, deadLettered: 1, dropped: 0 });
    store.close();
  });

  it('stores a repeated idempotency key once', () => {
    const store = Store.open(join(dir, 'dup'));
    const first = store.enqueueReport({ uuid: U1, idempotencyKey: 'k', body: { n: 1 } });
    const second = store.enqueueReport({ uuid: U1, idempotencyKey: 'k', body: { n: 2 } });
    assert.equal(second.duplicate, true);
    assert.equal(second.entry.id, first.entry.id);
    assert.deepEqual(second.entry.body, { n: 1 });
    assert.equal(store.outboxStats().depth, 1);
    store.close();
  });

  it('when full drops the oldest, returns it and counts it across restarts', () => {
    const path = join(dir, 'full');
    const store = Store.open(path, { outboxCapacity: 3 });
    for (const key of ['r1', 'r2', 'r3']) assert.deepEqual(store.enqueueReport({ uuid: U1, idempotencyKey: key, body: {} }).dropped, []);
    const result = store.enqueueReport({ uuid: U2, idempotencyKey: 'r4', body: {} });
    assert.deepEqual(result.dropped.map((e) => e.idempotencyKey), ['r1']);
    assert.deepEqual(store.listOutbox().map((e) => e.idempotencyKey), ['r2', 'r3', 'r4']);
    store.close();

    const again = Store.open(path, { outboxCapacity: 3 });
    assert.deepEqual(again.outboxStats(), { depth: 3, deadLettered: 0, dropped: 1 });
    // Sequence numbers are never reused, so a receiver sees the gap r1 left.
    assert.equal(again.enqueueReport({ uuid: U1, idempotencyKey: 'r5', body: {} }).entry.seq, 4);
    assert.equal(again.outboxStats().dropped, 2);
    again.close();
  });

  it('refuses a capacity below one', () => {
    assert.throws(() => Store.open(join(dir, 'zero'), { outboxCapacity: 0 }), (err: unknown) => isEs2Error(err, 'VALIDATION_FAILED'));
  });
});
