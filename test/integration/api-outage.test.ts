// es2d while libvirt is unreachable (the real binary, pointed at a socket that does not exist):
// it serves, says it is not ready, answers what needs libvirt with LIBVIRT_UNAVAILABLE, and still
// stores a policy addressed by UUID as pending (202), the documented behaviour during an outage.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { ApiClient, assertError, until } from '../helpers/api-client.js';
import { startEs2d, type Es2dProcess } from '../helpers/es2d.js';

const URI = 'qemu+unix:///system?socket=/nonexistent/libvirt-sock';
const PENDING = '0e2c7a52-5f0e-4d8a-9d4c-3f2b1a0000cc';

describe('es2d with libvirt unreachable', () => {
  let proc: Es2dProcess;
  let api: ApiClient;

  before(async () => {
    proc = await startEs2d({ uri: URI, waitReady: false });
    api = new ApiClient({ endpoint: `unix:${proc.socket}` });
    await until('es2d to serve', async () => {
      if (proc.child.exitCode !== null) throw new Error(`es2d exited with ${proc.child.exitCode}:\n${proc.logs()}`);
      return (await api.get('/healthz').catch(() => undefined))?.status === 200 ? true : undefined;
    });
  });

  after(async () => {
    await proc?.stop();
  });

  it('is alive but not ready (/readyz 503 with the failing check)', async () => {
    assert.equal((await api.get('/healthz')).status, 200);
    const ready = await api.get<{ status: string; checks: Record<string, boolean> }>('/readyz');
    assert.equal(ready.status, 503);
    assert.deepEqual(ready.body, { status: 'unavailable', checks: { libvirt: false, reconciled: false } });
  });

  it('answers what needs libvirt with LIBVIRT_UNAVAILABLE (503)', async () => {
    assertError(await api.get('/v1/domains'), 'LIBVIRT_UNAVAILABLE');
    assertError(await api.get('/v1/domains/test'), 'LIBVIRT_UNAVAILABLE');
    assertError(await api.get(`/v1/domains/${PENDING}`), 'LIBVIRT_UNAVAILABLE');
    assertError(await api.get('/v1/domains/test/savings'), 'LIBVIRT_UNAVAILABLE');
    assertError(await api.post('/v1/domains/test/baseline'), 'LIBVIRT_UNAVAILABLE');
    assertError(await api.delete(`/v1/domains/${PENDING}/policy`), 'LIBVIRT_UNAVAILABLE');
  });

  it('answers what does not need libvirt', async () => {
    const host = await api.get<{ connected: boolean; ready: boolean; cpus: string | null }>('/v1/host');
    assert.deepEqual([host.status, host.body.connected, host.body.ready, host.body.cpus], [200, false, false, null]);
    assert.deepEqual((await api.get('/v1/savings')).body, []);
    assert.equal((await api.get('/metrics')).status, 200);
    assert.equal((await api.put('/v1/host/knobs', { halt_poll_ns: 250000 })).status, 200);
    assert.equal((await api.delete('/v1/host/knobs')).status, 200);
  });

  it('stores a policy addressed by UUID as pending (202); a name or a dry run needs libvirt', async () => {
    const put = await api.put<{ status: string; uuid: string; etag: string; plan: unknown }>(`/v1/domains/${PENDING.toUpperCase()}/policy`, { enabled: true });
    assert.equal(put.status, 202);
    assert.deepEqual([put.body.status, put.body.uuid, put.body.plan], ['pending', PENDING, null]);
    assert.equal(put.headers.etag, `"${put.body.etag}"`);
    // If-Match is checked against the store, libvirt or not.
    assertError(await api.put(`/v1/domains/${PENDING}/policy`, { enabled: false }, { headers: { 'if-match': '"none"' } }), 'PRECONDITION_FAILED');
    const again = await api.put(`/v1/domains/${PENDING}/policy`, { enabled: false }, { headers: { 'if-match': put.headers.etag! } });
    assert.equal(again.status, 202);
    assertError(await api.put('/v1/domains/test/policy', { enabled: true }), 'LIBVIRT_UNAVAILABLE');
    assertError(await api.put(`/v1/domains/${PENDING}/policy?dryRun=true`, { enabled: true }), 'LIBVIRT_UNAVAILABLE');
  });
});
