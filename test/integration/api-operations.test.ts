// Every operation of openapi/es2.yaml answered with success by an in-process es2d on
// test:///default, each response validated against the spec by the ApiClient; `{ref}` in all its
// forms; a pending policy that applies when its domain appears.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';

import { parse as parseYaml } from 'yaml';

import { DomainXMLFlags, type Connection } from '../../src/libvirt/index.js';
import { packageFile } from '../../src/package/root.js';
import { assertError, operationsWithoutSuccess, startApiDaemon, until, type ApiClient, type ApiDaemon } from '../helpers/api-client.js';

const KNOB = 'sys/module/kvm/parameters/halt_poll_ns';

interface DomainBody {
  uuid: string;
  name: string | null;
  state: string;
  etag: string;
  storedPolicy: unknown;
  recorded: unknown;
  applied: { result: string } | null;
}

describe('API operations on test:///default', () => {
  let es2d: ApiDaemon;
  let api: ApiClient;
  let conn: Connection;
  let uuid: string;

  before(async () => {
    es2d = await startApiDaemon();
    ({ api, conn, uuid } = es2d);
  });

  after(() => es2d?.stop());

  it('serves the YAML document as /openapi.json, unchanged', async () => {
    const r = await api.get('/openapi.json');
    assert.equal(r.status, 200);
    assert.deepEqual(r.body, parseYaml(readFileSync(packageFile('openapi', 'es2.yaml'), 'utf8')));
  });

  it('answers /healthz, /readyz and /metrics', async () => {
    assert.deepEqual((await api.get('/healthz')).body, { status: 'ok', checks: { process: true } });
    assert.deepEqual((await api.get('/readyz')).body, { status: 'ok', checks: { libvirt: true, reconciled: true } });
    const metrics = await api.get<string>('/metrics');
    assert.equal(metrics.status, 200);
    assert.match(metrics.body, /^es2_host_capability\{feature="posted_interrupts"\} 1$/m);
  });

  it('describes the host', async () => {
    const r = await api.get<{ connected: boolean; ready: boolean; cpus: string; backend: string; uri: string }>('/v1/host');
    assert.equal(r.status, 200);
    assert.equal(r.body.connected, true);
    assert.equal(r.body.ready, true);
    assert.equal(r.body.cpus, '0-15');
    assert.equal(r.body.backend, 'stock');
    assert.equal(r.body.uri, 'test:///default');
  });

  it('holds a host knob for the operator and restores the original', async () => {
    const knob = (): string => readFileSync(join(es2d.hostRoot, KNOB), 'utf8').trim();
    const held = await api.put<{ knobs: { knob: string; original: number; current: number; holders: Record<string, number> }[] }>(
      '/v1/host/knobs', { halt_poll_ns: 300000 });
    assert.equal(held.status, 200);
    assert.deepEqual(held.body.knobs.map((k) => [k.knob, k.original, k.current, k.holders]),
      [['halt_poll_ns', 200000, 300000, { operator: 300000 }]]);
    assert.equal(knob(), '300000');
    const restored = await api.delete<{ knobs: unknown[]; restored: unknown[] }>('/v1/host/knobs');
    assert.equal(restored.status, 200);
    assert.deepEqual(restored.body, { knobs: [], restored: [{ knob: 'halt_poll_ns', from: 300000, to: 200000 }] });
    assert.equal(knob(), '200000');
  });

  it('lists the domains libvirt knows', async () => {
    const r = await api.get<{ domains: { uuid: string; name: string; state: string; pending: boolean }[] }>('/v1/domains');
    assert.deepEqual(r.body.domains.map((d) => [d.uuid, d.name, d.state, d.pending]), [[uuid, 'test', 'running', false]]);
  });

  it('resolves {ref} as a name, a UUID, an upper-case UUID and a UUID without dashes', async () => {
    const byName = await api.get<DomainBody>('/v1/domains/test');
    assert.equal(byName.status, 200);
    assert.equal(byName.body.uuid, uuid);
    assert.equal(byName.headers.etag, '"none"');
    for (const ref of [uuid, uuid.toUpperCase(), uuid.replace(/-/g, '')]) {
      const r = await api.get<DomainBody>(`/v1/domains/${ref}`);
      assert.deepEqual(r.body, byName.body, ref);
      assert.equal(r.headers.etag, byName.headers.etag, ref);
    }
  });

  it('applies, shows and removes a policy addressed by name and by UUID', async () => {
    const policy = { enabled: true, vcpus: [{ vcpu: 0, cpuset: '2', label: 'io' }], hybridIo: { iothreads: 1, pollMaxNs: 32768 } };
    const put = await api.put<{ status: string; etag: string; uuid: string; name: string }>('/v1/domains/test/policy', policy);
    assert.equal(put.status, 200);
    assert.equal(put.body.status, 'applied');
    assert.equal(put.body.uuid, uuid);
    assert.equal(put.headers.etag, `"${put.body.etag}"`);
    assert.deepEqual(await conn.domainGetVcpuPinInfo(uuid).then((pins) => pins[0]), [2]);

    const shown = await api.get<DomainBody>(`/v1/domains/${uuid.toUpperCase()}`);
    assert.deepEqual(shown.body.storedPolicy, policy);
    assert.equal(shown.body.etag, put.body.etag);
    assert.equal(shown.body.applied?.result, 'ok');

    const removed = await api.delete<{ status: string; etag: string }>(`/v1/domains/${uuid}/policy`);
    assert.equal(removed.status, 200);
    assert.equal(removed.body.status, 'removed');
    assert.equal(removed.body.etag, 'none');
    assert.equal((await api.get<DomainBody>('/v1/domains/test')).body.storedPolicy, null);
  });

  it('reports savings once es2d has sampled the domain, and takes a baseline', async () => {
    // The stats cycle runs every second: a report needs one sample, a baseline two.
    const report = await until('a savings report', async () => {
      const r = await api.request<{ uuid: string; confidence: string }>('GET', '/v1/domains/test/savings');
      return r.status === 200 ? r : undefined;
    });
    assert.equal(report.body.uuid, uuid);
    // test:///default has no KVM exit counters.
    assert.equal(report.body.confidence, 'no-kvm-stats');
    const baseline = await until('a baseline', async () => {
      const r = await api.post<{ uuid: string; baseline: { seconds: number } }>(`/v1/domains/${uuid}/baseline`);
      return r.status === 201 ? r : undefined;
    });
    assert.equal(baseline.body.uuid, uuid);
    assert.ok(baseline.body.baseline.seconds > 0);
    const all = await api.get<{ uuid: string; baseline: unknown }[]>('/v1/savings');
    assert.deepEqual(all.body.map((r) => r.uuid), [uuid]);
    assert.notEqual(all.body[0]!.baseline, null);
  });

  it('answers the libvirt hook without changing XML that carries no es2 record', async () => {
    const xml = await conn.domainGetXMLDesc(uuid, DomainXMLFlags.INACTIVE);
    for (const op of ['prepare', 'migrate', 'restore']) {
      const r = await api.post<{ xml: string | null }>('/v1/hooks/libvirt', { name: 'test', op, subop: 'begin', extra: '-', xml });
      assert.equal(r.status, 200, op);
      assert.equal(r.body.xml, null, op);
    }
  });

  /**
   * The test domain as es2 records it with vCPU 0 pinned to CPU 3 (`recorded`), and as it would
   * arrive from a 64-CPU source host with that pin on CPU 40, which this 16-CPU host lacks.
   */
  async function migratingIn(): Promise<{ recorded: string; incoming: string }> {
    await api.put('/v1/domains/test/policy', { enabled: true, vcpus: [{ vcpu: 0, cpuset: '3' }] });
    const recorded = await conn.domainGetXMLDesc(uuid, DomainXMLFlags.INACTIVE);
    await api.delete('/v1/domains/test/policy');
    const incoming = recorded.replace(/<vcpupin vcpu='0' cpuset='3'\/>/, "<vcpupin vcpu='0' cpuset='40'/>")
      .replace(/"cpuset":"3"/, '"cpuset":"40"');
    return { recorded, incoming };
  }

  it('rewrites migrating XML whose recorded pins this host cannot hold', async () => {
    const { recorded, incoming } = await migratingIn();
    assert.notEqual(incoming, recorded);
    const r = await api.post<{ xml: string | null; notes?: string[] }>('/v1/hooks/libvirt', {
      name: 'test', op: 'migrate', subop: 'begin', extra: '-', xml: incoming,
    });
    assert.equal(r.status, 200);
    assert.equal(typeof r.body.xml, 'string');
    assert.doesNotMatch(r.body.xml!, /cpuset='40'/);
    assert.ok((r.body.notes ?? []).length > 0, 'the hook says what it dropped');
  });

  it('answers the shell hook\'s form: XML in, the XML to print out (200) or nothing (204)', async () => {
    const { recorded, incoming } = await migratingIn();
    const xmlHeaders = { 'content-type': 'application/xml', accept: 'application/xml' };
    const rewritten = await api.post<string>('/v1/hooks/libvirt/migrate?subop=begin&extra=-', undefined, { raw: incoming, headers: xmlHeaders });
    assert.equal(rewritten.status, 200);
    assert.match(String(rewritten.headers['content-type']), /^application\/xml/);
    assert.match(rewritten.body, /^<domain/);
    assert.doesNotMatch(rewritten.body, /cpuset='40'/);
    // Unchanged XML, an operation es2d does nothing for, and no body at all: nothing to print.
    for (const [target, raw] of [['/v1/hooks/libvirt/migrate', recorded], ['/v1/hooks/libvirt/reconnect?subop=begin', recorded], ['/v1/hooks/libvirt/prepare', undefined]] as const) {
      const r = await api.post(target, undefined, raw === undefined ? {} : { raw, headers: xmlHeaders });
      assert.equal(r.status, 204, target);
      assert.equal(r.text, '', target);
    }
    assertError(await api.post('/v1/hooks/libvirt/Prepare%20x', undefined, { raw: recorded, headers: xmlHeaders, unchecked: true }), 'VALIDATION_FAILED');
  });

  it('stores a policy for a UUID libvirt does not know (202) and applies it when the domain appears', async () => {
    const late = '0e2c7a52-5f0e-4d8a-9d4c-3f2b1a000001';
    const policy = { enabled: true, vcpus: [{ vcpu: 1, cpuset: '6' }] };
    const put = await api.put<{ status: string; name: string | null; etag: string; plan: unknown }>(`/v1/domains/${late.toUpperCase()}/policy`, policy);
    assert.equal(put.status, 202);
    assert.deepEqual([put.body.status, put.body.name, put.body.plan], ['pending', null, null]);
    assert.equal(put.headers.etag, `"${put.body.etag}"`);

    const listed = await api.get<{ domains: { uuid: string; state: string; pending: boolean; enabled: boolean }[] }>('/v1/domains');
    assert.deepEqual(listed.body.domains.find((d) => d.uuid === late), { uuid: late, name: null, state: 'absent', enabled: true, source: 'api', pending: true, drift: false });
    const absent = await api.get<DomainBody>(`/v1/domains/${late}`);
    assert.equal(absent.body.state, 'absent');
    assert.equal(absent.body.etag, put.body.etag);
    assert.equal(absent.headers.etag, `"${put.body.etag}"`);
    assert.deepEqual(absent.body.storedPolicy, policy);

    await conn.domainDefineXML(`<domain type='test'><name>late</name><uuid>${late}</uuid><memory>65536</memory><vcpu>2</vcpu><os><type>hvm</type></os></domain>`);
    try {
      const applied = await until('the pending policy applied', async () => {
        const r = await api.get<DomainBody>('/v1/domains/late');
        return r.body.applied?.result === 'ok' && r.body.recorded !== null ? r : undefined;
      });
      assert.equal(applied.body.state, 'shutoff');
      assert.deepEqual(applied.body.recorded, policy);
      assert.match(await conn.domainGetXMLDesc(late, DomainXMLFlags.INACTIVE), /<vcpupin vcpu='1' cpuset='6'\/>/);
      const now = await api.get<{ domains: { uuid: string; pending: boolean; name: string | null }[] }>('/v1/domains');
      assert.deepEqual(now.body.domains.find((d) => d.uuid === late)?.pending, false);
    } finally {
      await conn.domainUndefine(late);
    }
    const removed = await api.delete<{ status: string }>(`/v1/domains/${late}/policy`);
    assert.equal(removed.body.status, 'removed');
  });

  it('has answered every operation of the spec with success', () => {
    assert.deepEqual(operationsWithoutSuccess(), []);
  });
});
