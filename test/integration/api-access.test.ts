// Who may talk to es2d, and what it writes down about them: the real es2d binary as a child
// process. A TCP listener wants the bearer token of --token-file on every /v1 request (UNAUTHORIZED
// otherwise) while /metrics, /healthz, /readyz and /openapi.json stay open; the UNIX socket is the
// default, mode 0660 with the group from the config, survives a stale socket file left by a killed
// es2d, and is not taken from a live es2d (CONFLICT). Each request is logged with method, path,
// status and latency; bodies only at debug level.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';

import { ApiClient, assertError, until } from '../helpers/api-client.js';
import { startEs2d, type Es2dProcess } from '../helpers/es2d.js';
import { tempDir } from '../helpers/temp.js';

const TOKEN = 'tok-3a9e1c0b5d7f4e2a8c6b';

interface LogLine {
  message: string;
  level: string;
  [key: string]: unknown;
}

function logLines(proc: Es2dProcess): LogLine[] {
  return proc.logs().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as LogLine);
}

/** The listener URLs es2d reports once started (TCP port 0 becomes a real port there). */
async function listenUrls(proc: Es2dProcess): Promise<string[]> {
  return until('es2d to log its listeners', () => logLines(proc).find((l) => l.message === 'es2d started')?.listen as string[] | undefined);
}

function tokenFile(token: string): string {
  const file = join(tempDir('es2-token-'), 'token');
  writeFileSync(file, `${token}\n`, { mode: 0o600 });
  return file;
}

/** A group the socket can be given that differs from ours (root may pick any). */
function otherGroup(): { name: string; gid: number } {
  const allowed = process.getuid?.() === 0 ? undefined : new Set(process.getgroups?.() ?? []);
  const groups = readFileSync('/etc/group', 'utf8').split('\n').map((line) => line.split(':'))
    .filter((f) => f.length >= 3 && f[0] !== '').map((f) => ({ name: f[0]!, gid: Number(f[2]) }));
  const pick = groups.find((g) => g.gid !== process.getgid?.() && (allowed === undefined || allowed.has(g.gid)) && /^[a-z_][a-z0-9_-]*$/.test(g.name));
  // Without another group to move the socket to, the primary group still proves the name resolves.
  return pick ?? groups.find((g) => g.gid === process.getgid?.())!;
}

describe('a TCP listener', () => {
  let proc: Es2dProcess;
  let tcp: string;
  let open: ApiClient;
  let authed: ApiClient;
  let local: ApiClient;

  before(async () => {
    proc = await startEs2d({ args: ['--listen', '127.0.0.1:0', '--token-file', tokenFile(TOKEN)] });
    tcp = (await listenUrls(proc)).find((u) => u.startsWith('http://'))!;
    assert.match(tcp, /^http:\/\/127\.0\.0\.1:[1-9]\d*$/, 'port 0 became a real port');
    open = new ApiClient({ endpoint: tcp });
    authed = new ApiClient({ endpoint: tcp, token: TOKEN });
    local = new ApiClient({ endpoint: `unix:${proc.socket}` });
  });

  after(async () => {
    await proc?.stop();
  });

  it('refuses /v1 without a token, with a wrong one, or with another scheme (401, WWW-Authenticate)', async () => {
    for (const [what, options] of [
      ['no token', {}],
      ['a wrong token', { token: `${TOKEN}x` }],
      ['a token prefix', { token: TOKEN.slice(0, 10) }],
      ['Basic', { token: null, headers: { authorization: `Basic ${Buffer.from(`es2:${TOKEN}`).toString('base64')}` } }],
      ['a bare token', { token: null, headers: { authorization: TOKEN } }],
    ] as const) {
      const r = await open.get('/v1/host', options);
      assert.equal(r.status, 401, what);
      assertError(r, 'UNAUTHORIZED');
      assert.equal(r.headers['www-authenticate'], 'Bearer realm="es2"', what);
    }
  });

  it('refuses writes without the token before reading them, and changes nothing', async () => {
    const put = await open.put('/v1/domains/test/policy', { enabled: true });
    assertError(put, 'UNAUTHORIZED');
    // Even a malformed body: the token is checked first.
    assertError(await open.request('PUT', '/v1/domains/test/policy', { raw: '{', unchecked: true }), 'UNAUTHORIZED');
    assertError(await open.post('/v1/hooks/libvirt', { name: 'test', op: 'started', subop: 'begin', extra: '-', xml: '' }), 'UNAUTHORIZED');
    assert.equal((await local.get<{ storedPolicy: unknown }>('/v1/domains/test')).body.storedPolicy, null);
  });

  it('does not tell unauthenticated clients which /v1 paths exist', async () => {
    assertError(await open.request('GET', '/v1/no-such-thing', { unchecked: true }), 'UNAUTHORIZED');
  });

  it('serves /v1 with the token', async () => {
    assert.equal((await authed.get('/v1/host')).status, 200);
    const put = await authed.put<{ status: string }>('/v1/domains/test/policy', { enabled: true, vcpus: [{ vcpu: 1, cpuset: '7' }] });
    assert.equal(put.body.status, 'applied');
    assert.equal((await authed.delete('/v1/domains/test/policy')).status, 200);
  });

  it('keeps /metrics, /healthz, /readyz and /openapi.json open', async () => {
    for (const path of ['/metrics', '/healthz', '/readyz', '/openapi.json']) {
      assert.equal((await open.get(path)).status, 200, path);
    }
  });

  it('trusts the UNIX socket without a token', async () => {
    assert.equal((await local.get('/v1/domains')).status, 200);
  });

  it('refuses to start a TCP listener without --token-file', async () => {
    const child = await startEs2d({ args: ['--listen', '127.0.0.1:0'], waitReady: false });
    const [code] = (await once(child.child, 'exit')) as [number | null];
    assert.equal(code, 2);
    assert.match(child.logs(), /VALIDATION_FAILED: a TCP listener accepts writes and needs --token-file/);
  });

  it('logs each request with method, path, status and latency, and no body at info level', async () => {
    const canary = 'canary-7f3a';
    await authed.put('/v1/domains/test/policy', { enabled: true, vcpus: [{ vcpu: 0, cpuset: '3', label: canary }] });
    await open.get('/v1/domains/test');
    await authed.delete('/v1/domains/test/policy');
    const lines = await until('the request lines', () => {
      const found = logLines(proc).filter((l) => l.message === 'request');
      return found.some((l) => l.method === 'DELETE') ? found : undefined;
    });
    const put = lines.filter((l) => l.method === 'PUT' && l.path === '/v1/domains/test/policy').at(-1)!;
    assert.equal(put.status, 200);
    assert.equal(put.level, 'info');
    assert.equal(typeof put.ms, 'number');
    assert.ok((put.ms as number) >= 0);
    assert.ok(lines.some((l) => l.method === 'GET' && l.path === '/v1/domains/test' && l.status === 401));
    assert.ok(!proc.logs().includes(canary), 'the body stays out of the log at info level');
    assert.ok(!proc.logs().includes(TOKEN), 'the token never reaches the log');
  });
});

describe('request bodies at debug level', () => {
  it('are logged with the method and path', async () => {
    const proc = await startEs2d({ args: ['--log-level', 'debug'] });
    try {
      const api = new ApiClient({ endpoint: `unix:${proc.socket}` });
      const canary = 'canary-debug-5e1';
      await api.put('/v1/domains/test/policy', { enabled: true, vcpus: [{ vcpu: 0, cpuset: '3', label: canary }] });
      const line = await until('the body line', () => logLines(proc).find((l) => l.message === 'request body'));
      assert.equal(line.level, 'debug');
      assert.equal(line.method, 'PUT');
      assert.deepEqual(line.body, { enabled: true, vcpus: [{ vcpu: 0, cpuset: '3', label: canary }] });
    } finally {
      await proc.stop();
    }
  });
});

describe('the UNIX socket', () => {
  it('is created with mode 0660 by default', async () => {
    const proc = await startEs2d();
    try {
      const st = statSync(proc.socket);
      assert.ok(st.isSocket());
      assert.equal(st.mode & 0o777, 0o660);
    } finally {
      await proc.stop();
    }
    assert.equal(existsSync(proc.socket), false, 'a clean stop removes the socket');
  });

  it('takes its mode and group from the config file', async () => {
    const group = otherGroup();
    const config = join(tempDir('es2-config-'), 'es2d.yaml');
    writeFileSync(config, `socketMode: '0640'\nsocketGroup: ${group.name}\n`);
    const proc = await startEs2d({ args: ['--config', config] });
    try {
      const st = statSync(proc.socket);
      assert.equal(st.mode & 0o777, 0o640);
      assert.equal(st.gid, group.gid);
    } finally {
      await proc.stop();
    }
  });

  it('is recovered from a stale socket file left by a killed es2d', async () => {
    const first = await startEs2d();
    await first.kill('SIGKILL');
    assert.ok(statSync(first.socket).isSocket(), 'SIGKILL leaves the socket file behind');
    const second = await startEs2d({ socket: first.socket });
    try {
      const api = new ApiClient({ endpoint: `unix:${second.socket}` });
      assert.equal((await api.get('/readyz')).status, 200);
      assert.equal(statSync(second.socket).mode & 0o777, 0o660);
    } finally {
      await second.stop();
    }
  });

  it('never removes a file at the socket path that is not a socket', async () => {
    const path = join(tempDir('es2-sock-'), 'not-a-socket');
    writeFileSync(path, 'precious\n');
    const proc = await startEs2d({ socket: path, waitReady: false });
    const [code] = (await once(proc.child, 'exit')) as [number | null];
    assert.equal(code, 1);
    assert.match(proc.logs(), /es2d: CONFLICT: .* exists and is not a socket/);
    assert.equal(readFileSync(path, 'utf8'), 'precious\n');
  });

  it('is not taken from a live es2d: the second one exits with CONFLICT', async () => {
    const first = await startEs2d();
    try {
      const second = await startEs2d({ socket: first.socket, waitReady: false });
      const [code] = (await once(second.child, 'exit')) as [number | null];
      assert.equal(code, 1);
      assert.match(second.logs(), /es2d: CONFLICT: another process is serving /);
      const api = new ApiClient({ endpoint: `unix:${first.socket}` });
      assert.equal((await api.get('/healthz')).status, 200, 'the first es2d still serves');
    } finally {
      await first.stop();
    }
  });
});
