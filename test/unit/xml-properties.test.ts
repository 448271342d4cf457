// Property tests over random valid policies, on every domain fixture: applying is idempotent,
// removal inverts it, and a new policy over an applied domain equals applying it to the original.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';

import fc from 'fast-check';

import { formatCpuset } from '../../src/policy/cpuset.js';
import type { HostFacts } from '../../src/policy/host-facts.js';
import type { Policy } from '../../src/policy/types.js';
import { parseDomainXml } from '../../src/xml/dom.js';
import { vcpuCount } from '../../src/xml/domain.js';
import { apply, plan, remove } from '../../src/xml/engine.js';
import { readRecordedPolicy } from '../../src/xml/metadata.js';
import { fixture } from '../helpers/paths.js';
import { xmlDifference } from '../helpers/xml-match.js';

const HOST_CPUS = 16;
const domains = (JSON.parse(readFileSync(fixture('domains', 'goldens.json'), 'utf8')) as { domain: string }[]).map((g) => g.domain);

/** A CPU set in host range, written plainly or as a range with exclusions (`2-9,^4,^7`). */
const cpuset = fc
  .tuple(fc.uniqueArray(fc.integer({ min: 0, max: HOST_CPUS - 1 }), { minLength: 1, maxLength: 6 }), fc.boolean())
  .map(([cpus, withExclusions]) => {
    if (!withExclusions) return formatCpuset(cpus);
    const low = Math.min(...cpus);
    const high = Math.max(...cpus);
    const excluded = [];
    for (let cpu = low; cpu <= high; cpu++) if (!cpus.includes(cpu)) excluded.push(`^${cpu}`);
    return [`${low}-${high}`, ...excluded].join(',');
  });

const label = fc.stringMatching(/^[a-z][a-z0-9-]{0,31}$/);
const u32 = fc.integer({ min: 0, max: 4_294_967_295 });

function policyFor(vcpus: number): fc.Arbitrary<Policy> {
  const entries = fc.uniqueArray(
    fc.record({ vcpu: fc.integer({ min: 0, max: vcpus - 1 }), cpuset, label }, { requiredKeys: ['vcpu'] }),
    { selector: (entry) => entry.vcpu, maxLength: vcpus },
  );
  const hybridIo = fc.record({
    iothreads: fc.integer({ min: 1, max: 4 }), iothreadCpuset: cpuset, pollMaxNs: u32, pollGrow: u32, pollShrink: u32,
    kickRateThreshold: u32, idleTimeoutUs: u32,
  }, { requiredKeys: [] });
  return fc
    .record({
      enabled: fc.oneof({ weight: 4, arbitrary: fc.constant(true) }, { weight: 1, arbitrary: fc.constant(false) }),
      vcpus: entries,
      hybridIo,
      postedInterrupts: fc.constantFrom('required' as const, 'preferred' as const),
      haltPollNs: u32,
      redirect: fc.constantFrom('off' as const, 'running' as const, 'labeled' as const),
    }, { requiredKeys: ['enabled'] })
    .map(({ redirect, ...policy }) => {
      if (redirect === undefined) return policy;
      const target = policy.vcpus?.find((entry) => entry.label !== undefined)?.label;
      if (redirect === 'labeled') return target === undefined ? policy : { ...policy, interruptRedirection: { mode: redirect, targetLabel: target } };
      return { ...policy, interruptRedirection: { mode: redirect } };
    });
}

const host: fc.Arbitrary<HostFacts> = fc.record({
  cpus: fc.constant([...Array(HOST_CPUS).keys()]),
  libvirtVersion: fc.constantFrom(9_000_000, 9_004_000),
  es2Kernel: fc.boolean(),
  postedInterrupts: fc.constant(true),
  haltPollKnob: fc.boolean(),
});

function assertSame(actual: string, expected: string, what: string): void {
  const difference = xmlDifference(actual, expected);
  assert.equal(difference, null, `${what}: ${difference ?? ''}`);
}

describe('apply and remove over random valid policies', () => {
  for (const name of domains) {
    describe(name, () => {
      const original = readFileSync(fixture('domains', `${name}.xml`), 'utf8');
      const policy = policyFor(vcpuCount(parseDomainXml(original)));

      it('applying twice equals applying once, and the second time is a no-op', () => {
        fc.assert(fc.property(policy, host, (p, h) => {
          const once = apply(original, p, h).xml;
          const twice = apply(once, p, h);
          assertSame(twice.xml, once, 'apply twice');
          assert.equal(twice.plan.noop, true);
          assert.equal(plan(once, p, h).live.every((op) => op.op === 'iothread-poll' && h.libvirtVersion < 9_004_000), true);
        }));
      });

      it('remove after apply gives back the original', () => {
        fc.assert(fc.property(policy, host, (p, h) => {
          assertSame(remove(apply(original, p, h).xml, h).xml, original, 'remove after apply');
        }));
      });

      it('a new policy over an applied domain equals applying it to the original, and removes cleanly', () => {
        fc.assert(fc.property(policy, policy, host, (first, second, h) => {
          const over = apply(apply(original, first, h).xml, second, h).xml;
          assertSame(over, apply(original, second, h).xml, 'second policy over the first');
          assertSame(remove(over, h).xml, original, 'remove after two applies');
        }));
      });

      it('records exactly the policy it applied', () => {
        fc.assert(fc.property(policy, host, (p, h) => {
          // fast-check builds records without a prototype; compare plain JSON data.
          const plain = JSON.parse(JSON.stringify(p)) as Policy;
          assert.deepEqual(readRecordedPolicy(apply(original, p, h).xml), p.enabled ? plain : null);
        }));
      });
    });
  }
});
