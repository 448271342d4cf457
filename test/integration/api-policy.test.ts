// Writes to a domain's policy through the API: ETags and If-Match (lost updates refused with
// PRECONDITION_FAILED), and dryRun, which returns the plan and changes nothing anywhere: not the
// store, not the domain, not what GET shows.
import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';

import { DomainXMLFlags, type Connection } from '../../src/libvirt/index.js';
import { assertError, startApiDaemon, until, type ApiClient, type ApiDaemon, type ApiResult } from '../helpers/api-client.js';

interface DomainBody {
  uuid: string;
  etag: string;
  storedPolicy: unknown;
}

interface PolicyResult {
  uuid: string;
  status: string;
  etag: string;
  plan: { live: unknown[]; persistent: unknown[]; noop: boolean } | null;
}

const P1 = { enabled: true, vcpus: [{ vcpu: 0, cpuset: '4', label: 'io' }] };
const P2 = { enabled: true, vcpus: [{ vcpu: 0, cpuset: '5', label: 'io' }, { vcpu: 1, cpuset: '6' }] };

describe('policy writes: ETag, If-Match and dryRun', () => {
  let es2d: ApiDaemon;
  let api: ApiClient;
  let conn: Connection;
  let uuid: string;

  /** Everything a dry run must leave alone. */
  async function snapshot(): Promise<unknown> {
    const shown = await api.get<DomainBody>('/v1/domains/test');
    return {
      get: shown.body,
      etag: shown.headers.etag,
      list: (await api.get('/v1/domains')).body,
      stored: es2d.daemon.store.getPolicy(uuid) ?? null,
      applied: es2d.daemon.store.getApplied(uuid) ?? null,
      inactive: await conn.domainGetXMLDesc(uuid, DomainXMLFlags.INACTIVE),
      live: await conn.domainGetXMLDesc(uuid),
      pins: await conn.domainGetVcpuPinInfo(uuid),
    };
  }

  /**
   * es2d's own define of the persistent XML comes back as a lifecycle event and converges once
   * more in the background; a snapshot is taken once that has settled.
   */
  async function settled(): Promise<unknown> {
    let previous = JSON.stringify(await snapshot());
    return until('es2d to settle', async () => {
      await new Promise((r) => setTimeout(r, 250));
      const now = await snapshot();
      const same = JSON.stringify(now) === previous && es2d.daemon.controller.queue.busyKeys === 0;
      previous = JSON.stringify(now);
      return same ? now : undefined;
    });
  }

  const etagOf = async (): Promise<string> => {
    const r = await api.get<DomainBody>('/v1/domains/test');
    assert.equal(r.headers.etag, `"${r.body.etag}"`, 'the ETag header quotes the body etag');
    return r.headers.etag!;
  };

  before(async () => {
    es2d = await startApiDaemon();
    ({ api, conn, uuid } = es2d);
  });

  after(() => es2d?.stop());

  beforeEach(async () => {
    await api.delete('/v1/domains/test/policy');
  });

  it('gives "none" without a stored policy, and a new ETag on every write', async () => {
    assert.equal(await etagOf(), '"none"');
    const first = await api.put<PolicyResult>('/v1/domains/test/policy', P1, { headers: { 'if-match': '"none"' } });
    assert.equal(first.status, 200);
    const e1 = first.headers.etag!;
    assert.notEqual(e1, '"none"');
    assert.equal(await etagOf(), e1);
    const second = await api.put<PolicyResult>('/v1/domains/test/policy', P2, { headers: { 'if-match': e1 } });
    assert.equal(second.status, 200);
    assert.notEqual(second.headers.etag, e1);
    assert.equal(await etagOf(), second.headers.etag);
  });

  it('refuses a PUT with a stale ETag (412) and leaves the policy alone', async () => {
    const e1 = (await api.put('/v1/domains/test/policy', P1)).headers.etag!;
    const e2 = (await api.put('/v1/domains/test/policy', P2, { headers: { 'if-match': e1 } })).headers.etag!;
    const stale = await api.put('/v1/domains/test/policy', P1, { headers: { 'if-match': e1 } });
    assert.equal(stale.status, 412);
    assertError(stale, 'PRECONDITION_FAILED');
    assert.deepEqual((await api.get<DomainBody>('/v1/domains/test')).body.storedPolicy, P2);
    assert.equal(await etagOf(), e2);
    // "none" is stale as soon as a policy is stored.
    assertError(await api.put('/v1/domains/test/policy', P1, { headers: { 'if-match': '"none"' } }), 'PRECONDITION_FAILED');
  });

  it('refuses a DELETE with a stale ETag (412) and deletes with the current one', async () => {
    const e1 = (await api.put('/v1/domains/test/policy', P1)).headers.etag!;
    const e2 = (await api.put('/v1/domains/test/policy', P2)).headers.etag!;
    const stale = await api.delete('/v1/domains/test/policy', { headers: { 'if-match': e1 } });
    assertError(stale, 'PRECONDITION_FAILED');
    assert.deepEqual((await api.get<DomainBody>('/v1/domains/test')).body.storedPolicy, P2);
    const ok = await api.delete<PolicyResult>('/v1/domains/test/policy', { headers: { 'if-match': e2 } });
    assert.equal(ok.status, 200);
    assert.equal(ok.body.status, 'removed');
    assert.equal(await etagOf(), '"none"');
  });

  it('re-checks If-Match at the write: of two PUTs that both passed it, the second is refused and changes nothing', async () => {
    const e1 = (await api.put('/v1/domains/test/policy', P1)).headers.etag!;
    await settled();
    // Hold the domain's queue so both requests pass the early If-Match check before either writes;
    // the loser then meets the store's atomic check after its plan, before touching the domain.
    let release!: () => void;
    const gate = new Promise<void>((r) => { release = r; });
    const held = es2d.daemon.controller.queue.run(uuid, () => gate);
    const racing = [P2, { enabled: true, vcpus: [{ vcpu: 0, cpuset: '7' }] }].map((p) =>
      api.put<PolicyResult>('/v1/domains/test/policy', p, { headers: { 'if-match': e1 } }));
    // Both queued behind the gate: both passed the early check, so the loser's 412 is the write's.
    await until('both PUTs to wait on the domain', () => (es2d.daemon.controller.queue.pending(uuid) >= 3 ? true : undefined));
    release();
    await held;
    const results = await Promise.all(racing);
    assert.deepEqual(results.map((r) => r.status).sort(), [200, 412]);
    const winner = results[0]!.status === 200 ? 0 : 1;
    assertError(results[1 - winner]!, 'PRECONDITION_FAILED');
    const wanted = winner === 0 ? P2 : { enabled: true, vcpus: [{ vcpu: 0, cpuset: '7' }] };
    assert.deepEqual((await api.get<DomainBody>('/v1/domains/test')).body.storedPolicy, wanted);
    assert.equal(await etagOf(), results[winner]!.headers.etag);
    assert.deepEqual((await conn.domainGetVcpuPinInfo(uuid))[0], [Number(wanted.vcpus[0]!.cpuset)], 'the domain runs the winner\'s pins');
  });

  it('answers CONFLICT, not INTERNAL, when the domain is changed by hand between the plan and the apply', async () => {
    const io = (cpuset: string): object => ({ enabled: true, hybridIo: { iothreads: 1, iothreadCpuset: cpuset } });
    assert.equal((await api.put('/v1/domains/test/policy', io('2'))).status, 200);
    await settled();
    const before = await conn.domainGetIOThreadInfo(uuid);
    const ours = before.find((t) => t.cpus.length === 1 && t.cpus[0] === 2);
    assert.ok(ours !== undefined, JSON.stringify(before));
    // The plan pins that IOThread to CPU 3; an operator deletes it before the pin runs.
    const racing = es2d.daemon.controller.converge(uuid, 'test: hand change mid-apply', {
      candidate: { policy: io('3') as never, commit: () => conn.domainDelIOThread(uuid, ours.id) },
    });
    await assert.rejects(racing, (err: Error & { code?: string }) => {
      assert.equal(err.code, 'CONFLICT', err.message);
      assert.match(err.message, /changed while es2 applied/);
      return true;
    });
    // Sent again, the write goes through against the domain as it is now.
    const again = await api.put<PolicyResult>('/v1/domains/test/policy', io('3'));
    assert.equal(again.status, 200, JSON.stringify(again.body));
    assert.ok((await conn.domainGetIOThreadInfo(uuid)).some((t) => t.cpus.length === 1 && t.cpus[0] === 3));
  });

  it('takes * (any stored policy), lists of ETags, and compares strongly', async () => {
    assertError(await api.put('/v1/domains/test/policy', P1, { headers: { 'if-match': '*' } }), 'PRECONDITION_FAILED');
    const e1 = (await api.put('/v1/domains/test/policy', P1)).headers.etag!;
    const e2 = (await api.put('/v1/domains/test/policy', P2, { headers: { 'if-match': '*' } })).headers.etag!;
    assert.notEqual(e2, e1);
    // A list matches when any member does; one stale member does not make the write unconditional.
    const listed = await api.put('/v1/domains/test/policy', P1, { headers: { 'if-match': `"stale", ${e2}` } });
    assert.equal(listed.status, 200);
    const e3 = listed.headers.etag!;
    assertError(await api.put('/v1/domains/test/policy', P2, { headers: { 'if-match': `${e1}, ${e2}` } }), 'PRECONDITION_FAILED');
    // RFC 9110: If-Match uses the strong comparison, so a weak tag never matches.
    assertError(await api.put('/v1/domains/test/policy', P2, { headers: { 'if-match': `W/${e3}` } }), 'PRECONDITION_FAILED');
    assert.equal(await etagOf(), e3);
  });

  it('refuses an If-Match that is not an entity tag list (400 at /header/if-match)', async () => {
    const e1 = (await api.put('/v1/domains/test/policy', P1)).headers.etag!;
    for (const bad of [e1.replace(/"/g, ''), `${e1},`, '"unterminated']) {
      const r = await api.put('/v1/domains/test/policy', P2, { headers: { 'if-match': bad }, unchecked: true });
      assertError(r, 'VALIDATION_FAILED', '/header/if-match');
      assert.deepEqual(r.requestErrors.map((d) => d.path), ['/header/if-match'], 'the spec refuses it too');
    }
    assert.equal(await etagOf(), e1);
  });

  it('answers 404 for a DELETE of nothing, whatever If-Match says', async () => {
    const unknown = '0e2c7a52-5f0e-4d8a-9d4c-3f2b1a0000ff';
    assertError(await api.delete(`/v1/domains/${unknown}/policy`), 'DOMAIN_NOT_FOUND');
    assertError(await api.delete(`/v1/domains/${unknown}/policy`, { headers: { 'if-match': '"abc"' } }), 'DOMAIN_NOT_FOUND');
  });

  it('guards pending policies with ETags too', async () => {
    const pending = '0e2c7a52-5f0e-4d8a-9d4c-3f2b1a000002';
    const put = await api.put<PolicyResult>(`/v1/domains/${pending}/policy`, P1, { headers: { 'if-match': '"none"' } });
    assert.equal(put.status, 202);
    const shown = await api.get<DomainBody>(`/v1/domains/${pending}`);
    assert.equal(shown.headers.etag, put.headers.etag);
    assertError(await api.put(`/v1/domains/${pending}/policy`, P2, { headers: { 'if-match': '"none"' } }), 'PRECONDITION_FAILED');
    assertError(await api.delete(`/v1/domains/${pending}/policy`, { headers: { 'if-match': '"old"' } }), 'PRECONDITION_FAILED');
    assert.equal((await api.delete(`/v1/domains/${pending}/policy`, { headers: { 'if-match': put.headers.etag! } })).status, 200);
    assertError(await api.get(`/v1/domains/${pending}`), 'DOMAIN_NOT_FOUND');
  });

  it('plans a PUT with dryRun=true and changes nothing', async () => {
    await api.put('/v1/domains/test/policy', P1);
    const before = await settled();
    const r = await api.put<PolicyResult>('/v1/domains/test/policy?dryRun=true', P2);
    assert.equal(r.status, 200);
    assert.equal(r.body.status, 'planned');
    assert.ok(r.body.plan !== null && r.body.plan.live.length > 0, 'the plan says what would change');
    assert.equal(r.headers.etag, (before as { etag: string }).etag, 'the ETag is the current one');
    assert.deepEqual(await snapshot(), before);
  });

  it('plans a DELETE with dryRun=true and changes nothing', async () => {
    await api.put('/v1/domains/test/policy', P2);
    const before = await settled();
    const r = await api.delete<PolicyResult>('/v1/domains/test/policy?dryRun=true');
    assert.equal(r.body.status, 'planned');
    assert.ok(r.body.plan !== null && r.body.plan.persistent.length > 0, 'the plan says what removal would undo');
    assert.deepEqual(await snapshot(), before);
  });

  it('dryRun=false writes, and a dry run checks If-Match like the write would', async () => {
    const before = await settled();
    const stale = await api.put('/v1/domains/test/policy?dryRun=true', P1, { headers: { 'if-match': '"stale"' } });
    assertError(stale, 'PRECONDITION_FAILED');
    assert.deepEqual(await snapshot(), before);
    const real = await api.put<PolicyResult>('/v1/domains/test/policy?dryRun=false', P1);
    assert.equal(real.body.status, 'applied');
    assert.deepEqual((await api.get<DomainBody>('/v1/domains/test')).body.storedPolicy, P1);
  });

  it('cannot plan for a domain libvirt does not know', async () => {
    const r: ApiResult = await api.put('/v1/domains/0e2c7a52-5f0e-4d8a-9d4c-3f2b1a000003/policy?dryRun=true', P1);
    assertError(r, 'DOMAIN_NOT_FOUND');
    assert.deepEqual(es2d.daemon.store.listPolicies().map((p) => p.uuid), [], 'nothing stored');
  });
});
