// 100 clients writing conflicting policies to the same three domains at once, through a real es2d
// on a real libvirtd (TCG domains), first blind (no If-Match: last writer wins, by design), then
// with If-Match (read the ETag, write conditionally, re-read on 412). With ETags no acknowledged
// write may be lost: the successful writes must form one chain of ETags (each based on the one
// before it) that ends at the stored policy. After each round the live domains (pins, IOThread
// polling, the es2 record in the live and persistent XML, read here through libvirt, not es2d)
// equal the stored policy. es2d is one per host: a second es2d on the same libvirtd (another
// test's) strips es2 from domains its own store has no policy for, and would fight this one.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import type { Policy } from '../../src/policy/index.js';
import { ApiClient, type ApiResult } from '../helpers/api-client.js';
import { startEs2d, type Es2dProcess } from '../helpers/es2d.js';
import { tally } from './figures.js';
import { sleep } from './support.js';
import { SYSTEM_URI, systemDomains, systemTierUnavailable, untilConverged, type SystemDomains } from './system.js';

const figures = tally('concurrency');
const CLIENTS = 100;
const MAX_ATTEMPTS = 25;
const ROUND_MS = 120_000;

const skip = systemTierUnavailable();
if (skip !== null) {
  console.log(`# concurrency scenario skipped: ${skip}`);
  figures.note('skipped', skip);
}

interface Write { client: number; uuid: string; base: string | null; etag: string; policy: Policy }

/**
 * The lost updates among writes acknowledged under If-Match. Each write names the ETag it replaced
 * (its base) and the one it produced; the history that led to the stored policy is walked back
 * from the stored ETag to the initial one. Every acknowledged write not on it was overwritten by
 * a writer that had not seen it; a history that does not reach back to the initial ETag (a write
 * on a version nobody acknowledged, or a stored ETag no write produced) counts at least one.
 */
export function etagChain(initial: string, writes: readonly Pick<Write, 'base' | 'etag'>[], stored: string): { lost: number; chained: number } {
  if (writes.length === 0) return { lost: 0, chained: 0 };
  const byEtag = new Map(writes.map((w) => [w.etag, w]));
  let chained = 0;
  let at = stored;
  while (at !== initial && chained <= writes.length) {
    const w = byEtag.get(at);
    if (w === undefined || w.base === null) break;
    chained++;
    at = w.base;
  }
  const unseen = writes.length - chained;
  return { lost: at === initial ? unseen : Math.max(1, unseen), chained };
}

describe('the lost-update check', () => {
  it('counts nothing for a chain, and counts writes on a shared base, off the history, or a stored ETag no write produced', () => {
    const w = (base: string, etag: string): Pick<Write, 'base' | 'etag'> => ({ base, etag });
    assert.deepEqual(etagChain('e0', [w('e1', 'e2'), w('e0', 'e1')], 'e2'), { lost: 0, chained: 2 });
    assert.equal(etagChain('e0', [], 'e0').lost, 0);
    // Both believed they replaced e0: one of them was overwritten unseen.
    assert.equal(etagChain('e0', [w('e0', 'e1'), w('e0', 'e2')], 'e2').lost, 1);
    // The stored write was based on a version nobody acknowledged, and e1 is gone.
    assert.equal(etagChain('e0', [w('e0', 'e1'), w('x', 'e2')], 'e2').lost, 1);
    // The store holds something no acknowledged write produced.
    assert.equal(etagChain('e0', [w('e0', 'e1')], 'e9').lost, 1);
  });
});

describe(`${CLIENTS} clients writing conflicting policies to the same domains`, { skip: skip ?? false }, () => {
  let sys: SystemDomains;
  let es2d: Es2dProcess;
  let api: ApiClient;
  let hostCpus: number[];

  before(async () => {
    sys = await systemDomains('cc', 3);
    es2d = await startEs2d({ uri: SYSTEM_URI });
    // Requests are checked against the spec, and so is every answer.
    api = new ApiClient({ endpoint: `unix:${es2d.socket}`, timeoutMs: ROUND_MS });
    hostCpus = (await sys.conn.nodeGetCPUMap()).online;
  });

  after(async () => {
    await es2d?.stop();
    await sys?.cleanup();
  });

  /** A policy only this write asks for: its poll-max-ns names the client and the attempt. */
  function policyOf(client: number, attempt: number, round: number): Policy {
    if ((client + attempt) % 10 === 9) return { enabled: false };
    const cpu = (k: number): string => (k % 3 === 2 ? hostCpus.join(',') : String(hostCpus[k % hostCpus.length]));
    return {
      enabled: true,
      vcpus: [{ vcpu: 0, cpuset: cpu(client), label: 'io' }, { vcpu: 1, cpuset: cpu(client + attempt + 1) }],
      hybridIo: { iothreads: 1, pollMaxNs: round * 1_000_000 + client * 100 + attempt },
    };
  }

  const logsOf = (uuid: string): string => es2d.logs().split('\n').filter((l) => l.includes(uuid) && !l.includes('"request"')).slice(-40).join('\n');

  const put = (uuid: string, policy: Policy, ifMatch?: string): Promise<ApiResult<{ etag: string }>> =>
    api.put(`/v1/domains/${uuid}/policy`, policy, ifMatch === undefined ? {} : { headers: { 'if-match': ifMatch } });

  async function stored(uuid: string): Promise<{ policy: Policy | null; etag: string }> {
    const r = await api.get<{ storedPolicy: Policy | null; etag: string }>(`/v1/domains/${uuid}`);
    assert.equal(r.status, 200, r.text);
    return { policy: r.body.storedPolicy, etag: r.body.etag };
  }

  /** Every domain's live state becomes its stored policy; the ones that never do count as data lost. */
  async function assertLiveEqualsStored(round: string): Promise<void> {
    for (const uuid of sys.uuids) {
      const { policy } = await stored(uuid);
      await untilConverged(sys.conn, uuid, policy, hostCpus, `${round}: ${uuid} live = stored`, () => figures.dataLost++);
    }
  }

  it('without If-Match: every write is answered 200, and the live domains end up as stored', async () => {
    const statuses = new Map<number, number>();
    const deadline = Date.now() + ROUND_MS;
    await Promise.all(Array.from({ length: CLIENTS }, async (_, client) => {
      const uuid = sys.uuids[client % sys.uuids.length]!;
      const r = await put(uuid, policyOf(client, 0, 1));
      statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
      if (r.status !== 200) assert.fail(`client ${client}: ${r.status} ${r.text}\nes2d on that domain:\n${logsOf(uuid)}`);
    }));
    assert.ok(Date.now() < deadline, 'the round took longer than its bound');
    figures.note('blindStatuses', Object.fromEntries(statuses));
    await assertLiveEqualsStored('blind writes');
  });

  it('with If-Match: no acknowledged write is lost, and the live domains end up as stored', async () => {
    const initial = new Map<string, string>();
    for (const uuid of sys.uuids) initial.set(uuid, (await stored(uuid)).etag);
    const writes: Write[] = [];
    const statuses = new Map<number, number>();
    let attempts = 0;
    let gaveUp = 0;
    const deadline = Date.now() + ROUND_MS;
    await Promise.all(Array.from({ length: CLIENTS }, async (_, client) => {
      const uuid = sys.uuids[client % sys.uuids.length]!;
      for (let attempt = 0; attempt < MAX_ATTEMPTS && Date.now() < deadline; attempt++) {
        attempts++;
        const base = (await stored(uuid)).etag;
        const policy = policyOf(client, attempt, 2);
        const r = await put(uuid, policy, `"${base}"`);
        statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
        if (r.status === 200) {
          writes.push({ client, uuid, base, etag: r.body.etag, policy });
          return;
        }
        if (r.status !== 412) assert.fail(`client ${client}: ${r.status} ${r.text}\nes2d on that domain:\n${logsOf(uuid)}`);
        // Someone else wrote since the read: read again, after a little while.
        await sleep(5 + ((client * 7 + attempt * 13) % 40));
      }
      gaveUp++;
    }));
    figures.note('ifMatch', { attempts, acknowledged: writes.length, gaveUp, statuses: Object.fromEntries(statuses) });
    assert.ok(writes.length > 0, 'no conditional write succeeded');

    // Per domain, the acknowledged writes must chain: initial ETag → ... → the stored ETag.
    for (const uuid of sys.uuids) {
      const mine = writes.filter((w) => w.uuid === uuid);
      const now = await stored(uuid);
      const chain = etagChain(initial.get(uuid)!, mine, now.etag);
      figures.lostUpdates += chain.lost;
      assert.equal(chain.lost, 0, `${uuid}: ${mine.length} acknowledged writes, ${chain.chained} on the history of the stored ETag ${now.etag}`);
      const last = mine.find((w) => w.etag === now.etag);
      if (last !== undefined) assert.deepEqual(now.policy, last.policy, `${uuid}: the stored policy is the last acknowledged write`);
    }
    await assertLiveEqualsStored('conditional writes');
  });
});
