import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, readFileSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, it } from 'node:test';

import { parse } from 'yaml';

import { isEs2Error, type ErrorCode } from '../../src/errors/index.js';
import {
  capabilityFeatures,
  cpuinfoPostedIntr,
  Es2KernelBackend,
  hasKvmExitStats,
  HostRoot,
  hostFacts,
  KnobManager,
  parsePid,
  probeHost,
  providerTraits,
  selectBackend,
  StockBackend,
  writeProviderConfig,
} from '../../src/host/index.js';
import { Store } from '../../src/store/index.js';
import { hostTree, tempDir } from '../helpers/temp.js';

const U1 = '6f1c2b7e-3a4d-4e5f-8a9b-0c1d2e3f4a5b';
const U2 = '7a2d3c8f-4b5e-4f60-9bac-1d2e3f4a5b6c';


function read(root: string, rel: string): string {
  return readFileSync(join(root, rel), 'utf8');
}

function failsWith(code: ErrorCode, pattern?: RegExp): (err: unknown) => boolean {
  return (err) => isEs2Error(err, code) && (pattern === undefined || pattern.test(err.message));
}

const HALT_POLL = 'sys/module/kvm/parameters/halt_poll_ns';
const INTEL_CPUINFO = [
  'processor\t: 0', 'vendor_id\t: GenuineIntel',
  'flags\t\t: fpu vme de pse tsc msr vmx ept vpid',
  'vmx flags\t: vnmi preemption_timer posted_intr invvpid ept_x_only', '',
].join('\n');
const stockKvm = { 'dev/kvm': '', [HALT_POLL]: '200000\n', 'sys/module/kvm/parameters/halt_poll_ns_grow': '2\n' };

describe('host paths', () => {
  const root = hostTree({ [HALT_POLL]: '200000\n', 'run/libvirt/qemu/vm1.pid': '4242\n' });
  const outside = hostTree({ 'halt_poll_ns': '1\n', 'secret': 'x' });
  const host = new HostRoot(root);

  it('resolves the known files under the root', () => {
    assert.equal(host.knob('halt_poll_ns'), join(host.root, HALT_POLL));
    assert.equal(host.qemuPidFile('vm1'), join(host.root, 'run/libvirt/qemu/vm1.pid'));
    assert.equal(host.es2VmFile(4242, 'redirect'), join(host.root, 'sys/kernel/es2/vms/4242/redirect'));
  });

  for (const rel of ['etc/passwd', '../etc/passwd', `${HALT_POLL}/../../../../../etc/passwd`, `/${HALT_POLL}`, 'sys/kernel/es2/vms/4242/../../version']) {
    it(`refuses ${JSON.stringify(rel)}: not a path es2 uses`, () => {
      assert.throws(() => host.resolve(rel), failsWith('VALIDATION_FAILED'));
    });
  }

  for (const name of ['../../../etc/passwd', 'a/b', 'vm\0', '', 'x'.repeat(252)]) {
    it(`refuses the domain name ${JSON.stringify(name.length > 20 ? `${name.slice(0, 8)}... (${name.length})` : name)} as part of a path`, () => {
      assert.throws(() => host.qemuPidFile(name), failsWith('VALIDATION_FAILED'));
      assert.throws(() => host.resolve(`run/libvirt/qemu/${name}.pid`), failsWith('VALIDATION_FAILED'));
    });
  }

  it('takes the domain names libvirt takes that only look like traversal: one file in the pid directory each', () => {
    for (const name of ['..', '.', '...', 'a..b', '..pid', 'x'.repeat(251)]) {
      assert.equal(host.qemuPidFile(name), join(host.root, 'run/libvirt/qemu', `${name}.pid`), name);
    }
  });

  for (const pid of [0, -1, 1.5, Number.NaN, 99_999_999]) {
    it(`builds ES2 per-VM paths from a pid only: refuses ${pid}`, () => {
      assert.throws(() => host.es2VmFile(pid, 'enabled'), failsWith('VALIDATION_FAILED'));
    });
  }

  it('parses a pid file strictly', () => {
    assert.equal(parsePid('4242\n'), 4242);
    for (const text of ['', '42 43', '0x10', '-1', '4242abc']) assert.throws(() => parsePid(text), failsWith('VALIDATION_FAILED'));
  });

  it('refuses a known path that a symlink leads outside the root', () => {
    const linked = tempDir();
    mkdirSync(join(linked, 'sys/module/kvm'), { recursive: true });
    symlinkSync(outside, join(linked, 'sys/module/kvm/parameters'));
    assert.throws(() => new HostRoot(linked).knob('halt_poll_ns'), failsWith('VALIDATION_FAILED', /outside the host root/));
  });

  it('refuses a dangling symlink on the way to a file es2 would create', () => {
    const linked = tempDir();
    mkdirSync(join(linked, 'etc/nova'), { recursive: true });
    symlinkSync(join(outside, 'not-yet'), join(linked, 'etc/nova/provider_config'));
    assert.throws(() => new HostRoot(linked).providerConfig(), failsWith('VALIDATION_FAILED', /symlink to nowhere/));
  });

  it('follows symlinks that stay inside the root', () => {
    const linked = hostTree({ 'real/halt_poll_ns': '5\n' });
    mkdirSync(join(linked, 'sys/module/kvm'), { recursive: true });
    symlinkSync(join(linked, 'real'), join(linked, 'sys/module/kvm/parameters'));
    assert.ok(new HostRoot(linked).knob('halt_poll_ns').endsWith(HALT_POLL));
  });

  it('refuses a host root that does not exist', () => {
    assert.throws(() => new HostRoot(join(root, 'missing')), failsWith('VALIDATION_FAILED'));
  });
});

describe('host capability probe', () => {
  const libvirt90 = { libvirtVersion: 9_000_000, qemuVersion: 7_002_000, kvmExitStats: true };

  it('finds posted interrupts on Intel with APICv and posted_intr', () => {
    const root = hostTree({ ...stockKvm, 'proc/cpuinfo': INTEL_CPUINFO, 'sys/module/kvm_intel/parameters/enable_apicv': 'Y\n' });
    const report = probeHost(new HostRoot(root), libvirt90);
    assert.deepEqual(report.postedInterrupts, {
      supported: true, reason: 'kvm_intel enable_apicv=Y, posted_intr in vmx flags',
      intel: { enableApicv: true, postedIntrFlag: true }, amd: null,
    });
    assert.deepEqual(report.kvm, { devKvm: true, module: 'kvm_intel' });
    assert.equal(report.backend, 'stock');
    assert.deepEqual(report.haltPoll.halt_poll_ns, { path: HALT_POLL, present: true, writable: true, value: 200000 });
    assert.equal(report.haltPoll.halt_poll_ns_grow_start.present, false);
    assert.deepEqual(report.libvirt, {
      version: '9.0.0', versionCode: 9_000_000, qemuVersion: '7.2.0', qemuVersionCode: 7_002_000,
      kvmExitStats: true, iothreadPollXml: false,
    });
    assert.deepEqual(report.vhostNetPollUs, { supported: false, reason: 'not settable through libvirt 9.x' });
    assert.deepEqual(capabilityFeatures(report), {
      posted_interrupts: 1, es2_kernel: 0, halt_poll: 1, kvm: 1, kvm_exit_stats: 1, iothread_poll_xml: 0, vhost_net_poll_us: 0,
    });
    assert.deepEqual(JSON.parse(JSON.stringify(report)), report);
  });

  const intelCases = [
    { apicv: 'N', cpuinfo: INTEL_CPUINFO, supported: false },
    { apicv: 'Y', cpuinfo: INTEL_CPUINFO.replace(' posted_intr', ''), supported: false },
    { apicv: '1', cpuinfo: 'flags\t\t: fpu vmx\n', supported: true },
    { apicv: 'garbage', cpuinfo: INTEL_CPUINFO, supported: null },
  ];
  for (const c of intelCases) {
    const vmx = /vmx flags/.test(c.cpuinfo) ? (c.cpuinfo.includes('posted_intr') ? 'with' : 'without') + ' posted_intr' : 'no vmx flags line';
    it(`Intel enable_apicv=${c.apicv}, ${vmx}: posted interrupts ${c.supported}`, () => {
      const root = hostTree({ 'proc/cpuinfo': c.cpuinfo, 'sys/module/kvm_intel/parameters/enable_apicv': `${c.apicv}\n` });
      assert.equal(probeHost(new HostRoot(root)).postedInterrupts.supported, c.supported);
    });
  }

  for (const [avic, supported] of [['1', true], ['Y', true], ['0', false], ['N', false]] as const) {
    it(`AMD avic=${avic}: posted interrupts ${supported}`, () => {
      const root = hostTree({ 'proc/cpuinfo': 'flags\t\t: fpu svm avic\n', 'sys/module/kvm_amd/parameters/avic': `${avic}\n` });
      const report = probeHost(new HostRoot(root));
      assert.equal(report.postedInterrupts.supported, supported);
      assert.deepEqual(report.postedInterrupts.amd, { avic: supported });
      assert.equal(report.kvm.module, 'kvm_amd');
    });
  }

  it('without kvm_intel or kvm_amd there are no posted interrupts and nothing to tune', () => {
    const report = probeHost(new HostRoot(hostTree({ 'proc/cpuinfo': 'flags\t\t: fpu\n' })));
    assert.equal(report.postedInterrupts.supported, false);
    assert.match(report.postedInterrupts.reason, /neither kvm_intel nor kvm_amd/);
    assert.equal(report.haltPoll.halt_poll_ns.present, false);
    assert.deepEqual(report.libvirt.version, null);
    assert.equal(report.libvirt.iothreadPollXml, null);
    assert.ok(Object.values(capabilityFeatures(report)).every((v) => v === 0));
  });

  it('finds the ES2 kernel interface and selects its backend', () => {
    const root = hostTree({ ...stockKvm, 'sys/kernel/es2/version': '1.0\n' });
    const host = new HostRoot(root);
    const report = probeHost(host, { libvirtVersion: 9_004_000, qemuVersion: null, kvmExitStats: null });
    assert.equal(report.backend, 'es2-kernel');
    assert.deepEqual(report.es2Kernel, { present: true, version: '1.0' });
    assert.equal(report.libvirt.iothreadPollXml, true);
    assert.equal(capabilityFeatures(report).es2_kernel, 1);
    assert.ok(selectBackend(report, host) instanceof Es2KernelBackend);
    assert.ok(selectBackend(probeHost(new HostRoot(hostTree(stockKvm))), host) instanceof StockBackend);
  });

  it('gives the pure core its host facts', () => {
    const root = hostTree({ ...stockKvm, 'proc/cpuinfo': INTEL_CPUINFO, 'sys/module/kvm_intel/parameters/enable_apicv': 'Y\n' });
    const report = probeHost(new HostRoot(root), libvirt90);
    assert.deepEqual(hostFacts(report, [0, 1, 2, 3], 9_000_000), {
      cpus: [0, 1, 2, 3], libvirtVersion: 9_000_000, es2Kernel: false, postedInterrupts: true, haltPollKnob: true,
    });
    assert.deepEqual(hostFacts(report, [0, 1], 9_000_000, [1]).cpuPool, [1]);
  });

  it('reads posted_intr from cpuinfo', () => {
    assert.equal(cpuinfoPostedIntr(INTEL_CPUINFO), true);
    assert.equal(cpuinfoPostedIntr('flags : fpu\nvmx flags : vnmi\n'), false);
    assert.equal(cpuinfoPostedIntr('flags : fpu vmx\n'), null);
  });

  it('tells KVM exit counters from bulk stats', () => {
    const ref = { name: 'vm', uuid: U1, id: 1 };
    assert.equal(hasKvmExitStats([]), null);
    assert.equal(hasKvmExitStats([{ ...ref, stats: { 'state.state': 1 } }]), false);
    assert.equal(hasKvmExitStats([{ ...ref, stats: { 'vcpu.0.exits.sum': 12n } }]), true);
  });
});

describe('host knobs and their journal', () => {
  let dirs: { root: string; state: string };
  let store: Store;
  afterEach(() => store.close());

  function setup(files: Record<string, string> = stockKvm): KnobManager {
    dirs = { root: hostTree(files), state: tempDir() };
    store = Store.open(dirs.state);
    return new KnobManager(store, new HostRoot(dirs.root));
  }

  it('with two holders keeps the largest request in force and the original for the last to go', () => {
    const knobs = setup();
    knobs.hold(U1, 'halt_poll_ns', 300000);
    assert.equal(read(dirs.root, HALT_POLL), '300000\n');
    const both = knobs.hold(U2, 'halt_poll_ns', 500000);
    assert.deepEqual(both, {
      knob: 'halt_poll_ns', path: HALT_POLL, original: 200000, current: 500000, holders: { [U1]: 300000, [U2]: 500000 },
    });
    assert.equal(read(dirs.root, HALT_POLL), '500000\n');

    knobs.hold(U1, 'halt_poll_ns', 600000);
    assert.equal(read(dirs.root, HALT_POLL), '600000\n');
    assert.deepEqual(knobs.release(U1), [{ knob: 'halt_poll_ns', from: 600000, to: 500000 }]);
    assert.equal(read(dirs.root, HALT_POLL), '500000\n');
    assert.deepEqual(knobs.release(U1), []);
    assert.deepEqual(knobs.release(U2), [{ knob: 'halt_poll_ns', from: 500000, to: 200000 }]);
    assert.equal(read(dirs.root, HALT_POLL), '200000\n');
    assert.deepEqual(knobs.list(), []);
  });

  it('writes only when the value in force changes', () => {
    const knobs = setup();
    knobs.hold(U1, 'halt_poll_ns', 400000);
    writeFileSync(join(dirs.root, HALT_POLL), '123\n');
    knobs.hold(U2, 'halt_poll_ns', 300000);
    assert.equal(read(dirs.root, HALT_POLL), '123\n');
  });

  it('restores every original after a restart, whoever held them', () => {
    const knobs = setup();
    knobs.hold(U1, 'halt_poll_ns', 300000);
    knobs.hold(U2, 'halt_poll_ns', 400000);
    knobs.hold(U2, 'halt_poll_ns_grow', 4);
    store.close();

    store = Store.open(dirs.state);
    const restarted = new KnobManager(store, new HostRoot(dirs.root));
    assert.deepEqual(restarted.list().map((k) => [k.knob, k.original, k.current, Object.keys(k.holders).length]), [
      ['halt_poll_ns', 200000, 400000, 2], ['halt_poll_ns_grow', 2, 4, 1],
    ]);
    assert.deepEqual(restarted.restoreAll(), [
      { knob: 'halt_poll_ns', from: 400000, to: 200000 }, { knob: 'halt_poll_ns_grow', from: 4, to: 2 },
    ]);
    assert.equal(read(dirs.root, HALT_POLL), '200000\n');
    assert.equal(read(dirs.root, 'sys/module/kvm/parameters/halt_poll_ns_grow'), '2\n');
    assert.deepEqual(restarted.list(), []);
  });

  it('a missing knob is HOST_UNSUPPORTED and leaves no journal entry', () => {
    const knobs = setup({ 'dev/kvm': '' });
    assert.throws(() => knobs.hold(U1, 'halt_poll_ns', 1000), failsWith('HOST_UNSUPPORTED'));
    assert.deepEqual(knobs.list(), []);
  });

  for (const value of [-1, 1.5, 2 ** 32, Number.NaN]) {
    it(`refuses halt_poll_ns=${value}`, () => {
      const knobs = setup();
      assert.throws(() => knobs.hold(U1, 'halt_poll_ns', value), failsWith('VALIDATION_FAILED'));
      assert.equal(read(dirs.root, HALT_POLL), '200000\n');
    });
  }

  it('refuses a knob that is not on the list and a holder that is not a name', () => {
    const knobs = setup();
    assert.throws(() => knobs.hold(U1, 'halt_poll_ns_shrink' as 'halt_poll_ns', 1), failsWith('VALIDATION_FAILED'));
    assert.throws(() => knobs.hold('../x', 'halt_poll_ns', 1), failsWith('VALIDATION_FAILED'));
  });

  it('a failed write leaves the journal and the knob as they were', () => {
    const knobs = setup({ ...stockKvm, 'real/halt_poll_ns': '300000\n' });
    knobs.hold(U1, 'halt_poll_ns', 300000);
    // A symlink at the last step is never written through.
    unlinkSync(join(dirs.root, HALT_POLL));
    symlinkSync(join(dirs.root, 'real/halt_poll_ns'), join(dirs.root, HALT_POLL));
    assert.throws(() => knobs.hold(U2, 'halt_poll_ns', 900000), failsWith('INTERNAL'));
    assert.deepEqual(knobs.list()[0]?.holders, { [U1]: 300000 });
    assert.equal(knobs.list()[0]?.current, 300000);
    assert.equal(read(dirs.root, 'real/halt_poll_ns'), '300000\n');
  });
});

describe('ES2 kernel backend', () => {
  const VM = 'sys/kernel/es2/vms/4242';
  const es2Tree = (): string => hostTree({
    'sys/kernel/es2/version': '1\n',
    'run/libvirt/qemu/instance-0000000a.pid': '4242',
    'run/libvirt/qemu/tcg.pid': '5151\n',
    'run/libvirt/qemu/bad.pid': 'not a pid\n',
    [`${VM}/enabled`]: '0\n', [`${VM}/kick_rate_threshold`]: '0\n', [`${VM}/idle_timeout_us`]: '0\n',
    [`${VM}/redirect`]: 'off\n', [`${VM}/redirect_vcpus`]: '\n', [`${VM}/halt_poll_ns`]: '0\n',
  });

  it('writes the per-VM files of the domain\'s QEMU pid and reads them back', () => {
    const root = es2Tree();
    const backend = new Es2KernelBackend(new HostRoot(root));
    const settings = {
      enabled: true, kickRateThreshold: 20000, idleTimeoutUs: 50, redirect: 'labeled' as const, redirectVcpus: [0, 2], haltPollNs: 200000,
    };
    assert.equal(backend.pidOf('instance-0000000a'), 4242);
    backend.apply('instance-0000000a', settings);
    assert.deepEqual(
      Object.fromEntries(readdirSync(join(root, VM)).sort().map((f) => [f, read(root, `${VM}/${f}`)])),
      { enabled: '1\n', halt_poll_ns: '200000\n', idle_timeout_us: '50\n', kick_rate_threshold: '20000\n', redirect: 'labeled\n', redirect_vcpus: '0,2\n' },
    );
    assert.deepEqual(backend.read('instance-0000000a'), settings);

    assert.equal(backend.disable('instance-0000000a'), true);
    assert.equal(read(root, `${VM}/enabled`), '0\n');
    assert.equal(read(root, `${VM}/kick_rate_threshold`), '20000\n');
  });

  it('reads a vCPU list in the kernel\'s range form', () => {
    const root = es2Tree();
    writeFileSync(join(root, `${VM}/redirect_vcpus`), '0-2,5\n');
    assert.deepEqual(new Es2KernelBackend(new HostRoot(root)).read('instance-0000000a').redirectVcpus, [0, 1, 2, 5]);
  });

  it('writes only what the settings carry', () => {
    const root = es2Tree();
    new Es2KernelBackend(new HostRoot(root)).apply('instance-0000000a', { enabled: true, idleTimeoutUs: 80 });
    assert.equal(read(root, `${VM}/idle_timeout_us`), '80\n');
    assert.equal(read(root, `${VM}/kick_rate_threshold`), '0\n');
    assert.equal(read(root, `${VM}/redirect`), 'off\n');
  });

  it('refuses invalid settings before writing anything', () => {
    const root = es2Tree();
    const backend = new Es2KernelBackend(new HostRoot(root));
    for (const bad of [{ kickRateThreshold: -1 }, { redirect: 'all' }, { redirectVcpus: [0, -2] }, { haltPollNs: 0.5 }]) {
      assert.throws(() => backend.apply('instance-0000000a', { enabled: true, ...bad } as never), failsWith('VALIDATION_FAILED'));
    }
    assert.equal(read(root, `${VM}/enabled`), '0\n');
  });

  it('says why a domain cannot be reached', () => {
    const backend = new Es2KernelBackend(new HostRoot(es2Tree()));
    assert.throws(() => backend.apply('stopped', { enabled: true }), failsWith('CONFLICT', /not running/));
    assert.throws(() => backend.apply('tcg', { enabled: true }), failsWith('HOST_UNSUPPORTED', /pid 5151/));
    assert.throws(() => backend.read('bad'), failsWith('VALIDATION_FAILED'));
    assert.throws(() => backend.apply('../../../etc/x', { enabled: true }), failsWith('VALIDATION_FAILED'));
    assert.equal(backend.disable('stopped'), false);
    assert.equal(backend.disable('tcg'), false);
  });

  it('the stock backend has nothing to write or read', () => {
    const stock = new StockBackend();
    assert.throws(() => stock.apply('vm', { enabled: true }), failsWith('HOST_UNSUPPORTED'));
    assert.equal(stock.read(), null);
    assert.equal(stock.disable(), false);
  });
});

describe('Nova provider config', () => {
  const piEs2 = { ...stockKvm, 'proc/cpuinfo': INTEL_CPUINFO, 'sys/module/kvm_intel/parameters/enable_apicv': 'Y\n', 'sys/kernel/es2/version': '1\n' };
  const FILE = 'etc/nova/provider_config/es2.yaml';

  it('carries CUSTOM_ES2_* traits from the probe for $COMPUTE_NODE in schema 1.0', () => {
    const root = hostTree(piEs2);
    const host = new HostRoot(root);
    const result = writeProviderConfig(host, probeHost(host, { libvirtVersion: 9_000_000, qemuVersion: null, kvmExitStats: true }));
    assert.equal(result.changed, true);
    assert.equal(result.path, join(host.root, FILE));
    assert.deepEqual(parse(read(root, FILE)), {
      meta: { schema_version: '1.0' },
      providers: [{
        identification: { uuid: '$COMPUTE_NODE' },
        traits: { additional: ['CUSTOM_ES2_CAPABLE', 'CUSTOM_ES2_HALT_POLL', 'CUSTOM_ES2_KERNEL', 'CUSTOM_ES2_KVM_EXIT_STATS', 'CUSTOM_ES2_POSTED_INTERRUPTS'] },
      }],
    });
    for (const trait of result.traits) assert.match(trait, /^CUSTOM_[A-Z0-9_]{1,248}$/);
  });

  it('rewrites only when the content changes, atomically', () => {
    const root = hostTree(stockKvm);
    const host = new HostRoot(root);
    assert.equal(writeProviderConfig(host, probeHost(host)).changed, true);
    assert.equal(writeProviderConfig(host, probeHost(host)).changed, false);
    mkdirSync(join(root, 'sys/kernel/es2'), { recursive: true });
    writeFileSync(join(root, 'sys/kernel/es2/version'), '1\n');
    const third = writeProviderConfig(host, probeHost(host));
    assert.equal(third.changed, true);
    assert.deepEqual(third.traits, ['CUSTOM_ES2_CAPABLE', 'CUSTOM_ES2_HALT_POLL', 'CUSTOM_ES2_KERNEL']);
    assert.deepEqual(readdirSync(join(root, 'etc/nova/provider_config')), ['es2.yaml']);
  });

  it('on a bare host only says es2 runs there', () => {
    const host = new HostRoot(hostTree({}));
    assert.deepEqual(providerTraits(probeHost(host)), ['CUSTOM_ES2_CAPABLE']);
  });

  it('refuses a provider config directory that leads outside the root', () => {
    const root = hostTree({});
    const outside = tempDir();
    mkdirSync(join(root, 'etc/nova'), { recursive: true });
    symlinkSync(outside, join(root, 'etc/nova/provider_config'));
    const host = new HostRoot(root);
    assert.throws(() => writeProviderConfig(host, probeHost(host)), failsWith('VALIDATION_FAILED'));
    assert.deepEqual(readdirSync(outside), []);
  });
});
