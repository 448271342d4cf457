import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';

import { DOMParser, type Element } from '@xmldom/xmldom';
import { parse as parseYaml } from 'yaml';

import { mergePolicy } from '../../src/policy/merge.js';
import type { HostFacts } from '../../src/policy/host-facts.js';
import type { Policy } from '../../src/policy/types.js';
import { parseDomainXml, serialize } from '../../src/xml/dom.js';
import { apply, livePlan, plan, remove } from '../../src/xml/engine.js';
import { ES2_NS, es2MetadataXml, readEs2State, readRecordedPolicy, writeEs2Element } from '../../src/xml/metadata.js';
import { readNovaInstance } from '../../src/xml/nova.js';
import { fixture } from '../helpers/paths.js';
import { assertXmlEqual } from '../helpers/xml-match.js';

interface Golden { domain: string; policy: string; libvirtVersion: string }

const goldens = JSON.parse(readFileSync(fixture('domains', 'goldens.json'), 'utf8')) as Golden[];
const domainXml = (name: string): string => readFileSync(fixture('domains', `${name}.xml`), 'utf8');
const policyFile = (name: string): unknown => parseYaml(readFileSync(fixture('policies', name), 'utf8'));

function host(libvirtVersion = '9.0.0'): HostFacts {
  const [major, minor, micro] = libvirtVersion.split('.').map(Number) as [number, number, number];
  return { cpus: [...Array(16).keys()], libvirtVersion: major * 1e6 + minor * 1e3 + micro, es2Kernel: false, postedInterrupts: true, haltPollKnob: true };
}

/** The policy es2d would apply: the file as the API policy over the domain's flavor extra specs. */
function effective(xml: string, file: string): Policy {
  const merged = mergePolicy({ api: policyFile(file) as Policy, flavor: readNovaInstance(xml)?.flavor ?? null });
  assert.ok(merged);
  return merged.policy;
}

describe('apply on the golden fixtures', () => {
  for (const g of goldens) {
    describe(`${g.domain} with ${g.policy} on libvirt ${g.libvirtVersion}`, () => {
      const original = domainXml(g.domain);
      const policy = effective(original, g.policy);
      const result = apply(original, policy, host(g.libvirtVersion));

      it('gives the golden XML', () => {
        const regenerate = `node dist/src/cli/main.js xml apply --policy test/fixtures/policies/${g.policy} --host-cpus 0-15 `
          + `--libvirt-version ${g.libvirtVersion} --posted-interrupts yes test/fixtures/domains/${g.domain}.xml`;
        assertXmlEqual(result.xml, domainXml(`${g.domain}.applied`), `differs from ${g.domain}.applied.xml (made by: ${regenerate})`);
      });

      it('is undone by remove', () => {
        assertXmlEqual(remove(result.xml, host(g.libvirtVersion)).xml, original);
      });

      it('changes nothing when applied again', () => {
        const again = apply(result.xml, policy, host(g.libvirtVersion));
        assert.equal(again.xml, result.xml);
        assert.equal(again.plan.noop, true);
        assert.deepEqual(again.plan.persistent, []);
      });

      it('records the policy in the es2 metadata element', () => {
        assert.deepEqual(readRecordedPolicy(result.xml), policy);
        assert.equal(readRecordedPolicy(original), null);
      });
    });
  }
});

describe('plans', () => {
  const original = domainXml('nova-pinned');
  const policy = effective(original, 'design-example.json');

  it('orders live operations: IOThreads (add, pin, poll), vCPU pins, metadata last', () => {
    const { live } = plan(original, policy, host());
    assert.deepEqual(live.map((op) => op.op), ['iothread-add', 'iothread-pin', 'iothread-poll', 'vcpu-pin', 'vcpu-pin', 'metadata-set']);
    assert.deepEqual(live[1], { op: 'iothread-pin', id: 1, cpus: [5] });
    assert.deepEqual(live[2], { op: 'iothread-poll', id: 1, pollMaxNs: 32768, pollGrow: 2, pollShrink: 2 });
    assert.deepEqual(live[3], { op: 'vcpu-pin', vcpu: 0, cpus: [2] });
    const last = live[5];
    assert.ok(last?.op === 'metadata-set');
    assert.equal(last.xml, es2MetadataXml(apply(original, policy, host()).xml));
  });

  it('lists persistent changes with their values', () => {
    const { persistent } = plan(original, policy, host());
    assert.deepEqual(persistent.find((c) => c.path === "/domain/cputune/vcpupin[@vcpu='0']"), {
      path: "/domain/cputune/vcpupin[@vcpu='0']", action: 'set', before: '8', after: '2',
    });
    assert.deepEqual(persistent.find((c) => c.path.startsWith('/domain/devices')), {
      path: "/domain/devices/disk[target/@dev='vda']/driver/@iothread", action: 'add', after: '1',
    });
  });

  it('re-sets only the poll parameters libvirt < 9.4 forgets on an applied domain', () => {
    const applied = apply(original, policy, host()).xml;
    const again = plan(applied, policy, host());
    assert.equal(again.noop, true);
    assert.deepEqual(again.live, [{ op: 'iothread-poll', id: 1, pollMaxNs: 32768, pollGrow: 2, pollShrink: 2 }]);
    assert.deepEqual(livePlan(applied, policy, host()), again.live);
  });

  it('has nothing left to do on an applied domain from libvirt 9.4 on, where <poll> is in the XML', () => {
    const applied = apply(original, policy, host('9.4.0')).xml;
    assert.match(applied, /<poll max="32768" grow="2" shrink="2"\/>/);
    assert.deepEqual(plan(applied, policy, host('9.4.0')).live, []);
  });

  it('gives every live operation for a running domain whose definition lost es2 (Nova hard reboot)', () => {
    assert.deepEqual(livePlan(original, policy, host()), plan(original, policy, host()).live);
  });

  it('restores live state on removal: pins back, added IOThreads deleted, metadata removed last', () => {
    const applied = apply(original, policy, host()).xml;
    const { live } = remove(applied, host()).plan;
    assert.deepEqual(live, [
      { op: 'iothread-del', id: 1 },
      { op: 'vcpu-pin', vcpu: 0, cpus: [8] },
      { op: 'vcpu-pin', vcpu: 1, cpus: [9] },
      { op: 'metadata-remove', key: 'es2', uri: ES2_NS },
    ]);
  });

  it('unpins to <vcpu cpuset> and resets QEMU poll defaults when a pre-existing IOThread stops being polled', () => {
    const xml = domainXml('nova-unpinned');
    const applied = apply(xml, { enabled: true, vcpus: [{ vcpu: 0, cpuset: '3' }] }, host()).xml;
    assert.deepEqual(remove(applied, host()).plan.live.filter((op) => op.op === 'vcpu-pin'), [{ op: 'vcpu-pin', vcpu: 0, cpus: [0, 1, 2, 3, 4, 5, 6, 7] }]);
    const threads = domainXml('iothreadids');
    const polled = apply(threads, { enabled: true, hybridIo: { pollMaxNs: 4000 } }, host('9.4.0')).xml;
    assert.deepEqual(remove(polled, host('9.4.0')).plan.live.filter((op) => op.op === 'iothread-poll'), [
      { op: 'iothread-poll', id: 1, pollMaxNs: 32768, pollGrow: 0, pollShrink: 0 },
      { op: 'iothread-poll', id: 2, pollMaxNs: 32768, pollGrow: 0, pollShrink: 0 },
    ]);
  });

  it('lists settings that cannot act on this host and keeps halt polling as a host knob', () => {
    const p = plan(original, policy, host());
    assert.deepEqual(p.notApplicable.map((n) => n.setting), ['/hybridIo/kickRateThreshold', '/hybridIo/idleTimeoutUs', '/interruptRedirection', '/hybridIo']);
    assert.deepEqual(p.hostKnobs, [{ knob: 'halt_poll_ns', value: 200000 }]);
    const es2 = plan(original, policy, { ...host(), es2Kernel: true });
    assert.deepEqual(es2.es2Kernel, { enabled: true, kickRateThreshold: 20000, idleTimeoutUs: 50, redirect: 'labeled', redirectVcpus: [0], haltPollNs: 200000 });
  });
});

describe('changing and disabling policies', () => {
  for (const g of goldens) {
    it(`replaces one policy by another cleanly on ${g.domain}`, () => {
      const original = domainXml(g.domain);
      const first = apply(original, { enabled: true, vcpus: [{ vcpu: 0, cpuset: '9' }], hybridIo: { iothreads: 3, iothreadCpuset: '1' } }, host(g.libvirtVersion)).xml;
      const second = effective(original, g.policy);
      assertXmlEqual(apply(first, second, host(g.libvirtVersion)).xml, domainXml(`${g.domain}.applied`));
      assertXmlEqual(remove(apply(first, second, host(g.libvirtVersion)).xml, host(g.libvirtVersion)).xml, original);
    });
  }

  it('removes es2 when the policy is disabled', () => {
    const original = domainXml('virsh-dumpxml');
    const applied = apply(original, policyFile('two-iothreads.yaml'), host()).xml;
    const disabled = apply(applied, { enabled: false }, host());
    assertXmlEqual(disabled.xml, original);
    assert.equal(disabled.plan.live.at(-1)?.op, 'metadata-remove');
  });

  it('gives back a domain without es2 unchanged, with nothing to do', () => {
    const original = domainXml('qemu-commandline');
    const result = remove(original, host());
    assertXmlEqual(result.xml, original);
    assert.equal(result.plan.noop, true);
    assert.deepEqual(result.plan.live, []);
  });
});

describe('the es2 metadata element', () => {
  const original = domainXml('nova-pinned');
  const policy = effective(original, 'design-example.json');
  const applied = apply(original, policy, host()).xml;

  it('is one element in urn:x-es2:policy:1, the last child of <metadata>, after Nova', () => {
    const doc = new DOMParser().parseFromString(applied, 'text/xml');
    const metadata = doc.getElementsByTagName('metadata')[0];
    const elements = [...(metadata?.childNodes ?? [])].filter((n) => n.nodeType === 1) as unknown as Element[];
    assert.deepEqual(elements.map((el) => el.namespaceURI), ['http://openstack.org/xmlns/libvirt/nova/1.1', ES2_NS]);
    assert.match(applied, /<es2:policy [^>]*xmlns:es2="urn:x-es2:policy:1"/);
  });

  it('is handed to virDomainSetMetadata without a namespace (libvirt adds it, and refuses a declared prefix)', () => {
    const xml = es2MetadataXml(applied) ?? '';
    assert.match(xml, /^<policy[ >]/);
    assert.doesNotMatch(xml, /xmlns|es2:/);
  });

  it('gives its policy back from the element alone, as virDomainGetMetadata returns it', () => {
    assert.deepEqual(readRecordedPolicy(es2MetadataXml(applied) ?? ''), policy);
  });

  it('is read back whatever prefix and formatting libvirt gives it', () => {
    const element = /<es2:policy[\s\S]*<\/es2:policy>/.exec(applied)?.[0] ?? '';
    assert.ok(element.length > 0);
    // Another prefix, the namespace declared on <domain>, no indentation inside the element.
    const reformatted = element.replace(' xmlns:es2="urn:x-es2:policy:1"', '').replace(/es2:/g, 'lv:').replace(/>\s+</g, '><');
    const relabeled = applied.replace(element, reformatted).replace('<domain type="kvm">', '<domain type="kvm" xmlns:lv="urn:x-es2:policy:1">');
    assert.notEqual(relabeled, applied);
    assert.deepEqual(readRecordedPolicy(relabeled), policy);
    assertXmlEqual(remove(relabeled, host()).xml, original);
    assert.equal(plan(relabeled, policy, host()).noop, true);
  });

  it('cannot be turned into markup by strings it carries', () => {
    const payload = '</es2:spec><es2:created><es2:cputune/></es2:created><!--';
    const doc = parseDomainXml(domainXml('qemu-commandline'));
    const metadata = doc.createElementNS(null, 'metadata');
    doc.documentElement?.appendChild(metadata);
    const hostile = { enabled: true, vcpus: [{ vcpu: 0, label: payload }] } as Policy;
    writeEs2Element(metadata, { policy: hostile, record: { created: [], replaced: [{ kind: 'driver', attrs: { disk: `"/><evil a="` } }] }, iothreadIds: [] });
    const reparsed = new DOMParser().parseFromString(serialize(doc), 'text/xml');
    const spec = reparsed.getElementsByTagNameNS(ES2_NS, 'spec');
    assert.equal(spec.length, 1);
    assert.equal(reparsed.getElementsByTagNameNS(ES2_NS, 'created').length, 0);
    assert.equal(reparsed.getElementsByTagName('evil').length, 0);
    assert.deepEqual(JSON.parse(spec[0]?.textContent ?? ''), hostile);
    assert.equal(reparsed.getElementsByTagNameNS(ES2_NS, 'driver')[0]?.getAttribute('disk'), `"/><evil a="`);
    // Reading refuses the hostile label: a policy from metadata passes the same validation.
    assert.throws(() => readEs2State(parseDomainXml(serialize(doc))), /"label" must match pattern/);
  });
});
