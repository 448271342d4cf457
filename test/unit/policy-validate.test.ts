import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';

import { isEs2Error } from '../../src/errors/index.js';
import { validatePolicy, validatePolicyLayer } from '../../src/policy/validate.js';
import { fixture } from '../helpers/paths.js';

const designExample: unknown = JSON.parse(readFileSync(fixture('policies', 'design-example.json'), 'utf8'));

function refusal(fn: () => unknown): { paths: string[]; messages: string[] } {
  try {
    fn();
  } catch (err) {
    assert.ok(isEs2Error(err, 'VALIDATION_FAILED'), `expected VALIDATION_FAILED, got ${String(err)}`);
    return { paths: err.details.map((d) => d.path), messages: err.details.map((d) => d.message) };
  }
  assert.fail('expected a refusal');
}

describe('validatePolicy', () => {
  it('accepts the policy of DESIGN.md and returns a copy', () => {
    const policy = validatePolicy(designExample);
    assert.deepEqual(policy, designExample);
    assert.notEqual(policy, designExample);
  });

  it('accepts the smallest policy', () => {
    assert.deepEqual(validatePolicy({ enabled: false }), { enabled: false });
  });

  const cases: { name: string; policy: unknown; path: string; message: RegExp }[] = [
    { name: 'a missing enabled', policy: {}, path: '/enabled', message: /required field "enabled"/ },
    { name: 'an unknown top-level field', policy: { enabled: true, turbo: 1 }, path: '/turbo', message: /unknown field "turbo"/ },
    { name: 'an unknown hybridIo field', policy: { enabled: true, hybridIo: { pollUs: 5 } }, path: '/hybridIo/pollUs', message: /unknown field "pollUs"/ },
    { name: 'an unknown vCPU field', policy: { enabled: true, vcpus: [{ vcpu: 0, pin: '1' }] }, path: '/vcpus/0/pin', message: /unknown field/ },
    { name: 'a label with capitals', policy: { enabled: true, vcpus: [{ vcpu: 0, label: 'IO' }] }, path: '/vcpus/0/label', message: /"label" must match pattern/ },
    { name: 'a label of 33 characters', policy: { enabled: true, vcpus: [{ vcpu: 0, label: 'a'.repeat(33) }] }, path: '/vcpus/0/label', message: /"label"/ },
    { name: 'a label with markup', policy: { enabled: true, vcpus: [{ vcpu: 0, label: '"/><x' }] }, path: '/vcpus/0/label', message: /"label"/ },
    { name: 'a cpuset with junk', policy: { enabled: true, vcpus: [{ vcpu: 0, cpuset: '1;2' }] }, path: '/vcpus/0/cpuset', message: /"cpuset" must match pattern/ },
    { name: 'a reversed cpuset range', policy: { enabled: true, vcpus: [{ vcpu: 0, cpuset: '4-1' }] }, path: '/vcpus/0/cpuset', message: /range "4-1" is reversed/ },
    { name: 'an IOThread cpuset of exclusions only', policy: { enabled: true, hybridIo: { iothreadCpuset: '^3' } }, path: '/hybridIo/iothreadCpuset', message: /only excludes/ },
    { name: 'a vCPU named twice', policy: { enabled: true, vcpus: [{ vcpu: 1 }, { vcpu: 1, label: 'io' }] }, path: '/vcpus/1/vcpu', message: /vCPU 1 is named more than once/ },
    { name: 'a negative vCPU', policy: { enabled: true, vcpus: [{ vcpu: -1 }] }, path: '/vcpus/0/vcpu', message: /"vcpu" must be >= 0/ },
    { name: 'zero IOThreads', policy: { enabled: true, hybridIo: { iothreads: 0 } }, path: '/hybridIo/iothreads', message: /"iothreads" must be >= 1/ },
    { name: 'a string number', policy: { enabled: true, haltPollNs: '100' }, path: '/haltPollNs', message: /"haltPollNs" must be integer/ },
    { name: 'an unknown posted-interrupts mode', policy: { enabled: true, postedInterrupts: 'always' }, path: '/postedInterrupts', message: /one of "required", "preferred"/ },
    { name: 'labeled redirection without a target', policy: { enabled: true, interruptRedirection: { mode: 'labeled' } }, path: '/interruptRedirection/targetLabel', message: /required field "targetLabel"/ },
    {
      name: 'a target label no vCPU carries',
      policy: { enabled: true, vcpus: [{ vcpu: 0, label: 'io' }], interruptRedirection: { mode: 'labeled', targetLabel: 'net' } },
      path: '/interruptRedirection/targetLabel',
      message: /no vCPU carries the label "net"/,
    },
    { name: 'a policy that is not an object', policy: [1], path: '', message: /must be object/ },
  ];
  for (const c of cases) {
    it(`refuses ${c.name} at ${c.path || 'the root'}`, () => {
      const { paths, messages } = refusal(() => validatePolicy(c.policy));
      assert.ok(paths.includes(c.path), `paths ${JSON.stringify(paths)}`);
      assert.ok(messages.some((m) => c.message.test(m)), `messages ${JSON.stringify(messages)}`);
    });
  }

  it('puts the first problem in the message and every problem in the details', () => {
    const policy = { enabled: 'yes', vcpus: [{ vcpu: 0, label: 'A' }] };
    try {
      validatePolicy(policy);
      assert.fail('expected a refusal');
    } catch (err) {
      assert.ok(isEs2Error(err));
      assert.match(err.message, /^invalid policy at \/enabled: "enabled" must be boolean$/);
      assert.deepEqual(err.details.map((d) => d.path), ['/enabled', '/vcpus/0/label']);
    }
  });

  it('prefixes paths of a policy inside a larger document', () => {
    const { paths } = refusal(() => validatePolicy({ enabled: true, extra: 1 }, '/rules/2/policy'));
    assert.deepEqual(paths, ['/rules/2/policy/extra']);
  });
});

describe('validatePolicyLayer', () => {
  it('accepts a layer without enabled, and leaves target labels to the merged policy', () => {
    const layer = { interruptRedirection: { mode: 'labeled', targetLabel: 'io' } };
    assert.deepEqual(validatePolicyLayer(layer), layer);
  });

  it('still refuses unknown fields', () => {
    assert.deepEqual(refusal(() => validatePolicyLayer({ hybridIo: { poll: 1 } })).paths, ['/hybridIo/poll']);
  });
});
