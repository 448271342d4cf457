// The hook script itself (deploy/libvirt/hooks/qemu.d/50-es2), run as libvirt runs it: arguments
// `<name> <op> <subop> <extra>`, the domain XML on stdin. With es2d up it forwards and prints the
// rewritten XML for migrate; with es2d down or stuck it lets the start go on.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';

import { apply, readRecordedPolicy } from '../../src/xml/index.js';
import { startEs2d, type Es2dProcess } from '../helpers/es2d.js';
import { runHook } from '../helpers/hook.js';
import { fixture } from '../helpers/paths.js';
import { tempDir } from '../helpers/temp.js';
import { until } from '../helpers/wait.js';

const domain = readFileSync(fixture('domains', 'nova-unpinned.xml'), 'utf8');

/** The fixture with a <description> (XML text, already escaped) after its name. */
const withDescription = (text: string): string => domain.replace('</name>', `</name>\n  <description>${text}</description>`);

describe('the libvirt hook script', () => {
  let es2d: Es2dProcess;
  before(async () => {
    es2d = await startEs2d();
  });
  after(async () => {
    await es2d?.stop();
  });

  it('forwards release (and prepare with ES2_HOOK_FAILURE=fail) with empty output and exit 0; the rest stays local', async () => {
    const uuid = /<uuid>([^<]+)<\/uuid>/.exec(domain)![1]!;
    for (const [op, subop] of [['prepare', 'begin'], ['start', 'begin'], ['started', 'begin'], ['stopped', 'end'], ['release', 'end'],
      ['reconnect', 'begin'], ['attach', 'begin']]) {
      const r = await runHook(['instance-00000031', op!, subop!, '-'], domain, { ES2_SOCKET: es2d.socket });
      assert.deepEqual([r.code, r.stdout, r.stderr], [0, '', ''], op);
    }
    // Fail-closed: es2d must answer prepare before the start goes on.
    const closed = await runHook(['instance-00000031', 'prepare', 'begin', '-'], domain, { ES2_SOCKET: es2d.socket, ES2_HOOK_FAILURE: 'fail' });
    assert.deepEqual([closed.code, closed.stdout, closed.stderr], [0, '', '']);
    const hookLines = await until('es2d to log the hook calls', () => {
      const lines = es2d.logs().split('\n').filter((l) => l.includes('"message":"hook"'));
      return lines.length >= 2 ? lines.map((l) => JSON.parse(l) as { op: string; domain: string; uuid: string }) : undefined;
    });
    assert.deepEqual(hookLines.map((l) => l.op), ['release', 'prepare']);
    for (const l of hookLines) {
      // The name and UUID come from the XML: the shell hook sends no JSON.
      assert.equal(l.domain, 'instance-00000031');
      assert.equal(l.uuid, uuid);
    }
  });

  it('passes arguments and XML full of shell metacharacters as data', async () => {
    const dir = tempDir();
    const canary = join(dir, 'pwned');
    const payloads = [`$(touch ${canary})`, `\`touch ${canary}\``, `; touch ${canary}`, `' "&| touch ${canary}`, '-', ''];
    const xml = withDescription(`$(touch ${canary}) \`touch ${canary}\` ' " &amp; ;`);
    for (const p of payloads) {
      const r = await runHook([p, 'migrate', p, p], xml, { ES2_SOCKET: es2d.socket, ES2_HOOK_FAILURE: 'fail' });
      assert.equal(r.code, 0, `${JSON.stringify(p)}: ${r.stderr}`);
      assert.equal(r.stdout, '', 'no es2 record: unchanged');
    }
    assert.equal(existsSync(canary), false, 'nothing ran');
  });

  it('says which curl it could not find, and refuses only when told to', async () => {
    const env = { ES2_SOCKET: es2d.socket, ES2_CURL: '/nonexistent/curl' };
    const open = await runHook(['vm', 'release', 'end', '-'], domain, env);
    assert.deepEqual([open.code, open.stdout], [0, '']);
    assert.match(open.stderr, /^es2 hook: INTERNAL: \/nonexistent\/curl not found/);
    assert.equal((await runHook(['vm', 'prepare', 'begin', '-'], domain, { ...env, ES2_HOOK_FAILURE: 'fail' })).code, 1);
  });

  it('prints the rewritten XML for a migrated domain whose es2 pins cannot exist here', async () => {
    // es2 on a 64-CPU source host pinned vCPU 0 to CPU 40; this host (the test driver) has 16.
    const source = apply(domain, { enabled: true, vcpus: [{ vcpu: 0, cpuset: '40', label: 'io' }] },
      { cpus: [...Array(64).keys()], libvirtVersion: 9_000_000, es2Kernel: false, postedInterrupts: true, haltPollKnob: true }).xml;
    const r = await runHook(['instance-00000031', 'migrate', 'begin', '-'], source, { ES2_SOCKET: es2d.socket });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^<domain/);
    assert.doesNotMatch(r.stdout, /cpuset="40"/);
    assert.deepEqual(readRecordedPolicy(r.stdout), { enabled: true, vcpus: [{ vcpu: 0, label: 'io' }] });
  });

  it('prints nothing for migrate when the XML needs no change', async () => {
    for (const xml of [domain, apply(domain, { enabled: true, vcpus: [{ vcpu: 1, cpuset: '3' }] },
      { cpus: [...Array(16).keys()], libvirtVersion: 9_000_000, es2Kernel: false, postedInterrupts: true, haltPollKnob: true }).xml]) {
      const r = await runHook(['instance-00000031', 'migrate', 'begin', '-'], xml, { ES2_SOCKET: es2d.socket });
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, '');
    }
  });

  it('exits 0 at once with no output when es2d is down, and refuses with ES2_HOOK_FAILURE=fail', async () => {
    const missing = join(tempDir(), 'nobody.sock');
    const open = await runHook(['vm', 'release', 'end', '-'], domain, { ES2_SOCKET: missing });
    assert.equal(open.code, 0);
    assert.equal(open.stdout, '');
    const closed = await runHook(['vm', 'prepare', 'begin', '-'], domain, { ES2_SOCKET: missing, ES2_HOOK_FAILURE: 'fail' });
    assert.equal(closed.code, 1);
    assert.match(closed.stderr, /es2 hook: INTERNAL: es2d is not reachable/);
  });

  it('gives up on a stuck es2d after ES2_HOOK_TIMEOUT, letting the start go on', async () => {
    const sock = join(tempDir(), 'stuck.sock');
    // Accepts the request and never answers.
    const stuck: Server = createServer(() => undefined);
    await new Promise<void>((r) => stuck.listen(sock, r));
    try {
      const r = await runHook(['vm', 'release', 'end', '-'], domain, { ES2_SOCKET: sock, ES2_HOOK_TIMEOUT: '1' });
      assert.equal(r.code, 0);
      assert.equal(r.stdout, '');
      assert.match(r.stderr, /did not answer within 1 s/);
      // Bounded by the timeout, not by the stuck server (which would wait forever); generous margin
      // for a loaded machine.
      assert.ok(r.ms < 10_000, `the hook took ${r.ms} ms`);
    } finally {
      stuck.closeAllConnections();
      stuck.close();
    }
  });

  it('does not wait again for an es2d that just timed out, until es2d serves its socket anew', async () => {
    const dir = tempDir();
    const sock = join(dir, 'es2d.sock');
    const stuck: Server = createServer(() => undefined);
    await new Promise<void>((r) => stuck.listen(sock, r));
    const env = { ES2_SOCKET: sock, ES2_HOOK_TIMEOUT: '1' };
    try {
      const first = await runHook(['vm', 'release', 'end', '-'], domain, env);
      assert.match(first.stderr, /did not answer within 1 s/);
      // The next forwarded call gives up at once instead of waiting again.
      const second = await runHook(['vm', 'migrate', 'begin', '-'], domain, env);
      assert.equal(second.code, 0);
      assert.match(second.stderr, /did not answer a recent hook call; not waiting for it/);
    } finally {
      stuck.closeAllConnections();
      await new Promise<void>((r) => stuck.close(() => r()));
    }
    const back = await startEs2d({ socket: sock });
    try {
      const third = await runHook(['vm', 'release', 'end', '-'], domain, env);
      assert.equal(third.code, 0);
      assert.equal(third.stderr, '');
    } finally {
      await back.stop();
    }
  });

  it('passes an es2d error code through in fail-closed mode', async () => {
    const r = await runHook(['vm', 'migrate', 'begin', '-'], '', { ES2_SOCKET: es2d.socket, ES2_HOOK_FAILURE: 'fail' });
    assert.equal(r.code, 0, 'an empty migrate XML is unchanged, not an error');
    // More XML than the operation takes (1 MiB): es2d refuses it, and the hook passes the code on.
    const huge = withDescription('x'.repeat(1024 * 1024));
    const bad = await runHook(['vm', 'prepare', 'begin', '-'], huge, { ES2_SOCKET: es2d.socket, ES2_HOOK_FAILURE: 'fail' });
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /^es2 hook: es2d answered 400: .*VALIDATION_FAILED/);
    const open = await runHook(['vm', 'release', 'end', '-'], huge, { ES2_SOCKET: es2d.socket });
    assert.deepEqual([open.code, open.stdout], [0, ''], 'fail-open: the start goes on');
  });
});
