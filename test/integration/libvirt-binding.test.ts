// The binding against libvirt's in-process test driver (test:///default): every call the driver
// supports. Its state is private to each connection's process, and it accepts vcpupin only with
// flags 0 (AFFECT_CURRENT): the live/config flags are covered by the system tier.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { after, before, describe, it } from 'node:test';

import {
  bindingVersion,
  Connection,
  ConnectListDomains,
  DomainMetadataType,
  DomainModificationImpact,
  DomainStatsTypes,
  DomainXMLFlags,
  ErrorNumber,
  formatVersion,
  isConnectionLost,
  isNoDomain,
  isNoMetadata,
  LibvirtError,
  parseVersion,
  type LifecycleEvent,
  type MetadataEvent,
} from '../../src/libvirt/index.js';
import { repoRoot } from '../helpers/paths.js';

const URI = 'test:///default';
const NS = 'urn:x-es2:policy:1';

describe('libvirt binding on test:///default', () => {
  let conn: Connection;
  let uuid: string;

  before(async () => {
    conn = await Connection.open(URI);
    const d = await conn.lookupDomainByName('test');
    uuid = d.uuid;
  });
  after(async () => {
    await conn.close();
  });

  it('reports versions, type and host facts', async () => {
    const lib = await conn.getLibVersion();
    assert.ok(lib >= 9_000_000, `libvirt ${formatVersion(lib)}`);
    assert.equal(formatVersion(lib), formatVersion(bindingVersion()));
    assert.equal(parseVersion(formatVersion(lib)), lib);
    assert.equal(await conn.getType(), 'TEST');
    assert.equal(typeof (await conn.getVersion()), 'number');
    assert.ok((await conn.getHostname()).length > 0);
    assert.match(await conn.getCapabilities(), /<capabilities>[\s\S]*<topology>/);
    const node = await conn.nodeGetInfo();
    assert.equal(node.cpus, 16);
    assert.equal(node.nodes, 2);
    const map = await conn.nodeGetCPUMap();
    assert.ok(map.total > 0);
    assert.ok(await conn.isAlive());
  });

  it('lists and looks up domains by name and UUID', async () => {
    const all = await conn.listAllDomains();
    assert.deepEqual(all.map((d) => d.name), ['test']);
    const active = await conn.listAllDomains(ConnectListDomains.ACTIVE);
    assert.equal(active.length, 1);
    assert.equal((await conn.listAllDomains(ConnectListDomains.INACTIVE)).length, 0);
    const byUuid = await conn.lookupDomainByUUID(uuid);
    assert.equal(byUuid.name, 'test');
    assert.equal(typeof byUuid.id, 'number');
  });

  it('rejects unknown domains with one LibvirtError type and a predicate', async () => {
    const err = await conn.lookupDomainByName('no-such-domain').then(
      () => assert.fail('lookup of a missing domain succeeded'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof LibvirtError);
    assert.equal(err.code, ErrorNumber.NO_DOMAIN);
    assert.ok(isNoDomain(err));
    assert.match(err.message, /not found/i);
    await assert.rejects(conn.domainGetInfo('00000000-0000-0000-0000-000000000000'), isNoDomain);
  });

  it('reads domain info, state and XML', async () => {
    const info = await conn.domainGetInfo(uuid);
    assert.equal(info.vcpus, 2);
    assert.equal(info.active, true);
    assert.equal(info.persistent, true);
    assert.equal(typeof info.cpuTimeNs, 'bigint');
    const state = await conn.domainGetState(uuid);
    assert.equal(state.state, 1);
    const xml = await conn.domainGetXMLDesc(uuid);
    assert.match(xml, /<name>test<\/name>/);
    assert.match(await conn.domainGetXMLDesc(uuid, DomainXMLFlags.INACTIVE), new RegExp(uuid));
  });

  it('defines, starts, stops and undefines a domain, with lifecycle events', async () => {
    const seen: LifecycleEvent[] = [];
    const onEvent = (e: LifecycleEvent): void => {
      if (e.domain.name === 'es2-lifecycle') seen.push(e);
    };
    conn.on('lifecycle', onEvent);
    const xml = `<domain type='test'><name>es2-lifecycle</name><memory>65536</memory><vcpu>4</vcpu>
      <os><type>hvm</type></os></domain>`;
    const ref = await conn.domainDefineXML(xml);
    assert.equal(ref.name, 'es2-lifecycle');
    assert.equal(ref.id, null);
    await conn.domainCreate(ref.uuid);
    assert.notEqual((await conn.lookupDomainByUUID(ref.uuid)).id, null);
    await conn.domainDestroy(ref.uuid);
    await conn.domainUndefine(ref.uuid);
    await assert.rejects(conn.lookupDomainByUUID(ref.uuid), isNoDomain);
    const deadline = Date.now() + 5000;
    while (seen.length < 4 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    conn.off('lifecycle', onEvent);
    assert.deepEqual(
      seen.map((e) => `${e.event}/${e.detail}`),
      ['defined/added', 'started/booted', 'stopped/destroyed', 'undefined/removed'],
    );
  });

  it('pins vCPUs with flags 0 and reads the pins back; refuses live flags on the test driver', async () => {
    await conn.domainPinVcpu(uuid, 1, [3, 5, 7]);
    const pins = await conn.domainGetVcpuPinInfo(uuid);
    assert.equal(pins.length, 2);
    assert.deepEqual(pins[1], [3, 5, 7]);
    await assert.rejects(
      conn.domainPinVcpu(uuid, 0, [2], DomainModificationImpact.AFFECT_LIVE),
      (e: unknown) => e instanceof LibvirtError && e.code === ErrorNumber.INVALID_ARG,
    );
    await assert.rejects(conn.domainPinVcpu(uuid, 9, [2]), LibvirtError);
    await assert.rejects(conn.domainPinVcpu(uuid, 0, [-1]), RangeError);
  });

  it('adds, pins, tunes, reads and deletes IOThreads', async () => {
    await conn.domainAddIOThread(uuid, 7);
    await conn.domainPinIOThread(uuid, 7, [4, 5]);
    const max = 2n ** 40n + 1n;
    await conn.domainSetIOThreadParams(uuid, 7, { pollMaxNs: max, pollGrow: 2, pollShrink: 4 });
    const threads = await conn.domainGetIOThreadInfo(uuid);
    assert.deepEqual(threads.find((t) => t.id === 7), { id: 7, cpus: [4, 5] });
    const [rec] = await conn.getAllDomainStats(DomainStatsTypes.IOTHREAD);
    // A ULLONG past 2^53 survives the trip as a bigint.
    assert.equal(rec?.stats['iothread.7.poll-max-ns'], max);
    assert.equal(rec?.stats['iothread.7.poll-grow'], 2);
    await conn.domainSetIOThreadParams(uuid, 7, { pollMaxNs: 32768 });
    await assert.rejects(conn.domainSetIOThreadParams(uuid, 7, { pollGrow: -1 }), RangeError);
    await assert.rejects(conn.domainSetIOThreadParams(uuid, 7, { pollMaxNs: 1.5 }), RangeError);
    await conn.domainDelIOThread(uuid, 7);
    assert.equal((await conn.domainGetIOThreadInfo(uuid)).find((t) => t.id === 7), undefined);
  });

  it('sets, reads and removes element metadata, with a metadata event', async () => {
    const events: MetadataEvent[] = [];
    const onMeta = (e: MetadataEvent): void => void events.push(e);
    conn.on('metadata', onMeta);
    await conn.domainSetMetadata(uuid, DomainMetadataType.ELEMENT, '<policy enabled="yes"/>', 'es2', NS);
    assert.match(await conn.domainGetMetadata(uuid, DomainMetadataType.ELEMENT, NS), /<policy enabled="yes"\/>/);
    await conn.domainSetMetadata(uuid, DomainMetadataType.ELEMENT, null, null, NS);
    await assert.rejects(conn.domainGetMetadata(uuid, DomainMetadataType.ELEMENT, NS), isNoMetadata);
    await conn.domainSetMetadata(uuid, DomainMetadataType.TITLE, 'es2 title', null, null);
    assert.equal(await conn.domainGetMetadata(uuid, DomainMetadataType.TITLE, null), 'es2 title');
    const deadline = Date.now() + 5000;
    while (events.length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    conn.off('metadata', onMeta);
    assert.ok(events.some((e) => e.nsuri === NS && e.domain.uuid === uuid));
  });

  it('returns bulk stats as plain objects (the test driver has state and IOThread groups only)', async () => {
    const records = await conn.getAllDomainStats(DomainStatsTypes.STATE | DomainStatsTypes.VCPU);
    assert.equal(records.length, 1);
    const r = records[0]!;
    assert.equal(r.uuid, uuid);
    assert.equal(r.stats['state.state'], 1);
    assert.equal(Object.keys(r.stats).some((k) => k.endsWith('.exits.sum')), false);
    const per = await conn.domainListGetStats([uuid], DomainStatsTypes.STATE);
    assert.equal(per[0]?.name, 'test');
  });

  it('does not grow memory over 10,000 stats calls', async () => {
    await conn.domainAddIOThread(uuid, 3);
    const call = (): Promise<unknown> => conn.getAllDomainStats(DomainStatsTypes.STATE | DomainStatsTypes.IOTHREAD);
    for (let k = 0; k < 1000; k++) await call();
    const before = process.memoryUsage().rss;
    for (let k = 0; k < 10_000; k++) await call();
    const grown = process.memoryUsage().rss - before;
    await conn.domainDelIOThread(uuid, 3);
    // A leak of one record per call (~300 bytes of libvirt data plus the JS object) would pass
    // 10 MB well before the end; GC noise stays far below it.
    assert.ok(grown < 10 * 1024 * 1024, `RSS grew by ${(grown / 1048576).toFixed(1)} MiB`);
  });
});

describe('libvirt connection lifecycle', () => {
  it('rejects open errors with LibvirtError', async () => {
    await assert.rejects(Connection.open('bogus+unix:///nowhere'), (e: unknown) => e instanceof LibvirtError);
  });

  it('rejects calls after close with INVALID_CONN and can reconnect', async () => {
    const c = await Connection.open(URI, { events: false });
    const pending = c.getCapabilities();
    await c.close();
    assert.equal(c.isOpen, false);
    assert.match(await pending, /<capabilities>/, 'a call in flight at close() finishes within the wait');
    await assert.rejects(c.getLibVersion(), (e: unknown) => isConnectionLost(e));
    const again = await Connection.open(URI);
    assert.ok((await again.getLibVersion()) > 0);
    await again.close();
  });

  it('emits no lifecycle events after close and lets the process exit', async () => {
    const c = await Connection.open(URI);
    const done = once(c, 'lifecycle');
    // The event handler deliberately does not keep the process alive, so the wait needs a timer.
    const keepAlive = setInterval(() => undefined, 1000);
    try {
      await c.domainDestroy((await c.lookupDomainByName('test')).uuid);
      await done;
    } finally {
      clearInterval(keepAlive);
    }
    await c.close();
  });

  it('prints nothing to stderr when a libvirt call fails', () => {
    const script = `
      const { Connection } = await import(${JSON.stringify(repoRoot + '/dist/src/libvirt/index.js')});
      const c = await Connection.open('test:///default');
      await c.lookupDomainByName('missing').catch(() => {});
      await c.domainPinVcpu((await c.lookupDomainByName('test')).uuid, 0, [1], 1).catch(() => {});
      await Connection.open('bogus+unix:///nowhere').catch(() => {});
      await c.close();
      process.stdout.write('done');`;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 30_000 });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, 'done');
    assert.equal(r.stderr, '');
  });
});
