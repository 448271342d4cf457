// xml-apply: es2's domain-XML apply on a Nova-size domain (the pinned Nova guest fixture, with the
// DESIGN.md example policy over its flavor's es2:* extra specs) over a plain parse + serialize of
// the same XML with the same library (@xmldom/xmldom). Pure: no libvirt.
import { readFileSync } from 'node:fs';

import { mergePolicy, type HostFacts, type Policy } from '../src/policy/index.js';
import { apply, readNovaInstance } from '../src/xml/index.js';
import { parseXml, serialize } from '../src/xml/dom.js';
import { fixture } from '../test/helpers/paths.js';
import type { Bench } from './bench.js';
import { alternate, median, msPerCall, ratioOfMedians, spread } from './measure.js';

// Calls per timed measurement: one apply is well under a millisecond.
const BATCH = 50;

/** A 16-CPU libvirt 9.0 host with posted interrupts, as the golden fixtures are made for. */
const HOST: HostFacts = { cpus: [...Array(16).keys()], libvirtVersion: 9_000_000, es2Kernel: false, postedInterrupts: true, haltPollKnob: true };

export const xmlApply: Bench = {
  name: 'xml-apply',
  rows: ['xml-apply'],
  async run(ctx) {
    const xml = readFileSync(fixture('domains', 'nova-pinned.xml'), 'utf8');
    const api = JSON.parse(readFileSync(fixture('policies', 'design-example.json'), 'utf8')) as Policy;
    const merged = mergePolicy({ api, flavor: readNovaInstance(xml)?.flavor ?? null });
    if (merged === null) throw new Error('the design example policy merged to nothing');
    const policy = merged.policy;
    const out = apply(xml, policy, HOST);
    if (out.plan.noop) throw new Error('apply changed nothing: the benchmark would time a no-op');
    const alt = await alternate(
      { run: () => msPerCall(() => apply(xml, policy, HOST), BATCH) },
      { run: () => msPerCall(() => serialize(parseXml(xml, 'domain XML')), BATCH) },
      { rounds: ctx.quick ? 15 : 60, warmup: 5 },
    );
    const us = (x: number): string => `${(x * 1000).toFixed(0)} µs`;
    return [{
      name: 'xml-apply',
      ratio: ratioOfMedians(alt),
      anchor: 'parseXml + serialize of the same domain XML (@xmldom/xmldom)',
      detail: `apply ${us(median(alt.subject))} vs parse+serialize ${us(median(alt.anchor))} (means of ${BATCH} calls); ${spread(alt)}; `
        + `nova-pinned.xml ${xml.length} bytes -> ${out.xml.length} bytes, design-example.json policy`,
      goal: { op: '<=', value: 2.0, text: '<= 2.0' },
    }];
  },
};
