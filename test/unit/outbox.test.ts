import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders, type OutgoingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterEach, beforeEach, describe, it } from 'node:test';

import winston from 'winston';

import { backoffDelay, DEFAULT_BACKOFF, OutboxPusher, parseRetryAfter, type OutboxPusherOptions } from '../../src/report/outbox.js';
import { Store } from '../../src/store/index.js';

const DOMAINS = [
  '6f1c2b7e-3a4d-4e5f-8a9b-0c1d2e3f4a5b',
  '7a2d3c8f-4b5e-4f60-9bac-1d2e3f4a5b6c',
  '8b3e4d90-5c6f-4071-8cbd-2e3f4a5b6c7d',
] as const;
const [D1, D2] = DOMAINS;

type Answer = { status: number; headers?: OutgoingHttpHeaders; body?: string } | 'reset' | 'hang';

interface Request {
  key: string;
  uuid: string;
  seq: number;
  body: unknown;
  headers: IncomingHttpHeaders;
  answer: Answer;
}

/** A real HTTP receiver on 127.0.0.1 whose answers the test switches as it goes. */
class Receiver {
  readonly requests: Request[] = [];
  answer: (request: Omit<Request, 'answer'>) => Answer = () => ({ status: 200 });
  port = 0;
  private server: Server | undefined;

  async listen(port = 0): Promise<this> {
    const server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => {
        const request = {
          key: String(req.headers['idempotency-key']),
          uuid: String(req.headers['x-es2-domain']),
          seq: Number(req.headers['x-es2-sequence']),
          body: JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown,
          headers: req.headers,
        };
        const answer = this.answer(request);
        this.requests.push({ ...request, answer });
        if (answer === 'reset') req.socket.destroy();
        else if (answer !== 'hang') res.writeHead(answer.status, answer.headers).end(answer.body ?? '');
      });
    });
    await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
    this.server = server;
    this.port = (server.address() as AddressInfo).port;
    return this;
  }

  async close(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}/v1/es2/reports`;
  }

  /** How many times each key got a 2xx. */
  accepted(): Map<string, number> {
    const counts = new Map<string, number>();
    for (const r of this.requests) {
      if (typeof r.answer === 'object' && r.answer.status < 300) counts.set(r.key, (counts.get(r.key) ?? 0) + 1);
    }
    return counts;
  }

  count(status: number | 'reset' | 'hang'): number {
    return this.requests.filter((r) => (typeof r.answer === 'object' ? r.answer.status : r.answer) === status).length;
  }
}

interface LogLine { level: string; message: string; [field: string]: unknown }

function captureLogger(): { logger: winston.Logger; lines: LogLine[] } {
  const lines: LogLine[] = [];
  const stream = new Writable({
    objectMode: true,
    write(info: LogLine, _encoding, done) {
      lines.push(info);
      done();
    },
  });
  return { logger: winston.createLogger({ level: 'debug', transports: [new winston.transports.Stream({ stream })] }), lines };
}

async function waitFor(what: string, condition: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** Every request of a domain carries the sequence after the last one accepted, never a later one. */
function assertOrderPerDomain(requests: Request[]): void {
  const expected = new Map<string, number>();
  for (const r of requests) {
    const next = expected.get(r.uuid) ?? 1;
    assert.equal(r.seq, next, `domain ${r.uuid}: sent seq ${r.seq} while ${next} was not yet delivered`);
    if (typeof r.answer === 'object' && r.answer.status < 300) expected.set(r.uuid, next + 1);
  }
}

const fastBackoff = { initialMs: 5, maxMs: 40 };

describe('OutboxPusher against a real HTTP receiver', () => {
  let dir: string;
  let store: Store;
  let receiver: Receiver;
  let pusher: OutboxPusher | undefined;
  let log: ReturnType<typeof captureLogger>;

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'es2-'));
    store = Store.open(dir);
    receiver = await new Receiver().listen();
    log = captureLogger();
  });
  afterEach(async () => {
    await pusher?.stop();
    pusher = undefined;
    await receiver.close();
    store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  function makePusher(options: Partial<OutboxPusherOptions> = {}): OutboxPusher {
    pusher = new OutboxPusher({ store, url: receiver.url, logger: log.logger, backoff: fastBackoff, timeoutMs: 2000, ...options });
    return pusher;
  }

  it('delivers every report exactly once per key, in order per domain, through resets, 500s and 429s', async () => {
    const p = makePusher({ token: 's3cret' });
    let phase: Answer = 'reset';
    receiver.answer = () => phase;
    const keys = DOMAINS.flatMap((uuid, d) => [1, 2, 3, 4].map((n) => ({ uuid, key: `report-${d}-${n}` })));
    for (const { uuid, key } of keys) p.enqueue({ uuid, idempotencyKey: key, body: { key, exits: 42 } });
    p.start();

    await waitFor('connection resets', () => receiver.count('reset') >= 6);
    phase = { status: 500, body: 'database is down' };
    await waitFor('500s', () => receiver.count(500) >= 6);
    phase = { status: 429, headers: { 'retry-after': '0' } };
    await waitFor('429s', () => receiver.count(429) >= 3);
    phase = { status: 202 };
    await waitFor('all delivered', () => p.metrics().delivered === keys.length);

    const accepted = receiver.accepted();
    assert.equal(accepted.size, keys.length);
    assert.ok([...accepted.values()].every((n) => n === 1), 'a key was accepted twice');
    assertOrderPerDomain(receiver.requests);
    for (const { uuid, key } of keys) {
      const delivered: Request | undefined = receiver.requests.find((r) => r.key === key && r.answer === phase);
      assert.equal(delivered?.uuid, uuid);
      assert.deepEqual(delivered?.body, { key, exits: 42 });
    }
    assert.ok(receiver.requests.every((r) => r.headers.authorization === 'Bearer s3cret'));
    assert.ok(receiver.requests.every((r) => r.headers['content-type'] === 'application/json'));

    const metrics = p.metrics();
    assert.deepEqual({ ...metrics, failures: undefined }, { depth: 0, deadLettered: 0, dropped: 0, delivered: 12, failures: undefined });
    assert.equal(metrics.failures, receiver.requests.length - 12);
    assert.ok(log.lines.some((l) => l.level === 'warn' && /HTTP 500: database is down/.test(l.message)));
    assert.ok(log.lines.some((l) => l.level === 'warn' && /other side closed \(UND_ERR_SOCKET\)/.test(l.message)));
  });

  it('waits out a refused connection and delivers once the receiver is back, with the configured header', async () => {
    const port = receiver.port;
    const url = receiver.url;
    await receiver.close();
    const p = makePusher({ url, header: { name: 'X-Api-Key', value: 'k-123' } });
    p.start();
    p.enqueue({ uuid: D1, idempotencyKey: 'a', body: { n: 1 } });
    p.enqueue({ uuid: D1, idempotencyKey: 'b', body: { n: 2 } });

    await waitFor('refused attempts', () => p.metrics().failures >= 3);
    const [head] = store.listOutbox();
    assert.equal(head?.idempotencyKey, 'a');
    assert.match(head?.lastError ?? '', /^connect ECONNREFUSED 127\.0\.0\.1:\d+$/);

    await receiver.listen(port);
    await waitFor('delivery', () => p.metrics().delivered === 2);
    assert.deepEqual(receiver.requests.map((r) => [r.key, r.headers['x-api-key']]), [['a', 'k-123'], ['b', 'k-123']]);
  });

  it('retries a request that timed out with the same idempotency key', async () => {
    const p = makePusher({ timeoutMs: 150 });
    let first = true;
    receiver.answer = () => {
      if (!first) return { status: 200 };
      first = false;
      return 'hang';
    };
    p.start();
    p.enqueue({ uuid: D1, idempotencyKey: 'slow', body: {} });
    await waitFor('delivery', () => p.metrics().delivered === 1);
    assert.deepEqual(receiver.requests.map((r) => [r.key, r.answer]), [['slow', 'hang'], ['slow', { status: 200 }]]);
    assert.ok(log.lines.some((l) => /no answer within 150 ms/.test(l.message)));
  });

  it('keeps a report the receiver refuses as a visible dead letter and moves on to the next', async () => {
    const p = makePusher();
    receiver.answer = (r) => (r.key === 'bad' ? { status: 422, body: 'schema mismatch' } : { status: 200 });
    p.enqueue({ uuid: D1, idempotencyKey: 'bad', body: {} });
    p.enqueue({ uuid: D1, idempotencyKey: 'good', body: {} });
    p.start();
    await waitFor('delivery', () => p.metrics().delivered === 1);

    assert.deepEqual(store.listOutbox('dead').map((e) => [e.idempotencyKey, e.lastError]), [['bad', 'HTTP 422: schema mismatch']]);
    assert.deepEqual(receiver.requests.map((r) => r.key), ['bad', 'good']);
    assert.equal(p.metrics().deadLettered, 1);
    assert.ok(log.lines.some((l) => l.level === 'error' && /refused report bad/.test(l.message)));
  });

  it('a full outbox drops the oldest with a counter and a log line, and the rest still go', async () => {
    store.close();
    store = Store.open(dir, { outboxCapacity: 3 });
    const p = makePusher();
    for (const n of [1, 2, 3, 4, 5]) p.enqueue({ uuid: n % 2 ? D1 : D2, idempotencyKey: `r${n}`, body: { n } });

    const drops = log.lines.filter((l) => l.level === 'warn' && /outbox full/.test(l.message));
    assert.deepEqual(drops.map((l) => l.idempotencyKey), ['r1', 'r2']);
    assert.deepEqual(drops.map((l) => l.droppedTotal), [1, 2]);
    assert.equal(p.metrics().dropped, 2);

    p.start();
    await waitFor('delivery', () => p.metrics().delivered === 3);
    assert.deepEqual(new Set(receiver.accepted().keys()), new Set(['r3', 'r4', 'r5']));
    // Sequence numbers show the receiver the gaps the drops left.
    assert.deepEqual(receiver.requests.filter((r) => r.uuid === D1).map((r) => r.seq), [2, 3]);
  });

  it('keeps attempts across a restart and waits for the next attempt time', async () => {
    receiver.answer = () => ({ status: 503, body: 'busy' });
    const first = makePusher({ backoff: { initialMs: 60_000 } });
    first.enqueue({ uuid: D1, idempotencyKey: 'k', body: {} });
    assert.deepEqual(await first.pushOnce(), { delivered: 0, retried: 1, deadLettered: 0 });
    store.close();

    store = Store.open(dir);
    const [entry] = store.listOutbox();
    assert.equal(entry?.attempts, 1);
    assert.equal(entry?.lastError, 'HTTP 503: busy');
    receiver.answer = () => ({ status: 200 });
    const restarted = makePusher();
    assert.deepEqual(await restarted.pushOnce(), { delivered: 0, retried: 0, deadLettered: 0 });
    const later = makePusher({ clock: () => Date.now() + 61_000 });
    assert.deepEqual(await later.pushOnce(), { delivered: 1, retried: 0, deadLettered: 0 });
    assert.deepEqual(receiver.requests.map((r) => r.key), ['k', 'k']);
  });

  it('honours Retry-After beyond the backoff', async () => {
    const now = 1_700_000_000_000;
    receiver.answer = () => ({ status: 429, headers: { 'retry-after': '30' } });
    const p = makePusher({ clock: () => now, random: () => 0, backoff: { initialMs: 10 } });
    p.enqueue({ uuid: D1, idempotencyKey: 'k', body: {} });
    await p.pushOnce();
    assert.equal(store.listOutbox()[0]?.nextAttemptAt, now + 30_000);
  });
});

describe('outbox backoff', () => {
  it('grows exponentially to the cap, with jitter taking at most the configured fraction', () => {
    const full = (attempts: number): number => backoffDelay(attempts, DEFAULT_BACKOFF, () => 0);
    assert.deepEqual([1, 2, 3, 4].map(full), [1000, 2000, 4000, 8000]);
    assert.equal(full(30), DEFAULT_BACKOFF.maxMs);
    assert.equal(backoffDelay(3, DEFAULT_BACKOFF, () => 0.999_999), 2000);
    for (let i = 0; i < 100; i++) {
      const delay = backoffDelay(2, DEFAULT_BACKOFF, Math.random);
      assert.ok(delay >= 1000 && delay <= 2000, `delay ${delay}`);
    }
  });

  it('reads Retry-After as seconds or as a date', () => {
    const now = Date.parse('2025-01-01T00:00:00Z');
    assert.equal(parseRetryAfter('5', now), 5000);
    assert.equal(parseRetryAfter('Wed, 01 Jan 2025 00:00:10 GMT', now), 10_000);
    assert.equal(parseRetryAfter('soon', now), undefined);
    assert.equal(parseRetryAfter(null, now), undefined);
  });
});
