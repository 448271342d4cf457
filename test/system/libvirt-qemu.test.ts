// The binding against a real libvirtd with QEMU (TCG): live pinning, IOThreads and poll params,
// metadata, bulk stats, lifecycle events and a dropped connection. The setup starts libvirtd and
// virtlogd when they are not running and stops what it started.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import {
  Connection,
  DomainMetadataType,
  DomainModificationImpact,
  DomainStatsTypes,
  DomainXMLFlags,
  GetAllDomainStatsFlags,
  isConnectionLost,
  type ClosedEvent,
  type LifecycleEvent,
  type TunableEvent,
} from '../../src/libvirt/index.js';
import {
  disklessDomainXml,
  killAndWait,
  removeDomains,
  startLibvirtd,
  SYSTEM_URI,
  systemTierUnavailable,
  type Libvirtd,
} from '../helpers/libvirtd.js';
import { until } from '../helpers/wait.js';

const skip = systemTierUnavailable();
if (skip !== null) console.log(`# system tier skipped: ${skip}`);

const PREFIX = `es2sys-${process.pid}-`;
const LIVE_CONFIG = DomainModificationImpact.AFFECT_LIVE | DomainModificationImpact.AFFECT_CONFIG;
const NS = 'urn:x-es2:policy:1';

describe('libvirt binding on qemu:///system', { skip: skip ?? false }, () => {
  let daemon: Libvirtd;
  let conn: Connection;
  let uuid: string;
  const lifecycle: LifecycleEvent[] = [];
  const tunables: TunableEvent[] = [];

  before(async () => {
    daemon = await startLibvirtd();
    conn = await Connection.open(SYSTEM_URI);
    conn.on('lifecycle', (e) => lifecycle.push(e));
    conn.on('tunable', (e) => tunables.push(e));
    await removeDomains(conn, PREFIX);
    const ref = await conn.domainDefineXML(disklessDomainXml({ name: `${PREFIX}a`, vcpus: 2, iothreads: 1 }));
    uuid = ref.uuid;
    await conn.domainCreate(uuid);
  });

  after(async () => {
    if (conn?.isOpen) {
      await removeDomains(conn, PREFIX);
      await conn.close();
    }
    await daemon?.stop();
  });

  it('reports the real hypervisor', async () => {
    assert.equal(await conn.getType(), 'QEMU');
    assert.ok((await conn.getVersion()) >= 7_000_000);
    const info = await conn.domainGetInfo(uuid);
    assert.equal(info.active, true);
    assert.equal(info.vcpus, 2);
    assert.ok(info.id !== null && info.id > 0);
  });

  it('pins a vCPU live and persistently, with a TUNABLE event', async () => {
    const host = await conn.nodeGetInfo();
    const cpu = host.cpus - 1;
    await conn.domainPinVcpu(uuid, 1, [cpu], LIVE_CONFIG);
    assert.deepEqual((await conn.domainGetVcpuPinInfo(uuid, DomainModificationImpact.AFFECT_LIVE))[1], [cpu]);
    assert.deepEqual((await conn.domainGetVcpuPinInfo(uuid, DomainModificationImpact.AFFECT_CONFIG))[1], [cpu]);
    assert.match(
      await conn.domainGetXMLDesc(uuid, DomainXMLFlags.INACTIVE),
      new RegExp(`<vcpupin vcpu='1' cpuset='${cpu}'/>`),
    );
    const ev = await until('a vcpupin TUNABLE event', () =>
      tunables.find((t) => t.domain.uuid === uuid && 'cputune.vcpupin1' in t.params),
    );
    assert.equal(ev.params['cputune.vcpupin1'], String(cpu));
    await conn.domainPinEmulator(uuid, [0], DomainModificationImpact.AFFECT_LIVE);
    assert.deepEqual(await conn.domainGetEmulatorPinInfo(uuid, DomainModificationImpact.AFFECT_LIVE), [0]);
  });

  it('adds and pins an IOThread live and sets its poll parameters', async () => {
    await conn.domainAddIOThread(uuid, 2, DomainModificationImpact.AFFECT_LIVE);
    await conn.domainPinIOThread(uuid, 2, [0], DomainModificationImpact.AFFECT_LIVE);
    await conn.domainSetIOThreadParams(uuid, 2, { pollMaxNs: 32768n, pollGrow: 2, pollShrink: 2 },
      DomainModificationImpact.AFFECT_LIVE);
    const threads = await conn.domainGetIOThreadInfo(uuid, DomainModificationImpact.AFFECT_LIVE);
    assert.deepEqual(threads.find((t) => t.id === 2)?.cpus, [0]);
    const [rec] = await conn.getAllDomainStats(DomainStatsTypes.IOTHREAD, GetAllDomainStatsFlags.ACTIVE)
      .then((rs) => rs.filter((r) => r.uuid === uuid));
    assert.equal(rec?.stats['iothread.2.poll-max-ns'], 32768n);
    assert.equal(rec?.stats['iothread.2.poll-grow'], 2);
    await conn.domainDelIOThread(uuid, 2, DomainModificationImpact.AFFECT_LIVE);
  });

  it('keeps element metadata live and in the persistent definition', async () => {
    await conn.domainSetMetadata(uuid, DomainMetadataType.ELEMENT, '<policy enabled="true"/>', 'es2', NS, LIVE_CONFIG);
    assert.match(await conn.domainGetMetadata(uuid, DomainMetadataType.ELEMENT, NS, DomainModificationImpact.AFFECT_LIVE),
      /enabled="true"/);
    assert.match(await conn.domainGetXMLDesc(uuid, DomainXMLFlags.INACTIVE), /<es2:policy xmlns:es2="urn:x-es2:policy:1"/);
  });

  it('returns vCPU, interface and state groups in one bulk call for all active domains', async () => {
    const records = await conn.getAllDomainStats(
      DomainStatsTypes.STATE | DomainStatsTypes.VCPU | DomainStatsTypes.INTERFACE | DomainStatsTypes.BLOCK,
      GetAllDomainStatsFlags.ACTIVE | GetAllDomainStatsFlags.NOWAIT,
    );
    const rec = records.find((r) => r.uuid === uuid);
    assert.ok(rec, 'the running domain has a record');
    assert.equal(rec.stats['vcpu.current'], 2);
    assert.equal(typeof rec.stats['vcpu.0.time'], 'bigint');
    // A user-mode NIC has no host-side device, so libvirt counts it but has no packet counters.
    assert.equal(rec.stats['net.count'], 1);
  });

  it('delivers lifecycle events for destroy and start', async () => {
    const from = lifecycle.length;
    await conn.domainDestroy(uuid);
    await conn.domainCreate(uuid);
    await until('stopped and started events', () => {
      const mine = lifecycle.slice(from).filter((e) => e.domain.uuid === uuid).map((e) => `${e.event}/${e.detail}`);
      return mine.includes('stopped/destroyed') && mine.includes('started/booted') ? mine : undefined;
    });
  });

  it('emits closed and rejects calls when libvirtd dies, and reconnects when it is back', async (t) => {
    if (!daemon.startedByUs) {
      t.skip('libvirtd was already running before the tests: not killing a daemon this test did not start');
      return;
    }
    let closed: ClosedEvent | undefined;
    conn.once('closed', (e) => (closed = e));
    await killAndWait('libvirtd', 'SIGKILL');
    await until('the closed event', () => closed);
    await assert.rejects(conn.getLibVersion(), isConnectionLost);
    assert.equal(conn.isOpen, false);
    // Stopping at the end must cover both what the first start and this restart brought up.
    const first = daemon;
    const restarted = await startLibvirtd();
    daemon = { startedByUs: true, stop: async () => { await restarted.stop(); await first.stop(); } };
    conn = await Connection.open(SYSTEM_URI);
    // The QEMU process survived libvirtd; the new daemon finds it again.
    assert.equal((await conn.domainGetInfo(uuid)).active, true);
  });
});
