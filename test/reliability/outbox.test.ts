// The orchestrator endpoint misbehaving while a real es2d pushes savings reports (replayed stats of
// three domains of a private test driver, one report per domain per second): connections refused,
// 500s, answers that never come, es2d killed with SIGKILL while reports wait and restarted on the
// same state, answers lost after the receiver took the report. The outbox depth shows in /metrics
// meanwhile. When the receiver recovers, nothing may be lost: per domain the sequence numbers of
// the reports received are exactly 1..N of what es2d ever enqueued, first deliveries come in
// sequence order, a repeated delivery carries the same idempotency key and body, and the outbox
// ends empty with nothing dropped or dead-lettered.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';

import Database from 'better-sqlite3';

import { DB_FILE } from '../../src/store/index.js';
import { startEs2d, type Es2dProcess } from '../helpers/es2d.js';
import { tempDir } from '../helpers/temp.js';
import { until } from '../helpers/wait.js';
import { tally } from './figures.js';
import { send, sleep } from './support.js';
import { captureFile, testDriverNode } from './driver-file.js';

const figures = tally('outbox');
const PHASE_MS = 2500;
const DRAIN_MS = 90_000;

type Mode = 'refuse' | 'fail500' | 'hang' | 'drop' | 'ok';

interface Delivery { key: string; domain: string; seq: number; body: string; at: number }

/** The orchestrator endpoint, real HTTP on loopback, misbehaving on demand. */
class Receiver {
  mode: Mode = 'refuse';
  port = 0;
  /** First deliveries, in arrival order. */
  readonly accepted: Delivery[] = [];
  readonly bodies = new Map<string, string>();
  duplicates = 0;
  mismatchedDuplicates = 0;
  /** Requests answered badly on purpose (500, no answer, answer cut off). */
  faults = 0;
  /** Requests received per mode. */
  readonly hits = new Map<Mode, number>();
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();

  async listen(): Promise<void> {
    const server = createServer((req, res) => this.handle(req, res));
    server.on('connection', (s) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
    await new Promise<void>((resolve) => server.listen(this.port, '127.0.0.1', resolve));
    this.port = (server.address() as AddressInfo).port;
    this.server = server;
  }

  /** Stops listening: connections are refused from now on. */
  async close(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    for (const s of this.sockets) s.destroy();
    if (server !== undefined) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const mode = this.mode;
      this.hits.set(mode, (this.hits.get(mode) ?? 0) + 1);
      if (mode === 'fail500') {
        this.faults++;
        res.writeHead(500).end('orchestrator unavailable');
        return;
      }
      if (mode === 'hang') {
        this.faults++;
        return;
      }
      const key = String(req.headers['idempotency-key']);
      const body = Buffer.concat(chunks).toString('utf8');
      const seen = this.bodies.get(key);
      if (seen === undefined) {
        this.bodies.set(key, body);
        this.accepted.push({ key, domain: String(req.headers['x-es2-domain']), seq: Number(req.headers['x-es2-sequence']), body, at: Date.now() });
      } else {
        // Idempotency: the same key is the same report, acknowledged again and not counted twice.
        this.duplicates++;
        if (seen !== body) this.mismatchedDuplicates++;
      }
      if (mode === 'drop') {
        // Taken, but the answer never reaches es2d: it must send the report again.
        this.faults++;
        req.socket.destroy();
        return;
      }
      res.writeHead(202).end();
    });
  }
}

describe('reports pushed to a failing orchestrator endpoint', () => {
  const receiver = new Receiver();
  let es2d: Es2dProcess;
  let config: string;
  let uri: string;
  const depths: number[] = [];

  before(async () => {
    // A port that was free a moment ago, then nobody listening on it: connections are refused.
    await receiver.listen();
    await receiver.close();
    const names = ['es2rel-ob-0', 'es2rel-ob-1', 'es2rel-ob-2'];
    ({ uri } = testDriverNode(names));
    config = join(tempDir('es2rel-ob-'), 'es2d.yaml');
    writeFileSync(config, [
      `statsReplay: ${captureFile(names)}`,
      'savings:', '  windowSeconds: 1', '  minIoOps: 100',
      'orchestrator:', `  url: http://127.0.0.1:${receiver.port}/es2/reports`, '  timeoutMs: 400', '  outboxCapacity: 5000',
      '',
    ].join('\n'));
  });

  after(async () => {
    await es2d?.stop();
    await receiver.close();
  });

  const start = (stateDir?: string, socket?: string): Promise<Es2dProcess> =>
    startEs2d({ uri, args: ['--config', config, '--stats-interval', '0.25'], ...(stateDir === undefined ? {} : { stateDir }), ...(socket === undefined ? {} : { socket }) });

  async function depth(): Promise<number> {
    const r = await send(`unix:${es2d.socket}`, { method: 'GET', path: '/metrics' });
    const m = /^es2_outbox_depth (\d+)/m.exec(r.text);
    assert.ok(m !== null, 'es2_outbox_depth is in /metrics');
    const d = Number(m[1]);
    depths.push(d);
    return d;
  }

  /** `ms` at least, and (but for refusals, which the receiver cannot see) until es2d has tried once. */
  async function phase(mode: Mode, ms: number): Promise<void> {
    receiver.mode = mode;
    if (mode === 'refuse') await receiver.close();
    else if (!receiverListening) await receiver.listen();
    receiverListening = mode !== 'refuse';
    figures.faultsInjected += mode === 'ok' ? 0 : 1;
    const end = Date.now() + ms;
    // es2d's backoff grows with each failed attempt (1 s, 2 s, 4 s, ... with jitter).
    const limit = Date.now() + 30_000;
    while (Date.now() < end || (mode !== 'refuse' && (receiver.hits.get(mode) ?? 0) === 0 && Date.now() < limit)) {
      await depth();
      await sleep(250);
    }
    if (mode !== 'refuse') assert.ok((receiver.hits.get(mode) ?? 0) > 0, `es2d never tried the endpoint while it was in mode ${mode}`);
  }
  let receiverListening = false;

  it('keeps every report through refusals, 500s, hangs, a SIGKILL and lost answers, and delivers each once', async () => {
    es2d = await start();
    await phase('refuse', PHASE_MS);
    assert.ok(depths.at(-1)! > 0, `reports wait in the outbox while the endpoint refuses (depths ${depths.join(',')})`);
    await phase('fail500', PHASE_MS);
    await phase('hang', PHASE_MS);

    // es2d dies with reports waiting; the restart reuses its state and its (stale) socket.
    const waiting = await depth();
    assert.ok(waiting > 0);
    await es2d.kill('SIGKILL');
    figures.faultsInjected++;
    es2d = await start(es2d.stateDir, es2d.socket);
    assert.ok((await depth()) >= waiting, 'the reports waiting before the SIGKILL are still in the outbox');

    await phase('drop', PHASE_MS);
    receiver.mode = 'ok';
    figures.faultsInjected += receiver.faults;
    figures.note('maxOutboxDepth', Math.max(...depths));

    // Recovered: the outbox drains (backoff permitting), then es2d stops to freeze the count.
    await until('the outbox to drain', async () => ((await depth()) === 0 ? true : undefined), DRAIN_MS);
    const stateDir = es2d.stateDir;
    await es2d.stop();
    await sleep(200);

    const db = new Database(join(stateDir, DB_FILE), { readonly: true });
    const enqueued = new Map((db.prepare('SELECT uuid, last_seq FROM outbox_seq').all() as { uuid: string; last_seq: number }[])
      .map((r) => [r.uuid, r.last_seq]));
    const left = db.prepare('SELECT state, COUNT(*) AS n FROM outbox GROUP BY state').all() as { state: string; n: number }[];
    const dropped = (db.prepare("SELECT value FROM counters WHERE name = 'outbox_dropped'").get() as { value: number } | undefined)?.value ?? 0;
    db.close();

    figures.reportsPushed += receiver.accepted.length;
    figures.note('duplicatesAcknowledged', receiver.duplicates);
    const lost: string[] = [];
    for (const [uuid, last] of enqueued) {
      const seqs = receiver.accepted.filter((d) => d.domain === uuid).map((d) => d.seq);
      const missing = Array.from({ length: last }, (_, i) => i + 1).filter((s) => !seqs.includes(s));
      if (missing.length > 0) lost.push(`${uuid}: seq ${missing.join(',')} of 1..${last} never arrived`);
      figures.dataLost += missing.length;
      assert.deepEqual(seqs, [...seqs].sort((a, b) => a - b), `${uuid}: first deliveries out of sequence order`);
    }
    figures.dataLost += dropped;
    assert.deepEqual(lost, []);
    assert.equal(enqueued.size, 3, 'every domain had reports enqueued');
    assert.ok(receiver.accepted.length >= 9, `only ${receiver.accepted.length} reports`);
    assert.deepEqual(left, [], 'the outbox is empty: nothing pending, nothing dead-lettered');
    assert.equal(dropped, 0, 'nothing dropped from a full outbox');
    assert.ok(receiver.duplicates > 0, 'a report whose answer was lost was sent again');
    assert.equal(receiver.mismatchedDuplicates, 0, 'a repeated idempotency key always carried the same report');
    assert.equal(new Set(receiver.accepted.map((d) => d.key)).size, receiver.accepted.length);
  });
});
