import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';

import { bin, fixture } from '../helpers/paths.js';
import { assertXmlEqual } from '../helpers/xml-match.js';

interface Run { status: number | null; stdout: string; stderr: string }

function es2ctl(args: string[], input?: string): Run {
  const run = spawnSync(process.execPath, [bin.es2ctl, ...args], { input: input ?? '', encoding: 'utf8', timeout: 30_000 });
  return { status: run.status, stdout: run.stdout, stderr: run.stderr };
}

const domain = (name: string): string => fixture('domains', `${name}.xml`);
const policy = (name: string): string => fixture('policies', name);
const HOST = ['--host-cpus', '0-15', '--posted-interrupts', 'yes'];

describe('es2ctl xml', () => {
  it('apply prints the golden XML and says on stderr what cannot act on this host', () => {
    const run = es2ctl(['xml', 'apply', '--policy', policy('design-example.json'), ...HOST, domain('nova-pinned')]);
    assert.equal(run.status, 0, run.stderr);
    assertXmlEqual(run.stdout, readFileSync(domain('nova-pinned.applied'), 'utf8'));
    assert.match(run.stderr, /not applied: \/hybridIo\/kickRateThreshold: not applicable on this host: needs the ES2 kernel interface/);
  });

  it('apply reads a YAML policy and the XML from stdin, remove gives the original back', () => {
    const original = readFileSync(domain('iothreadids'), 'utf8');
    const applied = es2ctl(['xml', 'apply', '--policy', policy('two-iothreads.yaml'), ...HOST, '--libvirt-version', '9.4.0', '-'], original);
    assert.equal(applied.status, 0, applied.stderr);
    assertXmlEqual(applied.stdout, readFileSync(domain('iothreadids.applied'), 'utf8'));
    const removed = es2ctl(['xml', 'remove'], applied.stdout);
    assert.equal(removed.status, 0, removed.stderr);
    assertXmlEqual(removed.stdout, original);
  });

  it('plan -o json prints the effective policy with its sources and the plan', () => {
    const run = es2ctl(['-o', 'json', 'xml', 'plan', '--policy', policy('design-example.json'), ...HOST, domain('nova-pinned')]);
    assert.equal(run.status, 0, run.stderr);
    const out = JSON.parse(run.stdout) as { policy: { sources: { enabled: string; vcpus: string[] } }; plan: { live: { op: string }[]; noop: boolean } };
    assert.deepEqual(out.policy.sources.vcpus, ['api', 'api', 'flavor', 'flavor']);
    assert.deepEqual(out.plan.live.map((op) => op.op), ['iothread-add', 'iothread-pin', 'iothread-poll', 'vcpu-pin', 'vcpu-pin', 'metadata-set']);
    assert.equal(out.plan.noop, false);
  });

  it('plan prints a table by default', () => {
    const run = es2ctl(['xml', 'plan', '--policy', policy('two-iothreads.yaml'), ...HOST, domain('virsh-dumpxml')]);
    assert.equal(run.status, 0, run.stderr);
    assert.match(run.stdout, /live operations, in order:\n {2}1\. iothread-add id=1\n {2}2\. iothread-add id=2\n {2}3\. iothread-pin id=1 cpus=6-7/);
    assert.match(run.stdout, /noop: no\n$/);
  });

  const failures: { name: string; args: string[]; code: string }[] = [
    { name: 'a vCPU beyond <vcpu>', args: ['xml', 'apply', '--policy', policy('vcpu-7.json'), ...HOST, domain('qemu-commandline')], code: 'VALIDATION_FAILED' },
    { name: 'CPUs the host lacks', args: ['xml', 'apply', '--policy', policy('design-example.json'), '--host-cpus', '0-3', domain('nova-unpinned')], code: 'VALIDATION_FAILED' },
    { name: 'required posted interrupts on a host without', args: ['xml', 'plan', '--policy', policy('design-example.json'), '--host-cpus', '0-15', '--posted-interrupts', 'no', domain('nova-unpinned')], code: 'HOST_UNSUPPORTED' },
    { name: 'a missing policy file', args: ['xml', 'apply', '--policy', '/nonexistent/policy.json', domain('nova-unpinned')], code: 'VALIDATION_FAILED' },
    { name: 'a missing domain file', args: ['xml', 'remove', '/nonexistent/domain.xml'], code: 'VALIDATION_FAILED' },
  ];
  for (const f of failures) {
    it(`exits 1 printing ${f.code} for ${f.name}`, () => {
      const run = es2ctl(f.args);
      assert.equal(run.status, 1, run.stderr);
      assert.match(run.stderr, new RegExp(`^es2ctl: ${f.code}: `));
      assert.equal(run.stdout, '');
    });
  }

  it('exits 1 printing VALIDATION_FAILED for malformed XML on stdin', () => {
    const run = es2ctl(['xml', 'remove', '-'], '<domain><vcpu>2</domain>');
    assert.equal(run.status, 1);
    assert.match(run.stderr, /^es2ctl: VALIDATION_FAILED: malformed domain XML/);
  });

  const usage: { name: string; args: string[] }[] = [
    { name: 'apply without --policy', args: ['xml', 'apply', domain('nova-unpinned')] },
    { name: 'a bad --host-cpus', args: ['xml', 'apply', '--policy', policy('two-iothreads.yaml'), '--host-cpus', '3-1', domain('nova-unpinned')] },
    { name: 'a bad --libvirt-version', args: ['xml', 'plan', '--policy', policy('two-iothreads.yaml'), '--libvirt-version', '9.4', domain('nova-unpinned')] },
    { name: 'a bad --posted-interrupts', args: ['xml', 'plan', '--policy', policy('two-iothreads.yaml'), '--posted-interrupts', 'maybe', domain('nova-unpinned')] },
    { name: 'a bad -o', args: ['-o', 'yaml', 'xml', 'plan', '--policy', policy('two-iothreads.yaml'), domain('nova-unpinned')] },
    { name: 'an unknown option', args: ['xml', 'remove', '--frobnicate'] },
  ];
  for (const u of usage) {
    it(`exits 2 for ${u.name}`, () => {
      const run = es2ctl(u.args);
      assert.equal(run.status, 2, run.stderr);
      assert.equal(run.stdout, '');
    });
  }
});
