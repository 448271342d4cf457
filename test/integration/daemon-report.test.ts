// es2d's reporting to the orchestrator, end to end on test:///default: savings reports (replayed
// from the demo capture, since the test driver has no KVM counters) are pushed through the durable
// outbox to a real local receiver that fails first; the Nova provider config carries the traits.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';

import { parse as parseYaml } from 'yaml';

import { loadSpec } from '../../src/api/spec.js';
import { Daemon } from '../../src/daemon/daemon.js';
import { resolveConfig } from '../../src/daemon/config.js';
import { silentLogger } from '../../src/daemon/logger.js';
import { packageFile } from '../../src/package/root.js';
import { hostTree, STOCK_HOST, tempDir } from '../helpers/temp.js';

interface Received { key: string; domain: string; seq: string; body: { name: string; confidence: string } }

describe('es2d pushes savings reports and writes the Nova provider config', () => {
  let daemon: Daemon;
  let receiver: Server;
  let hostRoot: string;
  const received: Received[] = [];
  let failuresLeft = 3;

  before(async () => {
    receiver = createServer((req: IncomingMessage, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        if (failuresLeft-- > 0) {
          res.writeHead(500).end('not yet');
          return;
        }
        received.push({
          key: String(req.headers['idempotency-key']), domain: String(req.headers['x-es2-domain']),
          seq: String(req.headers['x-es2-sequence']), body: JSON.parse(Buffer.concat(chunks).toString('utf8')) as Received['body'],
        });
        res.writeHead(202).end();
      });
    });
    await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
    const port = (receiver.address() as AddressInfo).port;
    hostRoot = hostTree(STOCK_HOST);
    const config = resolveConfig({ uri: 'test:///default', listen: [`unix:${join(tempDir(), 's.sock')}`], stateDir: tempDir(), hostRoot, statsInterval: 0.2 });
    daemon = await Daemon.start({
      ...config,
      statsReplay: packageFile('demo', 'test-after.cap'),
      savings: { ...config.savings, windowSeconds: 1 },
      orchestrator: { url: `http://127.0.0.1:${port}/es2/reports`, timeoutMs: 2000, outboxCapacity: 100 },
    }, silentLogger());
    await daemon.waitReady();
  });

  after(async () => {
    await daemon?.stop();
    receiver?.closeAllConnections();
    receiver?.close();
  });

  it('delivers reports after the receiver recovers, once per idempotency key, in order per domain', async () => {
    const deadline = Date.now() + 30_000;
    while (received.length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    assert.ok(received.length >= 2, `received ${received.length} reports`);
    const validate = loadSpec().schema('SavingsReport');
    for (const r of received) {
      assert.ok(validate(r.body), JSON.stringify(validate.errors));
      assert.equal(r.body.name, 'test');
      assert.match(r.key, /^[0-9a-f-]{36}\/\d{4}-\d\d-\d\dT/);
    }
    assert.equal(new Set(received.map((r) => r.key)).size, received.length);
    const seqs = received.map((r) => Number(r.seq));
    assert.deepEqual(seqs, [...seqs].sort((a, b) => a - b));
    assert.equal(daemon.outbox?.metrics().dropped, 0);
  });

  it('writes the Nova provider config with CUSTOM_ES2_* traits from the probe', () => {
    const doc = parseYaml(readFileSync(join(hostRoot, 'etc/nova/provider_config/es2.yaml'), 'utf8')) as {
      meta: { schema_version: string };
      providers: { identification: { uuid: string }; traits: { additional: string[] } }[];
    };
    assert.equal(doc.meta.schema_version, '1.0');
    assert.equal(doc.providers[0]?.identification.uuid, '$COMPUTE_NODE');
    const traits = doc.providers[0]?.traits.additional ?? [];
    assert.ok(traits.includes('CUSTOM_ES2_CAPABLE'));
    assert.ok(traits.includes('CUSTOM_ES2_POSTED_INTERRUPTS'));
    assert.ok(traits.includes('CUSTOM_ES2_HALT_POLL'));
    assert.ok(!traits.includes('CUSTOM_ES2_KERNEL'));
  });
});
