// es2d against a real libvirtd with QEMU (TCG) domains: apply live and persistently, a domain
// restart brings the live-only IOThread polling back, removal gives the domain back as it was,
// es2d killed with SIGKILL mid-apply converges after a restart, and the installed hook runs on a
// real domain start.
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, rmSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';

import {
  Connection,
  DomainModificationImpact,
  DomainStatsTypes,
  DomainXMLFlags,
} from '../../src/libvirt/index.js';
import { startEs2d, type Es2dProcess } from '../helpers/es2d.js';
import {
  disklessDomainXml,
  removeDomains,
  startLibvirtd,
  SYSTEM_URI,
  systemTierUnavailable,
  type Libvirtd,
} from '../helpers/libvirtd.js';
import { repoRoot } from '../helpers/paths.js';
import { until } from '../helpers/wait.js';
import { assertXmlEqual } from '../helpers/xml-match.js';

const skip = systemTierUnavailable();
if (skip !== null) console.log(`# es2d system tier skipped: ${skip}`);

const PREFIX = `es2d-sys-${process.pid}-`;
const LIVE = DomainModificationImpact.AFFECT_LIVE;
const HOOK_DIR = '/etc/libvirt/hooks/qemu.d';
const HOOK = `${HOOK_DIR}/50-es2`;
// libvirt passes no environment to hooks: the hook talks to es2d's default socket.
const DEFAULT_SOCKET = '/run/es2/es2d.sock';

describe('es2d on qemu:///system with TCG domains', { skip: skip ?? false }, () => {
  let daemon: Libvirtd;
  let conn: Connection;
  let es2d: Es2dProcess;
  const uuids: string[] = [];
  const originals = new Map<string, string>();
  let hookInstalledByUs = false;

  before(async () => {
    // The hook must be in place before libvirtd starts, or libvirtd does not run it.
    if (!existsSync(HOOK)) {
      mkdirSync(HOOK_DIR, { recursive: true });
      copyFileSync(`${repoRoot}/deploy/libvirt/hooks/qemu.d/50-es2`, HOOK);
      hookInstalledByUs = true;
    }
    daemon = await startLibvirtd();
    conn = await Connection.open(SYSTEM_URI);
    await removeDomains(conn, PREFIX);
    for (const n of ['a', 'b', 'c']) {
      const ref = await conn.domainDefineXML(disklessDomainXml({ name: `${PREFIX}${n}`, vcpus: 2 }));
      uuids.push(ref.uuid);
      originals.set(ref.uuid, await conn.domainGetXMLDesc(ref.uuid, DomainXMLFlags.INACTIVE));
      await conn.domainCreate(ref.uuid);
    }
    es2d = await startEs2d({ uri: SYSTEM_URI, socket: DEFAULT_SOCKET });
  });

  after(async () => {
    await es2d?.stop();
    if (conn) {
      await removeDomains(conn, PREFIX);
      await conn.close();
    }
    await daemon?.stop();
    if (hookInstalledByUs) rmSync(HOOK, { force: true });
  });

  const policy = {
    enabled: true,
    vcpus: [{ vcpu: 0, cpuset: '0', label: 'io' }, { vcpu: 1, cpuset: '1', label: 'compute' }],
    hybridIo: { iothreads: 1, iothreadCpuset: '1', pollMaxNs: 16384, pollGrow: 2, pollShrink: 2 },
  };
  const pollMaxNs = async (uuid: string): Promise<unknown> =>
    (await conn.domainListGetStats([uuid], DomainStatsTypes.IOTHREAD))[0]?.stats['iothread.1.poll-max-ns'];

  it('applies live and persistently on a running QEMU domain', async () => {
    const uuid = uuids[0]!;
    const res = await es2d.client.send<{ status: string }>('PUT', `/v1/domains/${uuid}/policy`, policy);
    assert.equal(res.body.status, 'applied');
    assert.deepEqual(await conn.domainGetVcpuPinInfo(uuid, LIVE).then((p) => p.slice(0, 2)), [[0], [1]]);
    assert.deepEqual((await conn.domainGetIOThreadInfo(uuid, LIVE)).map((t) => [t.id, t.cpus]), [[1, [1]]]);
    assert.equal(await pollMaxNs(uuid), 16384n);
    const persistent = await conn.domainGetXMLDesc(uuid, DomainXMLFlags.INACTIVE);
    assert.match(persistent, /<vcpupin vcpu='0' cpuset='0'\/>/);
    assert.match(persistent, /<iothreads>1<\/iothreads>/);
    assert.match(persistent, /<es2:policy xmlns:es2="urn:x-es2:policy:1"/);
  });

  it('brings IOThread polling back after the domain restarts (libvirt 9.0 keeps it live only)', async () => {
    const uuid = uuids[0]!;
    await conn.domainDestroy(uuid);
    await conn.domainCreate(uuid);
    await until('poll-max-ns re-applied', async () => ((await pollMaxNs(uuid)) === 16384n ? true : undefined));
    assert.deepEqual((await conn.domainGetVcpuPinInfo(uuid, LIVE))[0], [0]);
  });

  it('ran the installed hook on that restart: release forwarded, the start itself waited for nothing', async (t) => {
    if (hookInstalledByUs && !daemon.startedByUs) {
      t.skip('libvirtd was already running before this test installed the hook, so it does not run it');
      return;
    }
    await until('a hook call logged by es2d', async () => (/"message":"hook"[^\n]*"op":"release"/.test(es2d.logs()) ? true : undefined));
    // By default (fail-open) the start's prepare/start/started exit in the hook: the re-apply above
    // came from libvirt's lifecycle event.
    assert.doesNotMatch(es2d.logs(), /"message":"hook"[^\n]*"op":"(prepare|start|started)"/);
    await until('the converge of the start event', async () => (/"reason":"started\/booted"/.test(es2d.logs()) ? true : undefined));
  });

  it('gives the domain back as it was when the policy is removed', async () => {
    const uuid = uuids[0]!;
    await es2d.client.send('DELETE', `/v1/domains/${uuid}/policy`);
    assertXmlEqual(await conn.domainGetXMLDesc(uuid, DomainXMLFlags.INACTIVE), originals.get(uuid)!);
    assert.deepEqual(await conn.domainGetIOThreadInfo(uuid, LIVE), []);
  });

  it('converges every domain after es2d is killed with SIGKILL mid-apply and domains were changed by hand', async () => {
    const writes = uuids.map((uuid, i) => es2d.client.send('PUT', `/v1/domains/${uuid}/policy`, {
      enabled: true, vcpus: [{ vcpu: 0, cpuset: String(i % 2) }, { vcpu: 1, cpuset: String((i + 1) % 2) }],
      hybridIo: { iothreads: 1, pollMaxNs: 8192 + i },
    }).catch(() => null));
    await new Promise((r) => setTimeout(r, 150));
    await es2d.kill('SIGKILL');
    await Promise.all(writes);
    // Meanwhile, by hand: vCPU 1 of every domain re-pinned.
    for (const uuid of uuids) await conn.domainPinVcpu(uuid, 1, [0, 1], LIVE);
    // Same state dir and socket: the socket file the killed es2d left behind must not matter.
    assert.ok(existsSync(DEFAULT_SOCKET));
    es2d = await startEs2d({ uri: SYSTEM_URI, socket: DEFAULT_SOCKET, stateDir: es2d.stateDir, hostRoot: es2d.hostRoot });
    for (const [i, uuid] of uuids.entries()) {
      const view = await es2d.client.send<{ storedPolicy: unknown }>('GET', `/v1/domains/${uuid}`);
      if (view.body.storedPolicy === null) {
        // The write never reached the store: nothing of it may have reached the domain either.
        assert.doesNotMatch(await conn.domainGetXMLDesc(uuid), /urn:x-es2:policy:1/);
        continue;
      }
      await until(`domain ${i} converged`, async () => {
        const pins = await conn.domainGetVcpuPinInfo(uuid, LIVE);
        return pins[0]?.join() === String(i % 2) && pins[1]?.join() === String((i + 1) % 2) ? true : undefined;
      });
      assert.equal(await pollMaxNs(uuid), BigInt(8192 + i));
    }
  });
});
