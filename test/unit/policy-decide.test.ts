import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { isEs2Error } from '../../src/errors/index.js';
import { type DomainShape, NEEDS_ES2_KERNEL, decideLayout } from '../../src/policy/decide.js';
import type { HostFacts } from '../../src/policy/host-facts.js';
import type { Policy } from '../../src/policy/types.js';

const stock: HostFacts = { cpus: [0, 1, 2, 3, 4, 5, 6, 7], libvirtVersion: 9_000_000, es2Kernel: false, postedInterrupts: true, haltPollKnob: true };
const es2Host: HostFacts = { ...stock, es2Kernel: true };
const domain: DomainShape = { vcpus: 4, iothreadIds: [], virtioDisks: ['vda', 'vdb', 'vdc'], virtioInterfaces: [] };

const full: Policy = {
  enabled: true,
  vcpus: [{ vcpu: 2, cpuset: '3', label: 'io' }, { vcpu: 0, cpuset: '1-2', label: 'io' }, { vcpu: 1, label: 'compute' }],
  hybridIo: { iothreads: 2, iothreadCpuset: '6-7', pollMaxNs: 1000, kickRateThreshold: 20000, idleTimeoutUs: 50 },
  interruptRedirection: { mode: 'labeled', targetLabel: 'io' },
  haltPollNs: 200000,
};

describe('decideLayout', () => {
  it('pins the vCPUs that carry a cpuset, in vCPU order', () => {
    assert.deepEqual(decideLayout(full, domain, stock).vcpuPins, [{ vcpu: 0, cpus: [1, 2] }, { vcpu: 2, cpus: [3] }]);
  });

  it('adds IOThreads with the smallest free ids and spreads virtio disks over them', () => {
    const layout = decideLayout(full, { ...domain, iothreadIds: [2] }, stock);
    assert.deepEqual(layout.iothreadIds, [2, 1]);
    assert.deepEqual(layout.addedIothreadIds, [1]);
    assert.deepEqual(layout.iothreadCpus, [6, 7]);
    assert.deepEqual(layout.diskIothreads, [{ disk: 'vda', iothread: 2 }, { disk: 'vdb', iothread: 1 }, { disk: 'vdc', iothread: 2 }]);
    assert.deepEqual(layout.poll, { pollMaxNs: 1000 });
  });

  it("uses the domain's IOThreads, at least one, when the policy gives no count", () => {
    const policy: Policy = { enabled: true, hybridIo: { pollGrow: 2 } };
    assert.deepEqual(decideLayout(policy, domain, stock).iothreadIds, [1]);
    assert.deepEqual(decideLayout(policy, { ...domain, iothreadIds: [1, 2, 3] }, stock).iothreadIds, [1, 2, 3]);
  });

  it('puts poll parameters into the XML from libvirt 9.4 on', () => {
    assert.equal(decideLayout(full, domain, stock).pollInXml, false);
    assert.equal(decideLayout(full, domain, { ...stock, libvirtVersion: 9_004_000 }).pollInXml, true);
  });

  it('lists what needs the ES2 kernel interface as not applicable on a stock host', () => {
    const layout = decideLayout(full, domain, stock);
    assert.deepEqual(layout.notApplicable, [
      { setting: '/hybridIo/kickRateThreshold', reason: NEEDS_ES2_KERNEL },
      { setting: '/hybridIo/idleTimeoutUs', reason: NEEDS_ES2_KERNEL },
      { setting: '/interruptRedirection', reason: NEEDS_ES2_KERNEL },
    ]);
    assert.equal(layout.es2Kernel, null);
    assert.deepEqual(layout.hostKnobs, [{ knob: 'halt_poll_ns', value: 200000 }]);
  });

  it('hands them, and halt polling per VM, to the ES2 kernel interface when there is one', () => {
    const layout = decideLayout(full, domain, es2Host);
    assert.deepEqual(layout.notApplicable, []);
    assert.deepEqual(layout.hostKnobs, []);
    assert.deepEqual(layout.es2Kernel, {
      enabled: true, kickRateThreshold: 20000, idleTimeoutUs: 50, redirect: 'labeled', redirectVcpus: [2, 0], haltPollNs: 200000,
    });
  });

  it('tells the ES2 kernel interface that a disabled policy is off', () => {
    assert.deepEqual(decideLayout({ ...full, enabled: false }, domain, es2Host).es2Kernel, { enabled: false });
  });

  it('says halt polling cannot act without the knob or the kernel interface', () => {
    const layout = decideLayout({ enabled: true, haltPollNs: 5 }, domain, { ...stock, haltPollKnob: false });
    assert.deepEqual(layout.notApplicable.map((n) => n.setting), ['/haltPollNs']);
  });

  it('says vhost-net polling cannot be set through libvirt when the domain has virtio NICs', () => {
    const layout = decideLayout(full, { ...domain, virtioInterfaces: ['interface 52:54:00:00:00:01'] }, stock);
    const net = layout.notApplicable.find((n) => n.setting === '/hybridIo');
    assert.match(net?.reason ?? '', /vhost-net busy polling \(poll-us\) of interface 52:54:00:00:00:01 cannot be set through libvirt 9\.x/);
  });

  describe('posted interrupts', () => {
    it('refuses a required policy on a host without them', () => {
      assert.throws(() => decideLayout({ enabled: true, postedInterrupts: 'required' }, domain, { ...stock, postedInterrupts: false }),
        (err: unknown) => isEs2Error(err, 'HOST_UNSUPPORTED') && err.details[0]?.path === '/postedInterrupts');
    });

    it('only warns for preferred, and when the host cannot tell', () => {
      assert.equal(decideLayout({ enabled: true, postedInterrupts: 'preferred' }, domain, { ...stock, postedInterrupts: false }).warnings.length, 1);
      assert.equal(decideLayout({ enabled: true, postedInterrupts: 'required' }, domain, { ...stock, postedInterrupts: null }).warnings.length, 1);
      assert.deepEqual(decideLayout({ enabled: true, postedInterrupts: 'required' }, domain, stock).warnings, []);
    });
  });

  describe('refusals against the domain and host', () => {
    const cases: { name: string; policy: Policy; host?: HostFacts; path: string; message: RegExp }[] = [
      { name: 'a vCPU beyond <vcpu>', policy: { enabled: true, vcpus: [{ vcpu: 4, label: 'io' }] }, path: '/vcpus/0/vcpu', message: /vCPU 4 does not exist: the domain has 4/ },
      { name: 'a vCPU cpuset outside the host', policy: { enabled: true, vcpus: [{ vcpu: 0, cpuset: '6-9' }] }, path: '/vcpus/0/cpuset', message: /CPUs 8-9 are not among the host CPUs es2 may use \(0-7\)/ },
      { name: 'an IOThread cpuset outside the pool', policy: { enabled: true, hybridIo: { iothreadCpuset: '1' } }, host: { ...stock, cpuPool: [4, 5] }, path: '/hybridIo/iothreadCpuset', message: /CPU 1 is not among the host CPUs es2 may use \(4-5\)/ },
    ];
    for (const c of cases) {
      it(`refuses ${c.name} at ${c.path}`, () => {
        assert.throws(() => decideLayout(c.policy, domain, c.host ?? stock), (err: unknown) => {
          assert.ok(isEs2Error(err, 'VALIDATION_FAILED'));
          assert.equal(err.details[0]?.path, c.path);
          assert.match(err.details[0]?.message ?? '', c.message);
          return true;
        });
      });
    }
  });
});
