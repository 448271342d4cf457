// libvirtd killed with SIGKILL while a real es2d applies policies to QEMU (TCG) domains: es2d stays
// up, /readyz fails within seconds, what was in flight is answered (applied, or 503
// LIBVIRT_UNAVAILABLE: never a 500, never a hang). During the outage a policy addressed by UUID is
// accepted as pending (202, the documented answer; by name it is 503), and one domain's QEMU dies
// too, so libvirt comes back without its live state. When libvirtd returns es2d reconnects by
// itself, applies the pending policy, and re-applies everything on the domain that lost its live
// state when it starts again. Runs only with a libvirtd of its own (see ownLibvirtdUnavailable).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';

import { Connection } from '../../src/libvirt/index.js';
import type { Policy } from '../../src/policy/index.js';
import { ApiClient, type ApiResult } from '../helpers/api-client.js';
import { startEs2d, type Es2dProcess } from '../helpers/es2d.js';
import { killAndWait } from '../helpers/libvirtd.js';
import { until } from '../helpers/wait.js';
import { tally } from './figures.js';
import { assertAlive, sleep } from './support.js';
import {
  canonical, ownLibvirtdUnavailable, running, SYSTEM_URI, systemDomains, untilConverged, type SystemDomains,
} from './system.js';

const figures = tally('libvirtd-kill');
const skip = ownLibvirtdUnavailable();
if (skip !== null) {
  console.log(`# libvirtd-kill scenario skipped: ${skip}`);
  figures.note('skipped', skip);
}

/** libvirtd again (virtlogd first, domain starts need it), as the test's own daemons. */
function restartLibvirtd(): void {
  if (!running('virtlogd')) execFileSync('virtlogd', ['-d']);
  if (!running('libvirtd')) execFileSync('libvirtd', ['-d']);
}

describe('libvirtd killed with SIGKILL under a running es2d', { skip: skip ?? false }, () => {
  let sys: SystemDomains;
  let es2d: Es2dProcess;
  let api: ApiClient;
  let hostCpus: number[];
  let a: string;
  let b: string;
  let killedAt = 0;
  const sentToA: Policy[] = [];
  let pendingForB: Policy;

  before(async () => {
    sys = await systemDomains('lk', 2);
    [a, b] = sys.uuids as [string, string];
    es2d = await startEs2d({ uri: SYSTEM_URI });
    // Requests are checked against the spec, and so is every answer (503s included).
    api = new ApiClient({ endpoint: `unix:${es2d.socket}`, timeoutMs: 60_000 });
    hostCpus = (await sys.conn.nodeGetCPUMap()).online;
  });

  after(async () => {
    // Whatever happened, libvirtd runs again before the domains are removed (and then stopped: it is ours).
    restartLibvirtd();
    await until('libvirtd to accept connections', async () => {
      const c = await Connection.open(SYSTEM_URI, { events: false });
      sys.conn = c;
      return true;
    }, 30_000).catch(() => undefined);
    await es2d?.stop();
    await sys?.cleanup();
  });

  const policy = (n: number): Policy => ({
    enabled: true,
    vcpus: [{ vcpu: 0, cpuset: String(hostCpus[n % hostCpus.length]), label: 'io' }, { vcpu: 1, cpuset: String(hostCpus[(n + 1) % hostCpus.length]) }],
    hybridIo: { iothreads: 1, pollMaxNs: 10_000 + n },
  });
  const put = (ref: string, p: Policy): Promise<ApiResult<{ status: string; code: string }>> => api.put(`/v1/domains/${ref}/policy`, p);

  it('stays up when libvirtd dies mid-apply, answers what was in flight, and /readyz fails within seconds', async () => {
    const first = policy(0);
    sentToA.push(first);
    assert.equal((await put(a, first)).status, 200);

    const inFlight = Array.from({ length: 6 }, (_, i) => {
      const p = policy(i + 1);
      sentToA.push(p);
      return put(a, p).then((r) => ({ status: r.status, text: r.text }), (err: Error) => ({ status: -1, text: err.message }));
    });
    await sleep(40);
    killedAt = Date.now();
    await killAndWait('libvirtd', 'SIGKILL');
    figures.faultsInjected++;
    const answers = await Promise.all(inFlight);
    figures.note('inFlightStatuses', answers.map((r) => r.status));
    for (const r of answers) assert.ok(r.status === 200 || r.status === 503, `in flight during the kill: ${r.status} ${r.text}`);

    const notReady = await until('/readyz to fail', async () => {
      const r = await api.get('/readyz');
      return r.status === 503 ? Date.now() - killedAt : undefined;
    }, 10_000);
    figures.note('readyzFailedAfterMs', notReady);
    assert.ok(notReady < 5000, `/readyz still 200 ${notReady} ms after the kill`);
    assertAlive(es2d, 'the libvirtd kill');
    assert.equal((await api.get('/healthz')).status, 200);
  });

  it('accepts a policy by UUID during the outage (202 pending) and refuses one by name (503)', async () => {
    pendingForB = policy(7);
    const byUuid = await put(b, pendingForB);
    assert.equal(byUuid.status, 202, byUuid.text);
    assert.equal(byUuid.body.status, 'pending');
    const byName = await put(sys.names[1]!, policy(8));
    assert.equal(byName.status, 503, byName.text);
    assert.equal(byName.body.code, 'LIBVIRT_UNAVAILABLE');
    assert.equal((await api.get('/v1/domains')).status, 503);

    // Meanwhile domain A's QEMU dies too: libvirt will come back without its live state.
    const pid = Number(readFileSync(`/run/libvirt/qemu/${sys.names[0]}.pid`, 'utf8').trim());
    process.kill(pid, 'SIGKILL');
    figures.faultsInjected++;
  });

  it('reconnects by itself when libvirtd returns, and applies the policy accepted during the outage', async () => {
    await sleep(1000);
    restartLibvirtd();
    const restartedAt = Date.now();
    sys.conn = await until('libvirtd to accept connections', () => Connection.open(SYSTEM_URI, { events: false }), 30_000);
    const reconnected = await until('es2d /readyz to pass again', async () => {
      const r = await api.get('/readyz');
      return r.status === 200 ? Date.now() - restartedAt : undefined;
    }, 60_000);
    figures.note('readyAgainAfterMs', reconnected);
    figures.note('outageMs', restartedAt - killedAt);

    const stored = (await api.get<{ storedPolicy: Policy }>(`/v1/domains/${b}`)).body;
    if (canonical(stored.storedPolicy) !== canonical(pendingForB)) figures.dataLost++;
    assert.deepEqual(stored.storedPolicy, pendingForB, 'the policy accepted during the outage is stored');
    await untilConverged(sys.conn, b, pendingForB, hostCpus, 'the policy accepted during the outage, live on B', () => figures.dataLost++);
  });

  it('re-applies what libvirt lost when the domain whose QEMU died starts again', async () => {
    const info = await sys.conn.domainGetInfo(a);
    assert.equal(info.active, false, 'libvirt found domain A dead');
    const stored = (await api.get<{ storedPolicy: Policy }>(`/v1/domains/${a}`)).body.storedPolicy;
    assert.ok(sentToA.some((p) => canonical(p) === canonical(stored)), `A's stored policy is one that was sent: ${JSON.stringify(stored)}`);
    await sys.conn.domainCreate(a);
    await untilConverged(sys.conn, a, stored, hostCpus, 'domain A re-applied after its start', () => figures.dataLost++);
    assertAlive(es2d, 'the whole outage');
  });
});
