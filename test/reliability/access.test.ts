// Access and containment, against real es2d processes: every /v1 operation of the spec (and /v1
// paths it lacks) over TCP without the token, with a wrong one or another scheme is 401 in the
// Error schema, and changed nothing; the UNIX socket has the configured mode, also under umask 0
// and after a stale socket; knob writes cannot leave the fixed list (knob names with traversal, a
// symlinked knob directory, random paths into HostRoot); domain names, hook arguments, labels and
// config values full of shell metacharacters are handled as data (no file appears, nothing outside
// the host root changes); and no source file can hand input to a shell.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { after, before, describe, it } from 'node:test';

import fc from 'fast-check';

import { Es2Error } from '../../src/errors/index.js';
import { ES2_VM_FILES, HostRoot, KNOB_PATHS, PROBE_PATHS, PROVIDER_CONFIG_PATH } from '../../src/host/index.js';
import { startEs2d, type Es2dProcess } from '../helpers/es2d.js';
import { fixture, repoRoot } from '../helpers/paths.js';
import { hostTree, STOCK_HOST, tempDir } from '../helpers/temp.js';
import { tally } from './figures.js';
import { fuzz, replayRegressions } from './fuzz.js';
import { apiSpec, assertAlive, assertWellFormed, HOOK_SCRIPT, runHook, send, tcpUrl, TOKEN, tokenFile } from './support.js';
import { testDriverNode } from './driver-file.js';

const figures = tally('access');
const MARKER = `es2rel-marker-${process.pid}`;
/** Where a payload's `touch` would land: es2d's working directory (the test's) and /tmp. */
const markerPaths = [join(process.cwd(), MARKER), join('/tmp', MARKER)];
const SHELL_PAYLOADS = [`$(touch ${MARKER})`, `\`touch ${MARKER}\``, `;touch ${MARKER};`, `|touch ${MARKER}`, `&&touch ${MARKER}`,
  `$(touch /tmp/${MARKER})`, `'$(touch ${MARKER})'`, `"; touch ${MARKER}; "`];

function assertNoMarker(after: string): void {
  for (const m of markerPaths) assert.ok(!existsSync(m), `${m} exists after ${after}: input reached a shell`);
}

/** path → sha256 of content (or `->target` for a symlink) of every file under `dir`. */
function snapshot(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (d: string): void => {
    for (const name of readdirSync(d)) {
      const p = join(d, name);
      const st = lstatSync(p);
      if (st.isSymbolicLink()) out.set(relative(dir, p), '->link');
      else if (st.isDirectory()) walk(p);
      else out.set(relative(dir, p), createHash('sha256').update(readFileSync(p)).digest('hex'));
    }
  };
  walk(dir);
  return out;
}

function changedFiles(before: Map<string, string>, after: Map<string, string>): string[] {
  const keys = new Set([...before.keys(), ...after.keys()]);
  return [...keys].filter((k) => before.get(k) !== after.get(k)).sort();
}

/** A host root with `files` next to an `outside` dir holding `outsideFiles`: what must not change. */
function sandboxHost(files: Record<string, string>, outsideFiles: Record<string, string>): { sandbox: string; root: string; outside: string } {
  const sandbox = tempDir('es2rel-sandbox-');
  const root = join(sandbox, 'root');
  const outside = join(sandbox, 'outside');
  mkdirSync(outside);
  for (const [name, content] of Object.entries(outsideFiles)) writeFileSync(join(outside, name), content);
  for (const [rel, content] of Object.entries(files)) {
    mkdirSync(join(root, rel, '..'), { recursive: true });
    writeFileSync(join(root, rel), content);
  }
  return { sandbox, root, outside };
}

/** The host files es2 may write (DESIGN.md): knobs, the provider config, the ES2 kernel's per-VM files. */
function writable(rel: string): boolean {
  return (Object.values(KNOB_PATHS) as string[]).includes(rel) || rel === PROVIDER_CONFIG_PATH
    || new RegExp(`^sys/kernel/es2/vms/[1-9][0-9]*/(${ES2_VM_FILES.join('|')})$`).test(rel);
}

describe('/v1 over TCP without the right token', () => {
  let es2d: Es2dProcess;
  let tcp: string;

  before(async () => {
    es2d = await startEs2d({ args: ['--listen', '127.0.0.1:0', '--token-file', tokenFile()] });
    tcp = await tcpUrl(es2d);
  });

  after(async () => {
    await es2d?.stop();
  });

  const refusals: [string, Record<string, string>][] = [
    ['no token', {}],
    ['a wrong token', { authorization: `Bearer ${TOKEN.slice(0, -1)}x` }],
    ['the token with a suffix', { authorization: `Bearer ${TOKEN}x` }],
    ['the token as Basic', { authorization: `Basic ${Buffer.from(`es2:${TOKEN}`).toString('base64')}` }],
    ['the token without a scheme', { authorization: TOKEN }],
    ['an empty bearer', { authorization: 'Bearer ' }],
  ];
  const BODIES: Record<string, string> = {
    putHostKnobs: '{"halt_poll_ns":123}', putDomainPolicy: '{"enabled":true,"vcpus":[{"vcpu":0,"cpuset":"1"}]}',
    libvirtHook: '{"name":"test","op":"started","subop":"begin","extra":"-","xml":""}',
  };

  it('is 401 with WWW-Authenticate on every /v1 operation of the spec, for every kind of wrong credential', async () => {
    const ops = apiSpec().operations.filter((op) => op.path.startsWith('/v1'));
    assert.ok(ops.length >= 10, `${ops.length} /v1 operations in the spec`);
    for (const op of ops) {
      for (const ref of ['test', '6695eb01-f6a4-8304-79aa-97f2502e193f']) {
        const path = op.path.replace('{ref}', ref);
        for (const [what, headers] of refusals) {
          const body = BODIES[op.operationId];
          const r = await send(tcp, { method: op.method.toUpperCase(), path, headers: { ...headers, ...(body ? { 'content-type': 'application/json' } : {}) }, ...(body ? { body } : {}) });
          figures.requestsFuzzed++;
          assertWellFormed(`${op.method.toUpperCase()} ${path} with ${what}`, r, op.method.toUpperCase());
          assert.equal(r.status, 401, `${op.operationId} ${path} with ${what}: ${r.status} ${r.text}`);
          assert.equal(r.headers['www-authenticate'], 'Bearer realm="es2"');
        }
      }
    }
  });

  it('is 401 on /v1 paths and methods the spec lacks, so it does not tell which exist', async () => {
    for (const [method, path] of [['GET', '/v1'], ['GET', '/v1/'], ['GET', '/v1/nothing'], ['PATCH', '/v1/host'], ['DELETE', '/v1/domains'],
      ['GET', '/v1/domains/test/policy/../../host'], ['GET', '/v1%2Fhost'], ['OPTIONS', '/v1/host'], ['GET', '/V1/host']] as const) {
      const r = await send(tcp, { method, path });
      figures.requestsFuzzed++;
      assertWellFormed(`${method} ${path}`, r, method);
      // Under /v1 (Express matches case-insensitively, so /V1 is /v1 too; /v1%2Fhost is one segment, not under it).
      if (/^\/v1(\/|$)/i.test(path)) assert.equal(r.status, 401, `${method} ${path}: ${r.status} ${r.text}`);
      else assert.equal(r.status, 400, `${method} ${path}: ${r.status} ${r.text}`);
    }
  });

  const authCases = fc.record({
    op: fc.constantFrom(...apiSpec().operations.filter((o) => o.path.startsWith('/v1')).map((o) => o.operationId)),
    authorization: fc.oneof(
      fc.string({ maxLength: 60 }).filter((s) => /^[\x20-\x7e]*$/.test(s)),
      fc.tuple(fc.constantFrom('Bearer', 'bearer', 'BEARER', 'Bearer\t', 'Token', 'Bearer  '), fc.constantFrom(TOKEN, TOKEN.toUpperCase(), `${TOKEN} `, ` ${TOKEN}`, TOKEN.slice(1), `${TOKEN},${TOKEN}`, `${TOKEN} x`))
        .map(([scheme, token]) => `${scheme} ${token}`),
    ),
  });
  const checkAuth = async (c: { op: string; authorization: string }): Promise<void> => {
    const op = apiSpec().operations.find((o) => o.operationId === c.op)!;
    const path = op.path.replace('{ref}', 'test');
    const r = await send(tcp, { method: op.method.toUpperCase(), path, headers: { authorization: c.authorization } });
    assertWellFormed(`${op.method} ${path}`, r, op.method.toUpperCase());
    // The one accepted form: the Bearer scheme (any case) and exactly the token.
    const accepted = new RegExp(`^bearer\\s+${TOKEN}\\s*$`, 'i').test(c.authorization) && c.authorization.includes(TOKEN);
    if (accepted) assert.notEqual(r.status, 401, `${c.authorization} was refused`);
    else assert.equal(r.status, 401, `${JSON.stringify(c.authorization)} was let through: ${r.status}`);
  };
  replayRegressions('auth-header', checkAuth);
  it('lets no Authorization header through but the token itself (300 runs)', async () => {
    await fuzz('auth-header', authCases, checkAuth, { numRuns: 300, timeLimitMs: 60_000, tally: figures });
  });

  it('changed nothing while refusing', async () => {
    const r = await send(`unix:${es2d.socket}`, { method: 'GET', path: '/v1/domains/test' });
    assert.equal((r.json as { storedPolicy: unknown }).storedPolicy, null);
    const host = await send(`unix:${es2d.socket}`, { method: 'GET', path: '/v1/host' });
    assert.deepEqual((host.json as { knobs: unknown[] }).knobs, []);
    assert.equal(readFileSync(join(es2d.hostRoot, KNOB_PATHS.halt_poll_ns), 'utf8'), '200000\n');
  });
});

describe('the UNIX socket mode', () => {
  for (const [mode, umask] of [[0o600, 0o022], [0o660, 0o000], [0o640, 0o000]] as const) {
    it(`is ${mode.toString(8)} as configured, with umask ${umask.toString(8).padStart(3, '0')}, also after a stale socket`, async () => {
      const config = join(tempDir('es2rel-mode-'), 'es2d.yaml');
      writeFileSync(config, `socketMode: '${mode.toString(8).padStart(4, '0')}'\n`);
      const old = process.umask(umask);
      let proc: Es2dProcess | undefined;
      try {
        proc = await startEs2d({ args: ['--config', config] });
        assert.equal(statSync(proc.socket).mode & 0o777, mode);
        await proc.kill('SIGKILL');
        figures.faultsInjected++;
        proc = await startEs2d({ args: ['--config', config], socket: proc.socket, stateDir: proc.stateDir, hostRoot: proc.hostRoot });
        assert.equal(statSync(proc.socket).mode & 0o777, mode);
      } finally {
        process.umask(old);
        await proc?.stop();
      }
    });
  }
});

describe('knob writes stay on the fixed list', () => {
  it('refuses knob names outside the list, traversal included, and writes nothing', async () => {
    const { sandbox, root } = sandboxHost(STOCK_HOST, { halt_poll_ns: '7\n', passwd: 'root:x:0:0\n' });
    const es2d = await startEs2d({ hostRoot: root });
    try {
      const before = snapshot(sandbox);
      for (const name of ['../../../outside/halt_poll_ns', 'halt_poll_ns/../../../../outside/passwd', '../halt_poll_ns', 'halt_poll_ns_shrink',
        '__proto__', 'constructor', 'prototype', 'halt_poll_ns\u0000', 'HALT_POLL_NS', 'sys/module/kvm/parameters/halt_poll_ns', '/etc/passwd',
        ...SHELL_PAYLOADS]) {
        const r = await send(`unix:${es2d.socket}`, { method: 'PUT', path: '/v1/host/knobs', headers: { 'content-type': 'application/json' }, body: `{${JSON.stringify(name)}:1}` });
        figures.requestsFuzzed++;
        assertWellFormed(`PUT /v1/host/knobs ${JSON.stringify(name)}`, r, 'PUT');
        assert.equal(r.status, 400, `knob ${JSON.stringify(name)}: ${r.status} ${r.text}`);
      }
      assert.deepEqual(changedFiles(before, snapshot(sandbox)), []);
      assertNoMarker('knob names');
    } finally {
      await es2d.stop();
    }
  });

  it('never writes through a knob directory that is a symlink out of the host root (at start, or swapped in later)', async () => {
    const { root, outside } = sandboxHost(STOCK_HOST, { halt_poll_ns: '7\n' });
    const params = join(root, 'sys/module/kvm/parameters');
    const swap = (): void => {
      rmSync(params, { recursive: true });
      symlinkSync(outside, params);
    };

    // Swapped in while es2d runs: the write is refused.
    const proc = await startEs2d({ hostRoot: root });
    try {
      swap();
      figures.faultsInjected++;
      const r = await send(`unix:${proc.socket}`, { method: 'PUT', path: '/v1/host/knobs', headers: { 'content-type': 'application/json' }, body: '{"halt_poll_ns":123}' });
      assertWellFormed('PUT /v1/host/knobs through a symlink', r, 'PUT');
      assert.equal(r.status, 400, `the write through the symlink answered ${r.status} ${r.text}`);
      assert.match(r.text, /outside the host root/);
    } finally {
      await proc.stop();
    }
    // There at start: es2d refuses to start on that root.
    const again = await startEs2d({ hostRoot: root, waitReady: false });
    const [code] = (await once(again.child, 'exit')) as [number | null];
    assert.equal(code, 2, again.logs());
    assert.match(again.logs(), /es2d: VALIDATION_FAILED: .*outside the host root/);
    assert.equal(readFileSync(join(outside, 'halt_poll_ns'), 'utf8'), '7\n');
  });

  const segment = fc.oneof(fc.constantFrom('..', '.', '', 'sys', 'module', 'kvm', 'parameters', 'halt_poll_ns', 'kernel', 'es2', 'vms', '4242',
    'enabled', 'run', 'libvirt', 'qemu', 'x.pid', '...pid', 'etc', 'nova', 'provider_config', 'es2.yaml', 'proc', 'cpuinfo', 'link'), fc.string({ maxLength: 6 }));
  const relPath = fc.array(segment, { minLength: 1, maxLength: 7 }).map((s) => s.join('/'));
  let host: HostRoot;
  const listed = new Set<string>([...Object.values(KNOB_PATHS), ...Object.values(PROBE_PATHS), PROVIDER_CONFIG_PATH, 'etc/nova/provider_config']);
  const checkResolve = (rel: string): void => {
    let path: string;
    try {
      path = host.resolve(rel);
    } catch (err) {
      if (err instanceof Es2Error && err.code === 'VALIDATION_FAILED') return;
      throw err;
    }
    const inside = relative(host.root, path);
    assert.ok(!inside.startsWith('..'), `${JSON.stringify(rel)} resolved outside the root: ${path}`);
    assert.ok(listed.has(inside) || /^sys\/kernel\/es2\/vms\/[1-9][0-9]*(\/[a-z_]+)?$/.test(inside) || /^run\/libvirt\/qemu\/[^/]+\.pid$/.test(inside),
      `${JSON.stringify(rel)} resolved to ${inside}, which is not on the list`);
  };
  replayRegressions('host-resolve', checkResolve);
  it('HostRoot resolves nothing off the list or out of the root, symlinks included (500 runs)', async () => {
    const sandbox = tempDir('es2rel-resolve-');
    mkdirSync(join(sandbox, 'outside'));
    const root = hostTree(STOCK_HOST);
    mkdirSync(join(root, 'run/libvirt/qemu'), { recursive: true });
    symlinkSync(join(sandbox, 'outside'), join(root, 'run/libvirt/qemu/link'));
    symlinkSync(join(sandbox, 'outside'), join(root, 'link'));
    host = new HostRoot(root);
    await fuzz('host-resolve', relPath, checkResolve, { numRuns: 500, timeLimitMs: 30_000, tally: figures });
  });
});

describe('names, labels, hook arguments and config values are data, never shell or paths', () => {
  after(() => {
    for (const m of markerPaths) rmSync(m, { force: true });
  });

  it('no source of es2d, es2ctl or the hook can run a program through a shell', () => {
    const files: string[] = [];
    const walk = (d: string): void => {
      for (const name of readdirSync(d)) {
        const p = join(d, name);
        if (statSync(p).isDirectory()) walk(p);
        else if (p.endsWith('.ts')) files.push(p);
      }
    };
    walk(join(repoRoot, 'src'));
    files.push(HOOK_SCRIPT);
    const offenders: string[] = [];
    for (const f of files) {
      const text = readFileSync(f, 'utf8');
      // Nothing in es2 starts programs: any child_process use is new and must be looked at (and
      // never with a shell); eval-like constructs would run input as code.
      for (const [what, re] of [['child_process', /child_process/], ['shell: true', /shell\s*:\s*true/], ['eval', /\beval\s*\(/],
        ['new Function', /new\s+Function\s*\(/], ['vm module', /from\s+['"](node:)?vm['"]/]] as const) {
        if (re.test(text)) offenders.push(`${relative(repoRoot, f)}: ${what}`);
      }
    }
    // The hook is a shell script: it runs curl by design, and must never run its input as code.
    const hook = readFileSync(HOOK_SCRIPT, 'utf8');
    for (const [what, re] of [['eval', /\beval\b/], ['source', /\bsource\b/], ['. FILE', /^\s*\.\s/m], ['backticks', /`/]] as const) {
      if (re.test(hook.replace(/^\s*#.*$/gm, ''))) offenders.push(`deploy/libvirt/hooks/qemu.d/50-es2: ${what}`);
    }
    assert.ok(files.length > 50, `${files.length} files read`);
    assert.deepEqual(offenders, []);
  });

  it('domain names full of metacharacters on an ES2-kernel host: applied or refused, nothing outside the list written', async () => {
    const names = ['..', '...', 'a..b', 'vm.pid', ...SHELL_PAYLOADS.filter((p) => !p.includes('/'))];
    const { uri, domains } = testDriverNode(names);
    const files: Record<string, string> = { ...STOCK_HOST, 'sys/kernel/es2/version': '1\n' };
    domains.forEach((d, i) => {
      const pid = 4000 + i;
      // libvirt's pid file, when the name can name one; the ES2 kernel's per-VM files.
      if (!d.name.includes('/')) files[`run/libvirt/qemu/${d.name}.pid`] = `${pid}\n`;
      for (const f of ES2_VM_FILES) files[`sys/kernel/es2/vms/${pid}/${f}`] = f === 'redirect' ? 'off\n' : f === 'redirect_vcpus' ? '\n' : '0\n';
    });
    const { sandbox, root } = sandboxHost(files, { enabled: '0\n' });
    const es2d = await startEs2d({ uri, hostRoot: root });
    const statuses: Record<string, number> = {};
    try {
      const before = snapshot(sandbox);
      // No cpuset: a test driver read from a file reports no NUMA cells, so es2 sees no host CPUs there.
      const policy = { enabled: true, vcpus: [{ vcpu: 0, label: 'io' }], hybridIo: { kickRateThreshold: 1000, idleTimeoutUs: 5 }, interruptRedirection: { mode: 'labeled', targetLabel: 'io' } };
      for (const d of domains) {
        for (const ref of [d.uuid, encodeURIComponent(d.name)]) {
          const r = await send(`unix:${es2d.socket}`, { method: 'PUT', path: `/v1/domains/${ref}/policy`, headers: { 'content-type': 'application/json' }, body: JSON.stringify(policy) });
          figures.requestsFuzzed++;
          assertWellFormed(`PUT policy of ${JSON.stringify(d.name)}`, r, 'PUT');
          statuses[`${d.name} by ${ref === d.uuid ? 'uuid' : 'name'}`] = r.status;
        }
        const bad = await send(`unix:${es2d.socket}`, { method: 'PUT', path: `/v1/domains/${d.uuid}/policy`, headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ enabled: true, vcpus: [{ vcpu: 0, label: d.name }] }) });
        assert.equal(bad.status, 400, `a label ${JSON.stringify(d.name)} was accepted`);
      }
      figures.note('metacharacterDomainStatuses', statuses);
      const changed = changedFiles(before, snapshot(sandbox)).map((p) => relative('root', p));
      assert.deepEqual(changed.filter((p) => !writable(p)), [], `files changed off the list: ${changed.join(', ')}`);
      assert.ok(changed.some((p) => p.endsWith('/enabled')), `the ES2 kernel files were written for some names: ${changed.join(', ')}`);
      assertAlive(es2d, 'metacharacter domain names');
      assertNoMarker('metacharacter domain names');
    } finally {
      await es2d.stop();
    }
  });

  it('hook arguments and stdin full of metacharacters reach es2d as data', async () => {
    const es2d = await startEs2d();
    try {
      const xml = readFileSync(fixture('domains', 'nova-unpinned.xml'), 'utf8').replace('instance-00000031', SHELL_PAYLOADS[0]!);
      for (const p of SHELL_PAYLOADS) {
        // migrate: forwarded to es2d in every mode, and answered with the XML to print.
        const r = await runHook([p, 'migrate', p, p], xml, { ES2_SOCKET: es2d.socket });
        figures.requestsFuzzed++;
        assert.equal(r.code, 0, r.stderr);
      }
      assertAlive(es2d, 'metacharacter hook arguments');
    } finally {
      await es2d.stop();
    }
    assertNoMarker('metacharacter hook arguments');
  });

  it('config values full of metacharacters are refused or used as data', async () => {
    const values = (p: string): Record<string, string> => ({
      cpuPool: p, socketGroup: p, uri: `test:///default?${p}`, statsReplay: p, tokenFile: p, logLevel: p,
      orchestrator: `{url: 'http://127.0.0.1:9/${encodeURIComponent(p)}'}`,
    });
    let runs = 0;
    for (const p of SHELL_PAYLOADS.slice(0, 3)) {
      for (const [key, value] of Object.entries(values(p))) {
        const config = join(tempDir('es2rel-cfg-'), 'es2d.yaml');
        writeFileSync(config, key === 'orchestrator' ? `orchestrator: ${value}\n` : `${key}: ${JSON.stringify(value)}\n`);
        const proc = await startEs2d({ args: ['--config', config], waitReady: false });
        // It exits (refused), or serves: then it has used the value, and stops.
        const deadline = Date.now() + 10_000;
        while (proc.child.exitCode === null && Date.now() < deadline) {
          if (await proc.client.send('GET', '/healthz').then(() => true, () => false)) break;
          await new Promise((r) => setTimeout(r, 50));
        }
        const code = proc.child.exitCode;
        await proc.stop();
        runs++;
        figures.requestsFuzzed++;
        assert.ok(code === null || code === 1 || code === 2, `${key}=${value}: es2d exited ${code}\n${proc.logs().slice(-1000)}`);
        assert.doesNotMatch(proc.logs(), /^\s+at /m);
      }
    }
    assert.ok(runs > 0);
    assertNoMarker('metacharacter config values');
  });
});
