// es2d killed with SIGKILL in the middle of applying to several QEMU (TCG) domains, three rounds
// with different kill delays, the domains changed by hand while es2d is down (vCPUs re-pinned,
// IOThread polling reset, the IOThread deleted, es2's metadata removed, a domain restarted, which
// drops its live-only settings). Each restart reuses the state dir and the socket path (the
// killed es2d's socket file is still there). Afterwards every domain's live state equals its
// stored policy, and every write acknowledged before the kill is what the store holds (unless a
// later write to the same domain was stored).
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';

import { DomainMetadataType } from '../../src/libvirt/index.js';
import type { Policy } from '../../src/policy/index.js';
import { ES2_NS } from '../../src/xml/index.js';
import { ApiClient, type ApiResult } from '../helpers/api-client.js';
import { startEs2d, type Es2dProcess } from '../helpers/es2d.js';
import { tally } from './figures.js';
import { sleep } from './support.js';
import { canonical, LIVE, SYSTEM_URI, systemDomains, systemTierUnavailable, untilConverged, type SystemDomains } from './system.js';

const figures = tally('es2d-kill');
const ROUNDS = [{ delayMs: 30 }, { delayMs: 120 }, { delayMs: 400 }];
const skip = systemTierUnavailable();
if (skip !== null) {
  console.log(`# es2d-kill scenario skipped: ${skip}`);
  figures.note('skipped', skip);
}

type HandChange = 'repin' | 'poll-reset' | 'iothread-del' | 'metadata-del' | 'restart';
const HAND_CHANGES: HandChange[] = ['repin', 'poll-reset', 'iothread-del', 'metadata-del', 'restart'];

describe('es2d killed with SIGKILL mid-apply, domains changed by hand meanwhile', { skip: skip ?? false }, () => {
  let sys: SystemDomains;
  let es2d: Es2dProcess;
  let hostCpus: number[];

  before(async () => {
    sys = await systemDomains('ek', 3);
    es2d = await startEs2d({ uri: SYSTEM_URI });
    hostCpus = (await sys.conn.nodeGetCPUMap()).online;
  });

  after(async () => {
    await es2d?.stop();
    await sys?.cleanup();
  });

  const policy = (round: number, i: number, wave: number): Policy => ({
    enabled: true,
    vcpus: [
      { vcpu: 0, cpuset: String(hostCpus[(round + i + wave) % hostCpus.length]), label: 'io' },
      { vcpu: 1, cpuset: (round + wave) % 2 === 0 ? hostCpus.join(',') : String(hostCpus[i % hostCpus.length]) },
    ],
    hybridIo: { iothreads: 1, pollMaxNs: 100_000 + round * 1000 + i * 10 + wave },
  });
  /** Requests checked against the spec, and so is every answer (a new client per es2d). */
  const api = (): ApiClient => new ApiClient({ endpoint: `unix:${es2d.socket}`, timeoutMs: 60_000 });
  const put = (uuid: string, p: Policy): Promise<ApiResult> => api().put(`/v1/domains/${uuid}/policy`, p);

  async function handChange(uuid: string, change: HandChange): Promise<void> {
    const conn = sys.conn;
    switch (change) {
      case 'repin':
        for (const vcpu of [0, 1]) await conn.domainPinVcpu(uuid, vcpu, hostCpus, LIVE);
        break;
      case 'poll-reset':
        for (const t of await conn.domainGetIOThreadInfo(uuid, LIVE)) await conn.domainSetIOThreadParams(uuid, t.id, { pollMaxNs: 0 }, LIVE);
        break;
      case 'iothread-del':
        for (const t of await conn.domainGetIOThreadInfo(uuid, LIVE)) await conn.domainDelIOThread(uuid, t.id, LIVE);
        break;
      case 'metadata-del':
        await conn.domainSetMetadata(uuid, DomainMetadataType.ELEMENT, null, null, ES2_NS, LIVE);
        break;
      case 'restart':
        await conn.domainDestroy(uuid);
        await conn.domainCreate(uuid);
        break;
    }
    figures.faultsInjected++;
  }

  for (const [round, { delayMs }] of ROUNDS.entries()) {
    it(`round ${round + 1}: killed ${delayMs} ms into a wave of writes, restarted on the same state and socket, converges`, async () => {
      // Acknowledged first: these must survive whatever follows.
      const acknowledged = new Map<string, Policy>();
      for (const [i, uuid] of sys.uuids.entries()) {
        const p = policy(round, i, 0);
        const r = await put(uuid, p);
        assert.equal(r.status, 200, r.text);
        acknowledged.set(uuid, p);
      }
      // A second wave, cut short by the SIGKILL.
      const second = new Map<string, Policy>();
      const answers = sys.uuids.map((uuid, i) => {
        const p = policy(round, i, 1);
        second.set(uuid, p);
        return put(uuid, p).then((r) => {
          if (r.status === 200) acknowledged.set(uuid, p);
          return r.status;
        }, () => -1);
      });
      await sleep(delayMs);
      await es2d.kill('SIGKILL');
      figures.faultsInjected++;
      figures.note(`round${round + 1}SecondWave`, await Promise.all(answers));

      // By hand while es2d is down: a different change on each domain, rotating per round.
      for (const [i, uuid] of sys.uuids.entries()) {
        await handChange(uuid, HAND_CHANGES[(round + i) % HAND_CHANGES.length]!);
        if (round === ROUNDS.length - 1) await handChange(uuid, HAND_CHANGES[(round + i + 2) % HAND_CHANGES.length]!);
      }

      assert.ok(existsSync(es2d.socket), 'the killed es2d left its socket file');
      es2d = await startEs2d({ uri: SYSTEM_URI, socket: es2d.socket, stateDir: es2d.stateDir, hostRoot: es2d.hostRoot });

      for (const uuid of sys.uuids) {
        const stored = (await api().get<{ storedPolicy: Policy | null }>(`/v1/domains/${uuid}`)).body.storedPolicy;
        const candidates = [acknowledged.get(uuid), second.get(uuid)].map(canonical);
        if (!candidates.includes(canonical(stored))) {
          figures.dataLost++;
          assert.fail(`${uuid}: stored ${JSON.stringify(stored)}, acknowledged ${JSON.stringify(acknowledged.get(uuid))}`);
        }
        if (acknowledged.get(uuid) === second.get(uuid) && canonical(stored) !== canonical(second.get(uuid))) {
          figures.dataLost++;
          assert.fail(`${uuid}: the acknowledged second-wave write is not what the store holds`);
        }
        await untilConverged(sys.conn, uuid, stored, hostCpus, `round ${round + 1}: ${uuid} converged after the restart`, () => figures.dataLost++);
      }
    });
  }
});
