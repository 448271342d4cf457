// es2d in-process on test:///default: the test's own libvirt connection shares the driver's state
// with the daemon (one process), so the test can restart, redefine and re-pin domains behind
// es2d's back and watch it converge. The test driver accepts vcpupin with AFFECT_CURRENT only,
// which is what es2d uses on running domains.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { join } from 'node:path';

import { Client } from '../../src/cli/client.js';
import { Daemon } from '../../src/daemon/daemon.js';
import { resolveConfig } from '../../src/daemon/config.js';
import { silentLogger } from '../../src/daemon/logger.js';
import {
  Connection,
  DomainMetadataType,
  DomainStatsTypes,
  DomainXMLFlags,
} from '../../src/libvirt/index.js';
import { readFileSync, writeFileSync } from 'node:fs';
import { assertXmlEqual } from '../helpers/xml-match.js';
import { hostTree, STOCK_HOST, tempDir } from '../helpers/temp.js';
import { until } from '../helpers/wait.js';

const NS = 'urn:x-es2:policy:1';
const KNOB = 'sys/module/kvm/parameters/halt_poll_ns';

function secondDomainXml(name: string, uuid: string): string {
  return `<domain type='test'><name>${name}</name><uuid>${uuid}</uuid><memory>65536</memory><vcpu>4</vcpu>
    <os><type>hvm</type></os><devices><disk type='file' device='disk'><source file='/guest/${name}.img'/>
    <target dev='vda' bus='virtio'/></disk></devices></domain>`;
}

describe('es2d on test:///default', () => {
  let daemon: Daemon;
  let conn: Connection;
  let client: Client;
  let hostRoot: string;
  let uuid: string;
  let original: string;
  let originalPins: number[][];

  const pollMaxNs = async (id: number): Promise<unknown> => {
    const [rec] = await conn.domainListGetStats([uuid], DomainStatsTypes.IOTHREAD);
    return rec?.stats[`iothread.${id}.poll-max-ns`];
  };
  const knob = (): number => Number(readFileSync(join(hostRoot, KNOB), 'utf8'));

  before(async () => {
    hostRoot = hostTree(STOCK_HOST);
    const socket = join(tempDir(), 'es2d.sock');
    const config = resolveConfig({ uri: 'test:///default', listen: [`unix:${socket}`], stateDir: tempDir(), hostRoot, statsInterval: 1 });
    daemon = await Daemon.start({ ...config, verifyInterval: 1 }, silentLogger());
    await daemon.waitReady();
    conn = await Connection.open('test:///default');
    client = new Client({ endpoint: `unix:${socket}` });
    uuid = (await conn.lookupDomainByName('test')).uuid;
    original = await conn.domainGetXMLDesc(uuid, DomainXMLFlags.INACTIVE);
    originalPins = await conn.domainGetVcpuPinInfo(uuid);
  });

  after(async () => {
    await daemon?.stop();
    await conn?.close();
  });

  const policy = {
    enabled: true,
    vcpus: [{ vcpu: 0, cpuset: '2', label: 'io' }, { vcpu: 1, label: 'compute' }],
    hybridIo: { iothreads: 1, iothreadCpuset: '5', pollMaxNs: 32768, pollGrow: 2, pollShrink: 2 },
    haltPollNs: 400000,
  };

  it('applies a policy live and persistently, and holds the halt-poll knob', async () => {
    const res = await client.send<{ status: string }>('PUT', '/v1/domains/test/policy', policy);
    assert.equal(res.body.status, 'applied');
    assert.deepEqual((await conn.domainGetVcpuPinInfo(uuid))[0], [2]);
    assert.deepEqual((await conn.domainGetIOThreadInfo(uuid)).map((t) => [t.id, t.cpus]), [[1, [5]]]);
    assert.equal(await pollMaxNs(1), 32768n);
    assert.match(await conn.domainGetMetadata(uuid, DomainMetadataType.ELEMENT, NS), /<spec>/);
    const persistent = await conn.domainGetXMLDesc(uuid, DomainXMLFlags.INACTIVE);
    assert.match(persistent, /<vcpupin vcpu='0' cpuset='2'\/>/);
    assert.match(persistent, /<driver[^>]*iothread='1'/);
    assert.equal(knob(), 400000);
  });

  it('does nothing when the same policy is applied again', async () => {
    const before = await conn.domainGetXMLDesc(uuid, DomainXMLFlags.INACTIVE);
    const outcome = await daemon.controller.converge(uuid, 'test');
    assert.equal(outcome.steps, 0);
    assert.equal(await conn.domainGetXMLDesc(uuid, DomainXMLFlags.INACTIVE), before);
  });

  it('re-applies what libvirt forgets when the domain restarts (IOThread polling before 9.4)', async () => {
    await conn.domainDestroy(uuid);
    await conn.domainCreate(uuid);
    await until('poll-max-ns back at 32768', async () => ((await pollMaxNs(1)) === 32768n ? true : undefined));
    assert.deepEqual((await conn.domainGetVcpuPinInfo(uuid))[0], [2]);
    await until('the halt-poll hold taken again', () => (knob() === 400000 ? true : undefined));
  });

  it('repairs drift: a vCPU re-pinned behind es2d\'s back comes back', async () => {
    await conn.domainPinVcpu(uuid, 0, [6]);
    await until('vCPU 0 back on CPU 2', async () => ((await conn.domainGetVcpuPinInfo(uuid))[0]?.[0] === 2 ? true : undefined));
    const view = await client.send<{ drift: { items: { what: string; actual: string }[]; repaired: boolean } | null }>('GET', '/v1/domains/test');
    assert.ok(view.body.drift !== null);
    assert.equal(view.body.drift.repaired, true);
    assert.deepEqual(view.body.drift.items.map((i) => [i.what, i.actual]), [['vcpu 0 pin', '6']]);
  });

  it('re-applies after a Nova-style hard reboot regenerates the definition', async () => {
    await conn.domainDestroy(uuid);
    await conn.domainDefineXML(original);
    await conn.domainCreate(uuid);
    await until('es2 pins back in the persistent XML', async () =>
      /<vcpupin vcpu='0' cpuset='2'\/>/.test(await conn.domainGetXMLDesc(uuid, DomainXMLFlags.INACTIVE)) ? true : undefined);
    await until('live pins back', async () => ((await conn.domainGetVcpuPinInfo(uuid))[0]?.[0] === 2 ? true : undefined));
  });

  it('keeps the largest halt-poll request of two domains and restores the original when both let go', async () => {
    const other = '5b0d3f0e-7d6a-4c41-9d55-4e0c1a2b3c4d';
    await conn.domainDefineXML(secondDomainXml('second', other));
    await conn.domainCreate(other);
    await client.send('PUT', `/v1/domains/${other}/policy`, { enabled: true, haltPollNs: 900000 });
    assert.equal(knob(), 900000);
    await client.send('DELETE', `/v1/domains/${other}/policy`);
    assert.equal(knob(), 400000);
    await conn.domainDestroy(other);
    await conn.domainUndefine(other);
  });

  it('removes everything es2 did: the definition is the original again and the knob is restored', async () => {
    await client.send('DELETE', '/v1/domains/test/policy');
    assertXmlEqual(await conn.domainGetXMLDesc(uuid, DomainXMLFlags.INACTIVE), original);
    assert.deepEqual(await conn.domainGetIOThreadInfo(uuid), []);
    assert.deepEqual(await conn.domainGetVcpuPinInfo(uuid), originalPins);
    assert.equal(knob(), 200000);
    await assert.rejects(conn.domainGetMetadata(uuid, DomainMetadataType.ELEMENT, NS));
  });

  it('stores a policy for a domain Nova has not created yet and applies it when it appears', async () => {
    const later = '0f0e0d0c-0b0a-4909-8807-060504030201';
    const res = await client.send<{ status: string }>('PUT', `/v1/domains/${later}/policy`, {
      enabled: true, vcpus: [{ vcpu: 3, cpuset: '6-7' }],
    });
    assert.equal(res.status, 202);
    assert.equal(res.body.status, 'pending');
    await conn.domainDefineXML(secondDomainXml('later', later));
    await conn.domainCreate(later);
    await until('the pending policy applied', async () =>
      ((await conn.domainGetVcpuPinInfo(later))[3]?.join(',') === '6,7' ? true : undefined));
    await conn.domainDestroy(later);
    await conn.domainUndefine(later);
  });

  it('keeps knob originals across a restart and restores them on request', async () => {
    await client.send('PUT', '/v1/host/knobs', { halt_poll_ns: 123456 });
    assert.equal(knob(), 123456);
    // es2d stops without rolling back (tuned learned that this causes outages).
    await daemon.stop();
    assert.equal(knob(), 123456);
    writeFileSync(join(hostRoot, 'sys/module/kvm/parameters/halt_poll_ns_grow'), '0\n');
    const socket = join(tempDir(), 'es2d.sock');
    daemon = await Daemon.start({ ...daemon.config, listen: [`unix:${socket}`] }, silentLogger());
    await daemon.waitReady();
    const restored = await new Client({ endpoint: `unix:${socket}` }).send<{ restored: { knob: string; to: number }[] }>('DELETE', '/v1/host/knobs');
    assert.deepEqual(restored.body.restored.map((r) => [r.knob, r.to]), [['halt_poll_ns', 200000]]);
    assert.equal(knob(), 200000);
  });
});

describe('es2d with lost state (or a domain live-migrated in)', () => {
  it('adopts the policy recorded in the domain instead of stripping es2', async () => {
    const hostRoot = hostTree(STOCK_HOST);
    const start = async (stateDir: string): Promise<{ daemon: Daemon; client: Client }> => {
      const socket = join(tempDir(), 'es2d.sock');
      const d = await Daemon.start(resolveConfig({ uri: 'test:///default', listen: [`unix:${socket}`], stateDir, hostRoot }), silentLogger());
      await d.waitReady();
      return { daemon: d, client: new Client({ endpoint: `unix:${socket}` }) };
    };
    // The test driver's state lives while a connection to it is open: this one spans both daemons.
    const conn = await Connection.open('test:///default', { events: false });
    const uuid = (await conn.lookupDomainByName('test')).uuid;
    const first = await start(tempDir());
    const policy = { enabled: true, vcpus: [{ vcpu: 1, cpuset: '5', label: 'io' }] };
    await first.client.send('PUT', '/v1/domains/test/policy', policy);
    await first.daemon.stop();

    const second = await start(tempDir());
    try {
      const view = await second.client.send<{ storedPolicy: unknown }>('GET', '/v1/domains/test');
      assert.deepEqual(view.body.storedPolicy, { enabled: true, vcpus: [{ cpuset: '5', label: 'io', vcpu: 1 }] });
      assert.deepEqual((await conn.domainGetVcpuPinInfo(uuid))[1], [5]);
      // An explicit delete still removes es2 (and is not adopted back).
      await second.client.send('DELETE', '/v1/domains/test/policy');
      assert.doesNotMatch(await conn.domainGetXMLDesc(uuid), /urn:x-es2:policy:1/);
      const after = await second.client.send<{ storedPolicy: unknown }>('GET', '/v1/domains/test');
      assert.equal(after.body.storedPolicy, null);
    } finally {
      await second.daemon.stop();
      await conn.close();
    }
  });
});
