// The domain-XML engine: apply a policy, remove it, plan either. Pure: XML and host facts in, XML
// and a plan out. Every operation first restores what es2 changed before (from the record in the
// es2 metadata element), so applying twice equals applying once, a changed policy replaces the old
// one cleanly, and removal always returns the domain as it was before es2.
import type { Document } from '@xmldom/xmldom';

import { type Layout, decideLayout } from '../policy/decide.js';
import { type HostFacts, LIBVIRT_IOTHREAD_POLL_XML } from '../policy/host-facts.js';
import type { Plan } from '../policy/plan.js';
import type { Policy } from '../policy/types.js';
import { validatePolicy } from '../policy/validate.js';
import { child, children, parseDomainXml, removeTidy, root, serialize } from './dom.js';
import { readDomainShape } from './domain.js';
import { configure, ensureTop } from './configure.js';
import { findEs2Element, readEs2State, writeEs2Element } from './metadata.js';
import { type ChangeRecord, undo } from './record.js';
import { type Es2View, liveOps, persistentChanges, readView } from './view.js';

export interface EngineResult {
  /** The new persistent domain definition. */
  xml: string;
  plan: Plan;
}

/** Takes every es2 change out of a parsed domain. */
function restore(doc: Document): void {
  const el = findEs2Element(doc);
  const state = readEs2State(doc);
  if (el === null || state === null) return;
  removeTidy(el);
  undo(doc, state.record);
  trimIothreadIds(doc, state.iothreadIds);
}

/**
 * libvirt lists every IOThread of a running domain in `<iothreadids>`, also those es2 added live,
 * so that element can outlive the `<iothreads>` count es2's record restores. IOThreads beyond the
 * restored count go, es2's own first and the highest ids first.
 */
function trimIothreadIds(doc: Document, es2Ids: readonly number[]): void {
  const top = root(doc);
  const ids = child(top, 'iothreadids');
  if (ids === null) return;
  const count = Number(child(top, 'iothreads')?.textContent?.trim() ?? '0');
  const entries = children(ids, 'iothread');
  const mine = entries
    .filter((e) => es2Ids.includes(Number(e.getAttribute('id'))))
    .sort((a, b) => Number(b.getAttribute('id')) - Number(a.getAttribute('id')));
  let excess = entries.length - count;
  for (const entry of mine) {
    if (excess <= 0) break;
    removeTidy(entry);
    excess--;
  }
  if (children(ids, 'iothread').length === 0) removeTidy(ids);
}

function makePlan(before: Es2View, after: Es2View, layout: Pick<Layout, 'hostKnobs' | 'es2Kernel' | 'notApplicable' | 'warnings' | 'pollInXml'>, host: HostFacts): Plan {
  const persistent = persistentChanges(before, after);
  return {
    live: liveOps(before, after, host, layout.pollInXml),
    persistent,
    hostKnobs: layout.hostKnobs,
    es2Kernel: layout.es2Kernel,
    notApplicable: layout.notApplicable,
    warnings: layout.warnings,
    noop: persistent.length === 0,
  };
}

/**
 * Applies a policy to a domain definition. A disabled policy removes es2's changes.
 * @param domainXml the domain XML; for live operations that match a running domain, its live XML.
 * @param policy validated here against the schema, then against the domain and host.
 * @throws Es2Error VALIDATION_FAILED (malformed XML, bad policy, vCPU or CPU out of range, a corrupt
 * es2 metadata element) or HOST_UNSUPPORTED (posted interrupts required on a host without them).
 */
export function apply(domainXml: string, policy: unknown, host: HostFacts): EngineResult {
  const valid: Policy = validatePolicy(policy);
  const doc = parseDomainXml(domainXml);
  const before = readView(doc);
  restore(doc);
  const layout = decideLayout(valid, readDomainShape(doc), host);
  if (valid.enabled) {
    const record: ChangeRecord = { created: [], replaced: [] };
    configure(doc, layout, record);
    // Last, so that the record it carries is complete (including a <metadata> es2 created).
    const metadata = ensureTop(doc, 'metadata', record);
    writeEs2Element(metadata, { policy: valid, record, iothreadIds: layout.iothreadIds });
  }
  return { xml: serialize(doc), plan: makePlan(before, readView(doc), layout, host) };
}

/**
 * Removes es2 from a domain definition: the result is the domain as it was before es2 (the same
 * elements, attributes and text). A domain without the es2 element comes back unchanged.
 * @throws Es2Error VALIDATION_FAILED for malformed XML or a corrupt es2 metadata element.
 */
export function remove(domainXml: string, host: HostFacts): EngineResult {
  const doc = parseDomainXml(domainXml);
  const before = readView(doc);
  restore(doc);
  const layout = {
    hostKnobs: [],
    es2Kernel: host.es2Kernel && before.es2State !== null ? { enabled: false } : null,
    notApplicable: [],
    warnings: [],
    pollInXml: host.libvirtVersion >= LIBVIRT_IOTHREAD_POLL_XML,
  };
  return { xml: serialize(doc), plan: makePlan(before, readView(doc), layout, host) };
}

/** The plan of applying a policy, without the new XML. Throws as apply. */
export function plan(domainXml: string, policy: unknown, host: HostFacts): Plan {
  return apply(domainXml, policy, host).plan;
}

/**
 * The live operations that bring a running domain in line with a policy, whatever its persistent
 * definition holds. Pass the live XML: after a start, this is what src/reconcile/ re-applies
 * (before libvirt 9.4 at least the IOThread poll parameters, which libvirt does not keep).
 */
export function livePlan(liveXml: string, policy: unknown, host: HostFacts): Plan['live'] {
  return apply(liveXml, policy, host).plan.live;
}
