// Every error code of DESIGN.md produced by a real request to es2d (in-process on
// test:///default), each in the one error body with the HTTP status its code maps to (the
// ApiClient checks that on every response) and a `details[].path` that names the input at fault.
// UNAUTHORIZED is produced in api-access.test.ts (TCP listener) and LIBVIRT_UNAVAILABLE in
// api-outage.test.ts (libvirt unreachable).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';

import type { Connection } from '../../src/libvirt/index.js';
import { assertError, startApiDaemon, type ApiClient, type ApiDaemon } from '../helpers/api-client.js';
import { hostTree, STOCK_HOST } from '../helpers/temp.js';

const POLICY = '/v1/domains/test/policy';
const GROW = 'sys/module/kvm/parameters/halt_poll_ns_grow';
const GROW_START = 'sys/module/kvm/parameters/halt_poll_ns_grow_start';

describe('VALIDATION_FAILED, DOMAIN_NOT_FOUND, CONFLICT and PRECONDITION_FAILED', () => {
  let es2d: ApiDaemon;
  let api: ApiClient;
  let conn: Connection;
  let uuid: string;

  before(async () => {
    es2d = await startApiDaemon();
    ({ api, conn, uuid } = es2d);
  });

  after(() => es2d?.stop());

  /** Nothing the refused requests below sent may have reached the store. */
  const nothingStored = (): void => assert.deepEqual(es2d.daemon.store.listPolicies(), []);

  it('malformed JSON: the body as a whole', async () => {
    const r = await api.request('PUT', POLICY, { raw: '{"enabled": tru', unchecked: true });
    assertError(r, 'VALIDATION_FAILED', '');
    assert.match((r.body as { message: string }).message, /not valid JSON/);
    nothingStored();
  });

  it('an unknown field, named by its path; the spec refuses it too', async () => {
    const r = await api.put(POLICY, { enabled: true, vcpus: [{ vcpu: 0, cpuset: '2', pinned: true }] }, { unchecked: true });
    assertError(r, 'VALIDATION_FAILED', '/vcpus/0/pinned');
    assert.deepEqual(r.requestErrors.map((d) => d.path), ['/vcpus/0/pinned']);
    assertError(await api.put(POLICY, { enabled: true, turbo: 1 }, { unchecked: true }), 'VALIDATION_FAILED', '/turbo');
    nothingStored();
  });

  it('a wrong type, named by its path', async () => {
    const r = await api.put(POLICY, { enabled: 'yes', hybridIo: { pollMaxNs: '32768' } }, { unchecked: true });
    assertError(r, 'VALIDATION_FAILED', '/enabled');
    assertError(r, 'VALIDATION_FAILED', '/hybridIo/pollMaxNs');
    assert.deepEqual(r.requestErrors.map((d) => d.path).sort(), ['/enabled', '/hybridIo/pollMaxNs']);
    nothingStored();
  });

  it('a bad cpuset at /vcpus/0/cpuset: syntax the spec refuses, and ranges only es2d can judge', async () => {
    const letters = await api.put(POLICY, { enabled: true, vcpus: [{ vcpu: 0, cpuset: 'two' }] }, { unchecked: true });
    assertError(letters, 'VALIDATION_FAILED', '/vcpus/0/cpuset');
    assert.deepEqual(letters.requestErrors.map((d) => d.path), ['/vcpus/0/cpuset']);
    // The schema's pattern admits "2-1"; the cpuset parser refuses the reversed range.
    const reversed = await api.put(POLICY, { enabled: true, vcpus: [{ vcpu: 0, cpuset: '2-1' }] });
    assertError(reversed, 'VALIDATION_FAILED', '/vcpus/0/cpuset');
    // A CPU this host does not have (16 CPUs) and a vCPU the domain does not have (2).
    assertError(await api.put(POLICY, { enabled: true, vcpus: [{ vcpu: 0, cpuset: '99' }] }), 'VALIDATION_FAILED', '/vcpus/0/cpuset');
    assertError(await api.put(POLICY, { enabled: true, vcpus: [{ vcpu: 5, cpuset: '1' }] }), 'VALIDATION_FAILED', '/vcpus/0/vcpu');
    nothingStored();
  });

  it('a bad query parameter: dryRun=maybe, without a value, repeated; an unknown parameter', async () => {
    for (const [query, path] of [
      ['dryRun=maybe', '/query/dryRun'], ['dryRun', '/query/dryRun'], ['dryRun=1', '/query/dryRun'],
      ['dryRun=true&dryRun=false', '/query/dryRun'], ['force=1', '/query/force'],
    ] as const) {
      const r = await api.put(`${POLICY}?${query}`, { enabled: true }, { unchecked: true });
      assertError(r, 'VALIDATION_FAILED', path);
      assert.ok(r.requestErrors.some((d) => d.path === path), `the spec refuses ${query} too`);
    }
    nothingStored();
  });

  it('a missing body, and a body sent to an operation that takes none', async () => {
    assertError(await api.request('PUT', POLICY, { unchecked: true }), 'VALIDATION_FAILED', '');
    const r = await api.request('POST', '/v1/domains/test/baseline', { body: { seconds: 60 }, unchecked: true });
    assertError(r, 'VALIDATION_FAILED', '');
    assert.match((r.body as { message: string }).message, /takes no request body/);
    assertError(await api.request('DELETE', POLICY, { body: { enabled: false }, unchecked: true }), 'VALIDATION_FAILED', '');
  });

  it('a body over the operation\'s x-max-bytes is refused before it is parsed', async () => {
    const limit = api.operationFor('PUT', POLICY)!.op.bodyLimit!;
    assert.equal(limit, 65536);
    // Valid by the schema (4096 vCPU entries are allowed), only too large.
    const vcpus = Array.from({ length: 2000 }, (_, i) => ({ vcpu: i, cpuset: '0-15', label: 'compute' }));
    const body = { enabled: true, vcpus };
    assert.ok(JSON.stringify(body).length > limit);
    const r = await api.put(POLICY, body, { unchecked: true });
    assertError(r, 'VALIDATION_FAILED', '');
    assert.match((r.body as { message: string }).message, /larger than 65536 bytes/);
    assert.deepEqual(r.requestErrors, [{ path: '', message: 'larger than 65536 bytes' }]);
    nothingStored();
  });

  it('hook requests get the larger limit their XML needs, and the XML its own maxLength', async () => {
    // A large domain XML (many devices) is well over the 64 KiB of a policy body.
    const padding = `<!--${'x'.repeat(200_000)}-->`;
    const xml = `<domain type='kvm'><name>big</name><uuid>${uuid}</uuid>${padding}</domain>`;
    const ok = await api.post<{ xml: string | null }>('/v1/hooks/libvirt', { name: 'big', op: 'prepare', subop: 'begin', extra: '-', xml });
    assert.equal(ok.status, 200);
    const tooLong = 'x'.repeat(1_048_577);
    const r = await api.post('/v1/hooks/libvirt', { name: 'big', op: 'prepare', subop: 'begin', extra: '-', xml: tooLong }, { unchecked: true });
    assertError(r, 'VALIDATION_FAILED', '/xml');
  });

  it('an unknown path or method is VALIDATION_FAILED at /path', async () => {
    for (const [method, path] of [['GET', '/v1/nope'], ['POST', '/v1/domains'], ['PATCH', POLICY], ['GET', '/v2/domains']] as const) {
      const r = await api.request(method, path, { unchecked: true });
      assert.equal(r.operation, undefined);
      assertError(r, 'VALIDATION_FAILED', '/path');
    }
  });

  it('a path parameter that is not valid percent-encoding, or holds a slash, is named', async () => {
    const bad = await api.request('GET', '/v1/domains/%E0%A4%A', { unchecked: true });
    assertError(bad, 'VALIDATION_FAILED', '/path/ref');
    assert.deepEqual(bad.requestErrors.map((d) => d.path), ['/path/ref']);
    const slash = await api.request('GET', '/v1/domains/a%2Fb', { unchecked: true });
    assertError(slash, 'VALIDATION_FAILED', '/path/ref');
    assert.deepEqual(slash.requestErrors.map((d) => d.path), ['/path/ref']);
  });

  it('host knobs: only the declared ones, at least one, integers in range', async () => {
    assertError(await api.put('/v1/host/knobs', {}, { unchecked: true }), 'VALIDATION_FAILED');
    assertError(await api.put('/v1/host/knobs', { halt_poll_ns_shrink: 2 }, { unchecked: true }), 'VALIDATION_FAILED', '/halt_poll_ns_shrink');
    assertError(await api.put('/v1/host/knobs', { halt_poll_ns: -1 }, { unchecked: true }), 'VALIDATION_FAILED', '/halt_poll_ns');
    assertError(await api.put('/v1/host/knobs', { halt_poll_ns: 1.5 }, { unchecked: true }), 'VALIDATION_FAILED', '/halt_poll_ns');
    assert.deepEqual((await api.get<{ knobs: unknown[] }>('/v1/host')).body.knobs, []);
  });

  it('a hook request with a missing field', async () => {
    const r = await api.post('/v1/hooks/libvirt', { name: 'test', op: 'started', subop: 'begin', extra: '-' }, { unchecked: true });
    assertError(r, 'VALIDATION_FAILED', '/xml');
  });

  it('DOMAIN_NOT_FOUND: an unknown name, an unknown UUID with nothing stored', async () => {
    assertError(await api.get('/v1/domains/no-such-domain'), 'DOMAIN_NOT_FOUND');
    assertError(await api.get('/v1/domains/0e2c7a52-5f0e-4d8a-9d4c-3f2b1a0000aa'), 'DOMAIN_NOT_FOUND');
    // A name cannot be pending: only a UUID names a domain before it exists.
    assertError(await api.put('/v1/domains/no-such-domain/policy', { enabled: true }), 'DOMAIN_NOT_FOUND');
    assertError(await api.delete('/v1/domains/no-such-domain/policy'), 'DOMAIN_NOT_FOUND');
    assertError(await api.get('/v1/domains/no-such-domain/savings'), 'DOMAIN_NOT_FOUND');
    assertError(await api.post('/v1/domains/0e2c7a52-5f0e-4d8a-9d4c-3f2b1a0000aa/baseline'), 'DOMAIN_NOT_FOUND');
    nothingStored();
  });

  it('PRECONDITION_FAILED: a stale If-Match', async () => {
    const put = await api.put(POLICY, { enabled: false });
    assertError(await api.put(POLICY, { enabled: true }, { headers: { 'if-match': '"none"' } }), 'PRECONDITION_FAILED');
    assertError(await api.delete(POLICY, { headers: { 'if-match': '"stale"' } }), 'PRECONDITION_FAILED');
    assert.equal((await api.delete(POLICY, { headers: { 'if-match': put.headers.etag! } })).status, 200);
  });

  it('CONFLICT: a baseline of a domain that is not running (no samples to take it from)', async () => {
    const idle = '0e2c7a52-5f0e-4d8a-9d4c-3f2b1a0000bb';
    await conn.domainDefineXML(`<domain type='test'><name>idle</name><uuid>${idle}</uuid><memory>65536</memory><vcpu>1</vcpu><os><type>hvm</type></os></domain>`);
    try {
      const r = await api.post('/v1/domains/idle/baseline');
      assertError(r, 'CONFLICT');
      assert.match((r.body as { message: string }).message, /two samples of the running domain/);
      assert.equal(es2d.daemon.store.getBaseline(idle), undefined);
    } finally {
      await conn.domainUndefine(idle);
    }
  });
});

describe('HOST_UNSUPPORTED and INTERNAL on a host without posted interrupts and with a garbled knob', () => {
  let es2d: ApiDaemon;
  let api: ApiClient;
  let hostRoot: string;

  before(async () => {
    // APICv off and no posted_intr flag: no posted interrupts. halt_poll_ns holds something that
    // is not a number, as a kernel bug or a stray write could leave it.
    // halt_poll_ns_grow is missing, as on kernels built without it.
    const { [GROW]: _grow, ...stock } = STOCK_HOST;
    hostRoot = hostTree({
      ...stock,
      'proc/cpuinfo': 'processor\t: 0\nvendor_id\t: GenuineIntel\nflags\t\t: fpu vmx\nvmx flags\t: vnmi\n',
      'sys/module/kvm_intel/parameters/enable_apicv': 'N\n',
      'sys/module/kvm/parameters/halt_poll_ns': 'garbage\n',
    });
    es2d = await startApiDaemon({ hostRoot });
    api = es2d.api;
  });

  after(() => es2d?.stop());

  it('reports the host without posted interrupts', async () => {
    const host = await api.get<{ capabilities: { postedInterrupts: { supported: boolean | null } } }>('/v1/host');
    assert.equal(host.body.capabilities.postedInterrupts.supported, false);
  });

  it('HOST_UNSUPPORTED: postedInterrupts required; preferred only warns', async () => {
    const r = await api.put(POLICY, { enabled: true, postedInterrupts: 'required' });
    assertError(r, 'HOST_UNSUPPORTED');
    assert.deepEqual(es2d.daemon.store.listPolicies(), [], 'a refused policy is not stored');
    assertError(await api.put(`${POLICY}?dryRun=true`, { enabled: true, postedInterrupts: 'required' }), 'HOST_UNSUPPORTED');
    const preferred = await api.put<{ status: string; plan: { warnings: string[] } }>(POLICY, { enabled: true, postedInterrupts: 'preferred' });
    assert.equal(preferred.status, 200);
    assert.ok(preferred.body.plan.warnings.some((w) => /posted interrupts/i.test(w)), JSON.stringify(preferred.body.plan.warnings));
    assert.equal((await api.delete(POLICY)).status, 200);
  });

  it('HOST_UNSUPPORTED: a knob this host lacks; the other knobs of the request are put back', async () => {
    const growStart = (): string => readFileSync(join(hostRoot, GROW_START), 'utf8');
    const earlier = await api.put<{ knobs: { knob: string; current: number }[] }>('/v1/host/knobs', { halt_poll_ns_grow_start: 15000 });
    assert.deepEqual(earlier.body.knobs.map((k) => [k.knob, k.current]), [['halt_poll_ns_grow_start', 15000]]);
    const r = await api.put('/v1/host/knobs', { halt_poll_ns_grow_start: 20000, halt_poll_ns_grow: 2 });
    assert.match(assertError(r, 'HOST_UNSUPPORTED').message, /halt_poll_ns_grow/);
    assert.equal(growStart(), '15000\n');
    const after = await api.get<{ knobs: { knob: string; current: number; holders: object }[] }>('/v1/host');
    assert.deepEqual(after.body.knobs.map((k) => [k.knob, k.current, k.holders]), [['halt_poll_ns_grow_start', 15000, { operator: 15000 }]]);
    assert.equal((await api.delete('/v1/host/knobs')).status, 200);
    assert.equal(growStart(), '10000\n');
  });

  it('INTERNAL: a knob file that does not hold a number; the file is left as it was', async () => {
    const r = await api.put('/v1/host/knobs', { halt_poll_ns: 100000 });
    const body = assertError(r, 'INTERNAL');
    assert.match(body.message, /halt_poll_ns holds "garbage", not a number/);
    assert.equal(readFileSync(join(hostRoot, 'sys/module/kvm/parameters/halt_poll_ns'), 'utf8'), 'garbage\n');
    assert.deepEqual((await api.get<{ knobs: unknown[] }>('/v1/host')).body.knobs, []);
  });
});
