// 100 clients writing conflicting policies to the same three domains at once, through a real es2d
// on a real libvirtd (TCG domains), first blind (no If-Match: last writer wins, by design), then
// with If-Match (read the ETag, write conditionally, re-read on 412). With ETags no acknowledged
// write may be lost: the successful writes must form one chain of ETags (each based on the one
// before it) that ends at the stored policy. After each round the live domains (pins, IOThread
// polling, the es2 record in the live and persistent XML, read here through libvirt, not es2d)
// equal the stored policy.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import type { Policy } from '../../src/policy/index.js';
import { startEs2d, type Es2dProcess } from '../helpers/es2d.js';
import { tally } from './figures.js';
import { send, sleep } from './support.js';
import { SYSTEM_URI, systemDomains, systemTierUnavailable, untilConverged, type SystemDomains } from './system.js';

const figures = tally('concurrency');
const CLIENTS = 100;
const MAX_ATTEMPTS = 25;
const ROUND_MS = 120_000;

const skip = systemTierUnavailable();
if (skip !== null) console.log(`# concurrency scenario skipped: ${skip}`);

interface Write { client: number; uuid: string; base: string | null; etag: string; policy: Policy }

describe(`${CLIENTS} clients writing conflicting policies to the same domains`, { skip: skip ?? false }, () => {
  let sys: SystemDomains;
  let es2d: Es2dProcess;
  let endpoint: string;
  let hostCpus: number[];

  before(async () => {
    sys = await systemDomains('cc', 3);
    es2d = await startEs2d({ uri: SYSTEM_URI });
    endpoint = `unix:${es2d.socket}`;
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

  const put = (uuid: string, policy: Policy, ifMatch?: string) => send(endpoint, {
    method: 'PUT', path: `/v1/domains/${uuid}/policy`, body: JSON.stringify(policy),
    headers: { 'content-type': 'application/json', ...(ifMatch === undefined ? {} : { 'if-match': ifMatch }) },
    timeoutMs: ROUND_MS,
  });

  async function stored(uuid: string): Promise<{ policy: Policy | null; etag: string }> {
    const r = await send(endpoint, { method: 'GET', path: `/v1/domains/${uuid}` });
    assert.equal(r.status, 200, r.text);
    const body = r.json as { storedPolicy: Policy | null; etag: string };
    return { policy: body.storedPolicy, etag: body.etag };
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
        const read = await send(endpoint, { method: 'GET', path: `/v1/domains/${uuid}` });
        assert.equal(read.status, 200, read.text);
        const base = (read.json as { etag: string }).etag;
        const policy = policyOf(client, attempt, 2);
        const r = await put(uuid, policy, `"${base}"`);
        statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
        if (r.status === 200) {
          writes.push({ client, uuid, base, etag: (r.json as { etag: string }).etag, policy });
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
      const byBase = new Map<string | null, Write[]>();
      for (const w of mine) byBase.set(w.base, [...(byBase.get(w.base) ?? []), w]);
      let lost = 0;
      for (const same of byBase.values()) lost += same.length - 1;
      let at = initial.get(uuid)!;
      let chained = 0;
      for (;;) {
        const next = byBase.get(at)?.[0];
        if (next === undefined) break;
        chained++;
        at = next.etag;
      }
      lost = Math.max(lost, mine.length - chained);
      const now = await stored(uuid);
      if (mine.length > 0 && now.etag !== at) lost++;
      figures.lostUpdates += lost;
      assert.equal(lost, 0, `${uuid}: ${mine.length} acknowledged writes, ${chained} in the ETag chain, stored ETag ${now.etag}, chain ends at ${at}`);
      const last = mine.find((w) => w.etag === now.etag);
      if (last !== undefined) assert.deepEqual(now.policy, last.policy, `${uuid}: the stored policy is the last acknowledged write`);
    }
    await assertLiveEqualsStored('conditional writes');
  });
});
