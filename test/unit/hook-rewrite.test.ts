// The migrate/restore rewrite of the libvirt hook: es2's pins checked against this host's CPUs and
// pool; what cannot exist here is narrowed or dropped, never a reason for the migration to fail.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';

import type { HostFacts, Policy } from '../../src/policy/index.js';
import { rewriteForHost } from '../../src/reconcile/hook.js';
import { apply, readRecordedPolicy } from '../../src/xml/index.js';
import { fixture } from '../helpers/paths.js';

const domain = readFileSync(fixture('domains', 'nova-unpinned.xml'), 'utf8');

function host(cpus: number, extra: Partial<HostFacts> = {}): HostFacts {
  return { cpus: [...Array(cpus).keys()], libvirtVersion: 9_000_000, es2Kernel: false, postedInterrupts: true, haltPollKnob: true, ...extra };
}

/** The domain as es2 on a 64-CPU source host left it. */
function fromSource(policy: Policy): string {
  return apply(domain, policy, host(64)).xml;
}

describe('hook rewrite for migrate and restore', () => {
  it('leaves a domain without es2 metadata alone (no output)', () => {
    assert.deepEqual(rewriteForHost(domain, host(16)), { xml: null, notes: [] });
  });

  it('prints nothing when every es2 pin exists here', () => {
    const xml = fromSource({ enabled: true, vcpus: [{ vcpu: 0, cpuset: '2', label: 'io' }] });
    assert.deepEqual(rewriteForHost(xml, host(16)), { xml: null, notes: [] });
  });

  it('drops pins to CPUs this host lacks, keeping labels and the rest of the policy', () => {
    const xml = fromSource({
      enabled: true,
      vcpus: [{ vcpu: 0, cpuset: '40', label: 'io' }, { vcpu: 1, cpuset: '3', label: 'compute' }],
      hybridIo: { iothreads: 1, iothreadCpuset: '50-51', pollMaxNs: 32768 },
    });
    const out = rewriteForHost(xml, host(16));
    assert.ok(out.xml !== null);
    assert.doesNotMatch(out.xml, /cpuset="40"|cpuset='40'|cpuset="50-51"/);
    assert.match(out.xml, /<vcpupin vcpu="1" cpuset="3"\/>/);
    assert.deepEqual(readRecordedPolicy(out.xml), {
      enabled: true,
      vcpus: [{ vcpu: 0, label: 'io' }, { vcpu: 1, cpuset: '3', label: 'compute' }],
      hybridIo: { iothreads: 1, pollMaxNs: 32768 },
    });
    assert.equal(out.notes.length, 2);
    assert.match(out.notes[0]!, /vCPU 0: none of CPUs 40 exists/);
  });

  it('narrows a pin to the part of it that exists in the configured CPU pool', () => {
    const xml = fromSource({ enabled: true, vcpus: [{ vcpu: 0, cpuset: '6-9' }] });
    const out = rewriteForHost(xml, host(16, { cpuPool: [8, 9, 10, 11] }));
    assert.match(out.xml ?? '', /<vcpupin vcpu="0" cpuset="8-9"\/>/);
    assert.match(out.notes[0]!, /narrowed from 6-9 to 8-9/);
  });

  it('relaxes a posted-interrupt requirement this host cannot meet instead of refusing the domain', () => {
    const xml = fromSource({ enabled: true, postedInterrupts: 'required', vcpus: [{ vcpu: 0, cpuset: '1' }] });
    const out = rewriteForHost(xml, host(16, { postedInterrupts: false }));
    assert.equal(readRecordedPolicy(out.xml ?? '')?.postedInterrupts, 'preferred');
  });

  it('takes es2 out of a domain whose es2 element is corrupt rather than failing the migration', () => {
    const xml = fromSource({ enabled: true, vcpus: [{ vcpu: 0, cpuset: '2' }] }).replace(/<es2:spec>[^<]*<\/es2:spec>/, '<es2:spec>{not json</es2:spec>');
    const out = rewriteForHost(xml, host(16));
    assert.match(out.notes.join(' '), /unreadable|removed|unchanged/);
  });
});
