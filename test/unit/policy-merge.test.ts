import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';

import { type ErrorDetail, isEs2Error } from '../../src/errors/index.js';
import { EXTRA_SPECS, policyFromExtraSpecs, specPath } from '../../src/policy/extra-specs.js';
import { type FlavorRule, matchFlavorRule, mergePolicy } from '../../src/policy/merge.js';
import { readNovaInstance } from '../../src/xml/nova.js';
import { fixture } from '../helpers/paths.js';

function details(fn: () => unknown): ErrorDetail[] {
  try {
    fn();
  } catch (err) {
    assert.ok(isEs2Error(err, 'VALIDATION_FAILED'), `expected VALIDATION_FAILED, got ${String(err)}`);
    return err.details;
  }
  assert.fail('expected a refusal');
}

const novaPinned = readFileSync(fixture('domains', 'nova-pinned.xml'), 'utf8');

describe('readNovaInstance', () => {
  it('reads the instance, owner and flavor with its extra specs', () => {
    const nova = readNovaInstance(novaPinned);
    assert.equal(nova?.name, 'memcached-01');
    assert.deepEqual(nova?.project, { uuid: '9f1e3d5b-7a2c-4e6f-8b1d-3c5a7e9f2b40', name: 'cache-team' });
    assert.deepEqual(nova?.user, { uuid: '4c8a2e6f-1b3d-4f5a-9e7c-8d2b6a4f1e03', name: 'alice' });
    assert.equal(nova?.flavor?.name, 'm1.es2-io');
    assert.equal(nova?.flavor?.extraSpecs['hw:cpu_policy'], 'dedicated');
    assert.equal(nova?.flavor?.extraSpecs['es2:vcpu_labels'], '0:io,1:io,2:compute,3:compute');
  });

  it('gives an empty spec map for a flavor without extra specs (before Nova 32)', () => {
    const nova = readNovaInstance(readFileSync(fixture('domains', 'nova-unpinned.xml'), 'utf8'));
    assert.deepEqual(nova?.flavor, { name: 'm1.small', extraSpecs: {} });
  });

  it('gives null for a domain Nova did not create', () => {
    assert.equal(readNovaInstance(readFileSync(fixture('domains', 'virsh-dumpxml.xml'), 'utf8')), null);
  });
});

describe('policyFromExtraSpecs', () => {
  it('turns the es2 specs of the Nova fixture into a policy layer, ignoring hw: specs', () => {
    const specs = readNovaInstance(novaPinned)?.flavor?.extraSpecs ?? {};
    assert.deepEqual(policyFromExtraSpecs(specs), {
      enabled: true,
      vcpus: [{ vcpu: 0, label: 'io' }, { vcpu: 1, label: 'io' }, { vcpu: 2, label: 'compute' }, { vcpu: 3, label: 'compute' }],
      hybridIo: { iothreads: 1, pollMaxNs: 32768 },
      interruptRedirection: { mode: 'labeled', targetLabel: 'io' },
      postedInterrupts: 'preferred',
    });
  });

  it('maps every documented spec', () => {
    const layer = policyFromExtraSpecs({
      'es2:enabled': 'False', 'es2:poll_grow': '2', 'es2:poll_shrink': '3', 'es2:halt_poll_ns': '1000',
      'es2:kick_rate_threshold': '20000', 'es2:idle_timeout_us': '50', 'es2:redirect': 'running',
    });
    assert.deepEqual(layer, {
      enabled: false,
      hybridIo: { pollGrow: 2, pollShrink: 3, kickRateThreshold: 20000, idleTimeoutUs: 50 },
      haltPollNs: 1000,
      interruptRedirection: { mode: 'running' },
    });
    assert.equal(Object.keys(EXTRA_SPECS).length, 12);
  });

  it('gives null for a flavor without es2 specs', () => {
    assert.equal(policyFromExtraSpecs({ 'hw:cpu_policy': 'dedicated' }), null);
  });

  const bad: { specs: Record<string, string>; spec: string; message: RegExp }[] = [
    { specs: { 'es2:poll_max_ns': 'fast' }, spec: 'es2:poll_max_ns', message: /must be integer/ },
    { specs: { 'es2:poll_max_ns': '-1' }, spec: 'es2:poll_max_ns', message: /must be >= 0/ },
    { specs: { 'es2:enabled': 'maybe' }, spec: 'es2:enabled', message: /must be boolean/ },
    { specs: { 'es2:vcpu_labels': '0:io,1' }, spec: 'es2:vcpu_labels', message: /"1" is not VCPU:LABEL/ },
    { specs: { 'es2:vcpu_labels': '0:IO' }, spec: 'es2:vcpu_labels', message: /"label" must match pattern/ },
    { specs: { 'es2:vcpu_labels': '0:io,0:net' }, spec: 'es2:vcpu_labels', message: /named more than once/ },
    { specs: { 'es2:redirect': 'sometimes' }, spec: 'es2:redirect', message: /must be one of/ },
    { specs: { 'es2:redirect_label': 'io' }, spec: 'es2:redirect', message: /required field "mode"/ },
    { specs: { 'es2:iothreads': '0' }, spec: 'es2:iothreads', message: /must be >= 1/ },
    { specs: { 'es2:turbo': 'on' }, spec: 'es2:turbo', message: /unknown es2 extra spec/ },
  ];
  for (const c of bad) {
    it(`refuses ${JSON.stringify(c.specs)} naming ${c.spec}`, () => {
      const found = details(() => policyFromExtraSpecs(c.specs));
      assert.equal(found[0]?.path, specPath(c.spec));
      assert.ok(found[0]?.message.startsWith(`${c.spec}: `), found[0]?.message);
      assert.match(found[0]?.message ?? '', c.message);
    });
  }
});

describe('matchFlavorRule', () => {
  const rules: FlavorRule[] = [
    { flavor: 'm1.small', policy: { enabled: false } },
    { flavor: 'm1.*', policy: { enabled: true, haltPollNs: 1000 } },
    { flavor: '*.io', policy: { enabled: true, extra: true } },
  ];

  it('takes the first rule that matches, exact name or glob', () => {
    assert.deepEqual(matchFlavorRule(rules, 'm1.small'), { enabled: false });
    assert.deepEqual(matchFlavorRule(rules, 'm1.large'), { enabled: true, haltPollNs: 1000 });
    assert.equal(matchFlavorRule(rules, 'c1.small'), null);
    assert.equal(matchFlavorRule(rules, undefined), null);
  });

  it('treats regex characters in patterns literally', () => {
    assert.equal(matchFlavorRule([{ flavor: 'm1.s', policy: {} }], 'm1xs'), null);
  });

  it('validates the matched rule with a path into the config', () => {
    assert.deepEqual(details(() => matchFlavorRule(rules, 'c5.io')).map((d) => d.path), ['/rules/2/policy/extra']);
  });
});

describe('mergePolicy', () => {
  const flavor = { name: 'm1.es2-io', extraSpecs: { 'es2:vcpu_labels': '0:io,1:compute', 'es2:poll_max_ns': '1000', 'es2:halt_poll_ns': '5' } };
  const rules: FlavorRule[] = [{ flavor: 'm1.*', policy: { enabled: true, postedInterrupts: 'preferred', haltPollNs: 7, vcpus: [{ vcpu: 3, label: 'cfg' }] } }];

  it('takes each top-level field from the strongest source and merges vCPUs one by one', () => {
    const api = { enabled: true, vcpus: [{ vcpu: 1, cpuset: '4' }], hybridIo: { iothreads: 2 } };
    assert.deepEqual(mergePolicy({ api, flavor, rules }), {
      policy: {
        enabled: true,
        vcpus: [{ vcpu: 0, label: 'io' }, { vcpu: 1, cpuset: '4' }, { vcpu: 3, label: 'cfg' }],
        hybridIo: { iothreads: 2 },
        postedInterrupts: 'preferred',
        haltPollNs: 5,
      },
      sources: { enabled: 'api', vcpus: ['flavor', 'api', 'config'], hybridIo: 'api', postedInterrupts: 'config', haltPollNs: 'flavor' },
    });
  });

  it('lets a weaker source enable es2 when the stronger ones do not say', () => {
    const merged = mergePolicy({ flavor, rules });
    assert.equal(merged?.policy.enabled, true);
    assert.equal(merged?.sources.enabled, 'config');
    assert.deepEqual(merged?.policy.hybridIo, { pollMaxNs: 1000 });
  });

  it('leaves es2 off (source default) when only settings come in', () => {
    assert.deepEqual(mergePolicy({ flavor }), {
      policy: { enabled: false, vcpus: [{ vcpu: 0, label: 'io' }, { vcpu: 1, label: 'compute' }], hybridIo: { pollMaxNs: 1000 }, haltPollNs: 5 },
      sources: { enabled: 'default', vcpus: ['flavor', 'flavor'], hybridIo: 'flavor', haltPollNs: 'flavor' },
    });
  });

  it('gives null when no source says anything', () => {
    assert.equal(mergePolicy({}), null);
    assert.equal(mergePolicy({ api: null, flavor: { name: 'x', extraSpecs: {} }, rules }), null);
  });

  it('refuses a merge whose redirection target no merged vCPU carries', () => {
    const api = { enabled: true, vcpus: [{ vcpu: 0, cpuset: '2' }], interruptRedirection: { mode: 'labeled' as const, targetLabel: 'io' } };
    const found = details(() => mergePolicy({ api, flavor: { extraSpecs: { 'es2:vcpu_labels': '0:io' } } }));
    assert.deepEqual(found.map((d) => d.path), ['/interruptRedirection/targetLabel']);
  });
});
