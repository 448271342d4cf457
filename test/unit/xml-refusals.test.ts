import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';

import { type ErrorCode, isEs2Error } from '../../src/errors/index.js';
import type { HostFacts } from '../../src/policy/host-facts.js';
import { apply, remove } from '../../src/xml/engine.js';
import { fixture } from '../helpers/paths.js';

const host: HostFacts = { cpus: [0, 1, 2, 3, 4, 5, 6, 7], libvirtVersion: 9_000_000, es2Kernel: false, postedInterrupts: false, haltPollKnob: true };
const domain = readFileSync(fixture('domains', 'virsh-dumpxml.xml'), 'utf8');
const applied = apply(domain, { enabled: true, vcpus: [{ vcpu: 0, cpuset: '1' }] }, host).xml;

function corrupt(replace: [RegExp | string, string]): string {
  const changed = applied.replace(replace[0], replace[1]);
  assert.notEqual(changed, applied, `the test's replacement ${String(replace[0])} must match`);
  return changed;
}

interface Refusal { name: string; xml: string; policy: unknown; code: ErrorCode; path: RegExp }

const refusals: Refusal[] = [
  { name: 'malformed XML', xml: '<domain><name>x</domain>', policy: { enabled: true }, code: 'VALIDATION_FAILED', path: /^\/$/ },
  { name: 'an undeclared namespace prefix', xml: '<domain><x:y/></domain>', policy: { enabled: true }, code: 'VALIDATION_FAILED', path: /^\/$/ },
  { name: 'a root that is not <domain>', xml: '<network/>', policy: { enabled: true }, code: 'VALIDATION_FAILED', path: /^\/$/ },
  { name: 'a vCPU index beyond <vcpu>', xml: domain, policy: { enabled: true, vcpus: [{ vcpu: 4, cpuset: '1' }] }, code: 'VALIDATION_FAILED', path: /^\/vcpus\/0\/vcpu$/ },
  { name: "a cpuset outside the host's CPUs", xml: domain, policy: { enabled: true, vcpus: [{ vcpu: 0, cpuset: '7-8' }] }, code: 'VALIDATION_FAILED', path: /^\/vcpus\/0\/cpuset$/ },
  { name: 'a bad label', xml: domain, policy: { enabled: true, vcpus: [{ vcpu: 0, label: '0io' }] }, code: 'VALIDATION_FAILED', path: /^\/vcpus\/0\/label$/ },
  { name: 'an unknown policy field', xml: domain, policy: { enabled: true, hybridIo: { vhostPollUs: 50 } }, code: 'VALIDATION_FAILED', path: /^\/hybridIo\/vhostPollUs$/ },
  { name: 'a policy that is not an object', xml: domain, policy: 'enabled', code: 'VALIDATION_FAILED', path: /^$/ },
  { name: 'posted interrupts required on a host without', xml: domain, policy: { enabled: true, postedInterrupts: 'required' }, code: 'HOST_UNSUPPORTED', path: /^\/postedInterrupts$/ },
  { name: 'an es2 element whose policy is not JSON', xml: corrupt([/<es2:spec>[^<]*</, '<es2:spec>{enabled<']), policy: { enabled: true }, code: 'VALIDATION_FAILED', path: /es2:spec$/ },
  { name: 'an es2 element with an unknown entry', xml: corrupt(['<es2:vcpupin ', '<es2:cpupin ']), policy: { enabled: true }, code: 'VALIDATION_FAILED', path: /es2:(created|replaced)$/ },
  { name: 'two es2 elements', xml: corrupt(['</metadata>', '<es2:other xmlns:es2="urn:x-es2:policy:1"/></metadata>']), policy: { enabled: true }, code: 'VALIDATION_FAILED', path: /^\/domain\/metadata\/es2:policy$/ },
];

describe('refusals with stable codes and paths', () => {
  for (const r of refusals) {
    it(`apply refuses ${r.name}: ${r.code} at ${String(r.path)}`, () => {
      assert.throws(() => apply(r.xml, r.policy, host), (err: unknown) => {
        assert.ok(isEs2Error(err, r.code), `expected ${r.code}, got ${String(err)}`);
        assert.ok(err.details.some((d) => r.path.test(d.path)), JSON.stringify(err.details));
        return true;
      });
    });
  }

  for (const r of refusals.filter((x) => x.name.startsWith('an es2') || x.name.startsWith('two es2'))) {
    it(`remove refuses ${r.name} rather than guess what to restore`, () => {
      assert.throws(() => remove(r.xml, host), (err: unknown) => isEs2Error(err, 'VALIDATION_FAILED'));
    });
  }
});
