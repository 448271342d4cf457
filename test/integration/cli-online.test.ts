// The online commands of es2ctl, run as the real binary against a real es2d on test:///default
// (domain `test`: 2 vCPUs, one virtio disk vda; host CPUs 0-15; a stock host root whose
// kvm.halt_poll_ns starts at 200000).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';

import type { Client } from '../../src/cli/client.js';
import { startEs2d, type Es2dProcess } from '../helpers/es2d.js';
import { bin } from '../helpers/paths.js';
import { tempDir } from '../helpers/temp.js';

interface Run { status: number | null; stdout: string; stderr: string }

/** Runs es2ctl asynchronously (es2d answers from its own process either way; this keeps timers honest). */
function es2ctl(args: readonly string[], input = ''): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [bin.es2ctl, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.on('error', reject);
    child.on('close', (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr });
    });
    child.stdin.end(input);
  });
}

const HALT_POLL = 'sys/module/kvm/parameters/halt_poll_ns';
const TEST_UUID = '6695eb01-f6a4-8304-79aa-97f2502e193f';

function knobFile(es2d: Es2dProcess): number {
  return Number(readFileSync(join(es2d.hostRoot, HALT_POLL), 'utf8').trim());
}

async function apiBody(client: Client, method: string, path: string): Promise<unknown> {
  return (await client.send(method, path)).body;
}

/**
 * `-o json` prints exactly the API body. Bodies that move with time (drift checks, the rolling
 * savings window) are read just before and just after the CLI; the CLI's must equal one of them.
 */
async function assertJsonIsApiBody(es2d: Es2dProcess, args: string[], path: string): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    const first = await apiBody(es2d.client, 'GET', path);
    const run = await es2ctl(['--endpoint', `unix:${es2d.socket}`, '-o', 'json', ...args]);
    const last = await apiBody(es2d.client, 'GET', path);
    assert.equal(run.status, 0, run.stderr);
    assert.equal(run.stdout, `${JSON.stringify(JSON.parse(run.stdout), null, 2)}\n`, 'pretty-printed with two spaces');
    const printed: unknown = JSON.parse(run.stdout);
    const same = (body: unknown): boolean => JSON.stringify(body) === JSON.stringify(printed);
    if (same(first) || same(last)) return;
    if (attempt === 5) assert.deepEqual(printed, last);
  }
}

describe('es2ctl --help', () => {
  const commands = [
    [], ['host'], ['host', 'knobs'], ['host', 'knobs', 'set'], ['host', 'knobs', 'restore'], ['domains'], ['show'],
    ['enable'], ['plan'], ['disable'], ['savings'], ['baseline'],
  ];
  for (const command of commands) {
    it(`es2ctl ${[...command, '--help'].join(' ')} exits 0 with an example`, async () => {
      const run = await es2ctl([...command, '--help']);
      assert.equal(run.status, 0, run.stderr);
      assert.match(run.stdout, /^Usage: es2ctl/);
      assert.match(run.stdout, /\nExample:\n {2}\$ es2ctl /);
    });
  }
});

describe('es2ctl online commands against es2d on test:///default', () => {
  let es2d: Es2dProcess;
  let ctl: (args: readonly string[], input?: string) => Promise<Run>;

  before(async () => {
    es2d = await startEs2d();
    ctl = (args, input) => es2ctl(['--endpoint', `unix:${es2d.socket}`, ...args], input);
  });
  after(async () => {
    await es2d.stop();
  });

  it('host summarises the capabilities and the knob journal; -o json is the API body', async () => {
    const run = await ctl(['host']);
    assert.equal(run.status, 0, run.stderr);
    assert.match(run.stdout, /^backend: +stock$/m);
    assert.match(run.stdout, /^CPUs: +0-15$/m);
    assert.match(run.stdout, /^posted interrupts: +yes \(kvm_intel enable_apicv=Y/m);
    assert.match(run.stdout, /^ES2 kernel: +absent/m);
    assert.match(run.stdout, /^libvirt version: +9\.\d+\.\d+$/m);
    assert.match(run.stdout, /^vhost-net poll-us: +not settable \(not settable through libvirt 9\.x\)$/m);
    assert.match(run.stdout, /^halt_poll_ns +sys\/module\/kvm\/parameters\/halt_poll_ns +yes +yes +200000$/m);
    assert.match(run.stdout, /knob journal: empty/);
    await assertJsonIsApiBody(es2d, ['host'], '/v1/host');
  });

  it('domains prints an aligned table; -o json is the API body', async () => {
    const run = await ctl(['domains']);
    assert.equal(run.status, 0, run.stderr);
    const [header, row] = run.stdout.split('\n');
    assert.match(header!, /^UUID +NAME +STATE +ENABLED +SOURCE +PENDING +DRIFT$/);
    assert.match(row!, new RegExp(`^${TEST_UUID} +test +running +no +- +no +no$`));
    assert.equal(header!.indexOf('NAME'), row!.indexOf('test'), 'columns line up');
    await assertJsonIsApiBody(es2d, ['domains'], '/v1/domains');
  });

  it('plan shows the operations and changes nothing', async () => {
    const run = await ctl(['plan', 'test', '--pin', '0=2,1=3-4', '--iothreads', '1', '--poll-max-ns', '32768', '--halt-poll-ns', '300000', '--kick-rate-threshold', '20000']);
    assert.equal(run.status, 0, run.stderr);
    assert.match(run.stdout, /^status: +planned: dry run: nothing was changed$/m);
    assert.match(run.stdout, /live operations, in order:\n {2}1\. iothread-add id=1\n {2}2\. iothread-poll id=1 pollMaxNs=32768\n {2}3\. vcpu-pin vcpu=0 cpus=2\n {2}4\. vcpu-pin vcpu=1 cpus=3-4\n/);
    assert.match(run.stdout, /add \/domain\/devices\/disk\[target\/@dev='vda'\]\/driver\/@iothread = 1/);
    assert.match(run.stdout, /host knobs:\n {2}halt_poll_ns = 300000\n/);
    assert.match(run.stdout, /not applicable on this host:\n {2}\/hybridIo\/kickRateThreshold: not applicable on this host: needs the ES2 kernel interface\n/);
    const domain = await apiBody(es2d.client, 'GET', '/v1/domains/test') as { storedPolicy: unknown; recorded: unknown; applied: unknown };
    assert.equal(domain.storedPolicy, null);
    assert.equal(domain.recorded, null);
    assert.equal(domain.applied, null);
    assert.equal(knobFile(es2d), 200000);
  });

  it('plan -o json prints the dry-run PolicyResult', async () => {
    const run = await ctl(['-o', 'json', 'plan', 'test', '--pin', '1=5']);
    assert.equal(run.status, 0, run.stderr);
    const body = JSON.parse(run.stdout) as { status: string; plan: { live: { op: string; vcpu?: number; cpus?: number[] }[] } };
    assert.equal(body.status, 'planned');
    assert.deepEqual(body.plan.live.find((op) => op.op === 'vcpu-pin'), { op: 'vcpu-pin', vcpu: 1, cpus: [5] });
  });

  it('enable with every policy flag stores and applies the policy; show reflects it', async () => {
    const run = await ctl(['enable', 'test', '--pin', '0=1-4,^2', '--pin', '1=5', '--label', '0=io,1=compute',
      '--iothreads', '1', '--iothread-cpuset', '6', '--poll-max-ns', '32768', '--poll-grow', '2', '--poll-shrink', '2',
      '--kick-rate-threshold', '20000', '--idle-timeout-us', '50', '--redirect-label', 'io',
      '--posted-interrupts', 'required', '--halt-poll-ns', '300000']);
    assert.equal(run.status, 0, run.stderr);
    assert.match(run.stdout, /^status: +applied: applied live and to the persistent definition$/m);
    assert.match(run.stdout, /vcpu-pin vcpu=0 cpus=1,3-4/);
    assert.match(run.stdout, /\/interruptRedirection: not applicable on this host/);
    const expected = {
      enabled: true,
      vcpus: [{ vcpu: 0, cpuset: '1-4,^2', label: 'io' }, { vcpu: 1, cpuset: '5', label: 'compute' }],
      hybridIo: { iothreads: 1, iothreadCpuset: '6', pollMaxNs: 32768, pollGrow: 2, pollShrink: 2, kickRateThreshold: 20000, idleTimeoutUs: 50 },
      interruptRedirection: { mode: 'labeled', targetLabel: 'io' },
      postedInterrupts: 'required',
      haltPollNs: 300000,
    };
    const show = await ctl(['-o', 'json', 'show', 'test']);
    assert.equal(show.status, 0, show.stderr);
    const domain = JSON.parse(show.stdout) as { storedPolicy: unknown; recorded: unknown; applied: { result: string }; effective: { sources: Record<string, unknown> } };
    assert.deepEqual(domain.storedPolicy, expected);
    assert.deepEqual(domain.recorded, expected, 'the es2 metadata element in the domain records it');
    assert.equal(domain.applied.result, 'ok');
    assert.equal(domain.effective.sources.enabled, 'api');
    assert.equal(knobFile(es2d), 300000, 'halt polling through the host knob');
  });

  it('show prints the domain, its policy with sources and the ETag; -o json is the API body', async () => {
    const run = await ctl(['show', TEST_UUID]);
    assert.equal(run.status, 0, run.stderr);
    const { etag } = await apiBody(es2d.client, 'GET', '/v1/domains/test') as { etag: string };
    assert.match(run.stdout, /^name: +test$/m);
    assert.match(run.stdout, /^state: +running \(active, persistent\)$/m);
    assert.match(run.stdout, new RegExp(`^etag: +${etag}$`, 'm'));
    assert.match(run.stdout, /^recorded in domain: +matches the effective policy/m);
    assert.match(run.stdout, /^ {2}vcpu 0 +cpuset 1-4,\^2, label io +api$/m);
    assert.match(run.stdout, /^ {2}haltPollNs +300000 +api$/m);
    assert.match(run.stdout, /^applied: +ok at /m);
    await assertJsonIsApiBody(es2d, ['show', 'test'], '/v1/domains/test');
  });

  it('enable --if-match: a stale ETag fails with PRECONDITION_FAILED, the current one passes', async () => {
    const stale = await ctl(['enable', 'test', '--pin', '0=2', '--if-match', 'not-the-etag']);
    assert.equal(stale.status, 1);
    assert.match(stale.stderr, /^es2ctl: PRECONDITION_FAILED: /);
    const { etag } = await apiBody(es2d.client, 'GET', '/v1/domains/test') as { etag: string };
    const fresh = await ctl(['enable', 'test', '--policy', '-', '--if-match', etag], 'vcpus:\n  - { vcpu: 0, cpuset: "2" }\nhaltPollNs: 300000\n');
    assert.equal(fresh.status, 0, fresh.stderr);
    const domain = await apiBody(es2d.client, 'GET', '/v1/domains/test') as { storedPolicy: unknown; etag: string };
    assert.deepEqual(domain.storedPolicy, { enabled: true, vcpus: [{ vcpu: 0, cpuset: '2' }], haltPollNs: 300000 });
    assert.notEqual(domain.etag, etag);
  });

  it('enable --policy FILE reads JSON', async () => {
    const file = join(tempDir(), 'policy.json');
    writeFileSync(file, JSON.stringify({ vcpus: [{ vcpu: 1, cpuset: '7', label: 'io' }], haltPollNs: 300000 }));
    const run = await ctl(['enable', 'test', '--policy', file]);
    assert.equal(run.status, 0, run.stderr);
    const domain = await apiBody(es2d.client, 'GET', '/v1/domains/test') as { storedPolicy: unknown };
    assert.deepEqual(domain.storedPolicy, { enabled: true, vcpus: [{ vcpu: 1, cpuset: '7', label: 'io' }], haltPollNs: 300000 });
  });

  const failures: { name: string; args: string[]; code: string; detail?: string }[] = [
    { name: 'an unknown domain', args: ['show', 'no-such-domain'], code: 'DOMAIN_NOT_FOUND' },
    { name: 'enable on an unknown domain name', args: ['enable', 'no-such-domain'], code: 'DOMAIN_NOT_FOUND' },
    { name: 'a CPU the host lacks', args: ['enable', 'test', '--pin', '0=99'], code: 'VALIDATION_FAILED', detail: '/vcpus/0/cpuset' },
    { name: 'a vCPU the domain lacks', args: ['plan', 'test', '--pin', '2=1'], code: 'VALIDATION_FAILED' },
    { name: 'a policy file enable would store disabled', args: ['enable', 'test', '--policy', '-'], code: 'VALIDATION_FAILED', detail: '/enabled' },
    { name: 'a baseline of an unknown domain', args: ['baseline', 'no-such-domain'], code: 'DOMAIN_NOT_FOUND' },
    { name: 'a knob value out of range', args: ['host', 'knobs', 'set', 'halt_poll_ns=99999999999'], code: 'VALIDATION_FAILED' },
  ];
  for (const { name, args, code, detail } of failures) {
    it(`exit 1 and ${code} for ${name}`, async () => {
      const run = await ctl(args, 'enabled: false\n');
      assert.equal(run.status, 1, run.stdout + run.stderr);
      assert.match(run.stderr, new RegExp(`^es2ctl: ${code}: `));
      if (detail !== undefined) assert.match(run.stderr, new RegExp(`\n {2}${detail}: `));
      assert.equal(run.stdout, '');
    });
  }

  it('policy values are validated before any request: VALIDATION_FAILED with the JSON paths, es2d not asked', async () => {
    const run = await es2ctl(['--endpoint', 'unix:/nonexistent/es2d.sock', 'enable', 'test', '--iothreads', '0', '--label', '0=IO', '--redirect', 'labeled']);
    assert.equal(run.status, 1);
    assert.match(run.stderr, /^es2ctl: VALIDATION_FAILED: /);
    assert.match(run.stderr, /\n {2}\/hybridIo\/iothreads: /);
    assert.match(run.stderr, /\n {2}\/vcpus\/0\/label: /);
    assert.match(run.stderr, /\n {2}\/interruptRedirection\/targetLabel: /);
  });

  const usage: { name: string; args: string[] }[] = [
    { name: 'an unknown flag', args: ['enable', 'test', '--pinning', '0=2'] },
    { name: '--pin without VCPU=', args: ['enable', 'test', '--pin', '0-2'] },
    { name: '--pin naming a vCPU twice', args: ['plan', 'test', '--pin', '0=1', '--pin', '0=2'] },
    { name: '--label without VCPU=', args: ['enable', 'test', '--label', 'io'] },
    { name: '--policy together with --pin', args: ['enable', 'test', '--policy', '-', '--pin', '0=2'] },
    { name: 'a number flag that is not a number', args: ['plan', 'test', '--poll-max-ns', 'lots'] },
    { name: 'an unknown redirection mode', args: ['plan', 'test', '--redirect', 'sometimes'] },
    { name: '--redirect-label with --redirect running', args: ['plan', 'test', '--redirect', 'running', '--redirect-label', 'io'] },
    { name: 'a missing REF', args: ['show'] },
    { name: 'an extra argument', args: ['show', 'test', 'more'] },
    { name: 'an unknown output format', args: ['-o', 'yaml', 'domains'] },
    { name: 'an unknown knob', args: ['host', 'knobs', 'set', 'halt_poll_ns_shrink=1'] },
    { name: 'a knob without a value', args: ['host', 'knobs', 'set', 'halt_poll_ns'] },
    { name: 'host knobs without set or restore', args: ['host', 'knobs'] },
    { name: 'a watch interval that is not a number', args: ['savings', '--watch', '--interval', 'soon'] },
  ];
  for (const { name, args } of usage) {
    it(`exit 2 for ${name}`, async () => {
      const run = await ctl(args);
      assert.equal(run.status, 2, run.stdout + run.stderr);
      assert.match(run.stderr, /es2ctl|error:|Usage:/);
      assert.equal(run.stdout, '');
    });
  }

  it('host knobs set writes the knob under the host root; restore writes the original back', async () => {
    const set = await ctl(['host', 'knobs', 'set', 'halt_poll_ns=400000']);
    assert.equal(set.status, 0, set.stderr);
    assert.equal(knobFile(es2d), 400000);
    assert.match(set.stdout, /^KNOB +ORIGINAL +CURRENT +HOLDERS$/m);
    assert.match(set.stdout, new RegExp(`^halt_poll_ns +200000 +400000 +${TEST_UUID}=300000, operator=400000$|^halt_poll_ns +200000 +400000 +operator=400000, ${TEST_UUID}=300000$`, 'm'));
    const restore = await ctl(['-o', 'json', 'host', 'knobs', 'restore']);
    assert.equal(restore.status, 0, restore.stderr);
    assert.deepEqual(JSON.parse(restore.stdout), { knobs: [], restored: [{ knob: 'halt_poll_ns', from: 400000, to: 200000 }] });
    assert.equal(knobFile(es2d), 200000);
  });

  it('disable --dry-run plans the removal and changes nothing; disable removes the policy', async () => {
    const stored = await apiBody(es2d.client, 'GET', '/v1/domains/test') as { storedPolicy: unknown; etag: string };
    assert.notEqual(stored.storedPolicy, null);
    const dry = await ctl(['disable', 'test', '--dry-run']);
    assert.equal(dry.status, 0, dry.stderr);
    assert.match(dry.stdout, /^status: +planned: /m);
    assert.match(dry.stdout, /metadata-remove key=es2/);
    const still = await apiBody(es2d.client, 'GET', '/v1/domains/test') as { storedPolicy: unknown; recorded: unknown };
    assert.deepEqual(still.storedPolicy, stored.storedPolicy);
    assert.notEqual(still.recorded, null);

    const stale = await ctl(['disable', 'test', '--if-match', '"stale"']);
    assert.equal(stale.status, 1);
    assert.match(stale.stderr, /^es2ctl: PRECONDITION_FAILED: /);

    const run = await ctl(['disable', 'test', '--if-match', stored.etag]);
    assert.equal(run.status, 0, run.stderr);
    assert.match(run.stdout, /^status: +removed: /m);
    assert.match(run.stdout, /^etag: +none$/m);
    const gone = await apiBody(es2d.client, 'GET', '/v1/domains/test') as { storedPolicy: unknown; recorded: unknown };
    assert.equal(gone.storedPolicy, null);
    assert.equal(gone.recorded, null, 'the es2 metadata element is gone from the domain');
  });

  it('enable on a UUID libvirt does not know stores it as pending (exit 0); domains lists it', async () => {
    const uuid = '0b0e5c7e-0000-4000-8000-000000000001';
    const run = await ctl(['enable', uuid, '--pin', '0=2']);
    assert.equal(run.status, 0, run.stderr);
    assert.match(run.stdout, /^status: +pending: es2d keeps the policy and applies it when libvirt knows the domain$/m);
    const list = await ctl(['domains']);
    assert.match(list.stdout, new RegExp(`^${uuid} +- +absent +yes +api +yes +no$`, 'm'));
    const show = await ctl(['show', uuid]);
    assert.equal(show.status, 0, show.stderr);
    assert.match(show.stdout, /^state: +absent /m);
  });

  it('savings says the test driver has no KVM exit counters; -o json is the API body', async () => {
    // es2d samples every second here; wait until it has a window for the domain.
    const deadline = Date.now() + 15_000;
    while (!JSON.stringify(await apiBody(es2d.client, 'GET', '/v1/savings')).includes('"no-kvm-stats"')) {
      assert.ok(Date.now() < deadline, 'es2d reported no window for domain test within 15 s');
      await new Promise((r) => setTimeout(r, 200));
    }
    const run = await ctl(['savings']);
    assert.equal(run.status, 0, run.stderr);
    assert.match(run.stdout, /^NAME +EXITS\/S +EXITS\/IO +BASE EXITS\/IO +REDUCTION +AVOIDED\/S +EHT BEFORE +EHT AFTER +CONFIDENCE$/m);
    assert.match(run.stdout, /^test +- +- +- +- +- +- +- +no-kvm-stats$/m);
    assert.match(run.stdout, /^no-kvm-stats: libvirt gives no KVM exit counters/m);
    const one = await ctl(['savings', 'test']);
    assert.equal(one.status, 0, one.stderr);
    assert.match(one.stdout, /^test +.*no-kvm-stats$/m);
    await assertJsonIsApiBody(es2d, ['savings'], '/v1/savings');
    await assertJsonIsApiBody(es2d, ['savings', 'test'], '/v1/domains/test/savings');
  });

  it('baseline takes a baseline now and prints it', async () => {
    const run = await ctl(['baseline', 'test']);
    assert.equal(run.status, 0, run.stderr);
    assert.match(run.stdout, new RegExp(`^domain: +${TEST_UUID}$`, 'm'));
    assert.match(run.stdout, /^KVM exit stats: +no: /m);
    const json = await ctl(['-o', 'json', 'baseline', 'test']);
    assert.equal(json.status, 0, json.stderr);
    const record = JSON.parse(json.stdout) as { uuid: string; baseline: { hasKvmStats: boolean } };
    assert.equal(record.uuid, TEST_UUID);
    assert.equal(record.baseline.hasKvmStats, false);
  });

  it('savings --watch redraws until SIGINT and then exits 0', async () => {
    const child = spawn(process.execPath, [bin.es2ctl, '--endpoint', `unix:${es2d.socket}`, 'savings', '--watch', '--interval', '0.5'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    const tables = (): number => stdout.split('\n').filter((line) => line.startsWith('NAME ')).length;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`fewer than two tables within 10 s:\n${stdout}${stderr}`)), 10_000);
      child.stdout.setEncoding('utf8').on('data', (c: string) => {
        stdout += c;
        if (tables() >= 2) {
          clearTimeout(timer);
          resolve();
        }
      });
    });
    child.kill('SIGINT');
    assert.equal(await exited, 0, stderr);
    assert.ok(!stdout.includes('\u001b['), 'no screen clearing into a pipe');
    assert.match(stdout, /^every 0\.5s: es2ctl savings, /m);
    assert.match(stdout, /^test +.*no-kvm-stats$/m);
  });
});

describe('es2ctl endpoints', () => {
  it('an unreachable es2d fails with exit 1 and says so', async () => {
    const run = await es2ctl(['--endpoint', 'unix:/nonexistent/es2d.sock', 'domains']);
    assert.equal(run.status, 1);
    assert.match(run.stderr, /^es2ctl: INTERNAL: cannot reach es2d at unix:\/nonexistent\/es2d\.sock/);
  });

  it('a malformed --endpoint is a usage error', async () => {
    const run = await es2ctl(['--endpoint', 'ftp://host', 'domains']);
    assert.equal(run.status, 2);
  });

  it('http://HOST:PORT with --token-file; without the token the API refuses with UNAUTHORIZED', async () => {
    const port = await new Promise<number>((resolve) => {
      const probe = createServer().listen(0, '127.0.0.1', () => {
        const { port: free } = probe.address() as { port: number };
        probe.close(() => resolve(free));
      });
    });
    const tokenFile = join(tempDir(), 'token');
    writeFileSync(tokenFile, 'es2ctl-test-token-0123456789\n');
    const es2d = await startEs2d({ args: ['--listen', `127.0.0.1:${port}`, '--token-file', tokenFile] });
    try {
      const ok = await es2ctl(['--endpoint', `http://127.0.0.1:${port}`, '--token-file', tokenFile, 'domains']);
      assert.equal(ok.status, 0, ok.stderr);
      assert.match(ok.stdout, /^6695eb01-f6a4-8304-79aa-97f2502e193f +test +running/m);
      const refused = await es2ctl(['--endpoint', `http://127.0.0.1:${port}`, 'domains']);
      assert.equal(refused.status, 1);
      assert.match(refused.stderr, /^es2ctl: UNAUTHORIZED: /);
    } finally {
      await es2d.stop();
    }
  });
});
