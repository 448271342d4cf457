// The configurators: each writes one part of a Layout into the domain and records what it created
// or replaced. They run on a domain es2 has restored first, so the record always describes the
// domain as it was before es2.
import type { Document, Element } from '@xmldom/xmldom';

import { formatCpuset } from '../policy/cpuset.js';
import type { Layout } from '../policy/decide.js';
import { child, childWith, createElement, insertAfter, insertOrdered, root, setText } from './dom.js';
import { CPUTUNE_ORDER, DOMAIN_ORDER, diskTarget, iothreadIds, virtioDisks } from './domain.js';
import { type ChangeRecord, previousValues } from './record.js';

// virDomainDiskDefFormat: <driver> comes first, before <source> and <target>.
const DISK_ORDER = ['driver', 'source', 'backingStore', 'backenddomain', 'geometry', 'blockio', 'target'] as const;

/**
 * Returns `existing` after recording its previous values, or creates the element (`create` inserts
 * it) and records it as created.
 */
function edit(record: ChangeRecord, kind: string, identity: Record<string, string>, existing: Element | null, create: () => Element): Element {
  if (existing !== null) {
    record.replaced.push({ kind, attrs: { ...identity, ...previousValues(kind, existing) } });
    return existing;
  }
  record.created.push({ kind, attrs: identity });
  return create();
}

function createTop(doc: Document, name: (typeof DOMAIN_ORDER)[number]): Element {
  const el = createElement(doc, name);
  insertOrdered(root(doc), el, DOMAIN_ORDER);
  return el;
}

/** A top-level element of <domain>, created in libvirt's order when missing. */
export function ensureTop(doc: Document, name: (typeof DOMAIN_ORDER)[number], record: ChangeRecord): Element {
  const existing = child(root(doc), name);
  if (existing !== null) return existing;
  record.created.push({ kind: name, attrs: {} });
  return createTop(doc, name);
}

const byNumber = (attr: string) => (el: Element): number => Number(el.getAttribute(attr));

function setPin(doc: Document, record: ChangeRecord, kind: 'vcpupin' | 'iothreadpin', idAttr: 'vcpu' | 'iothread', id: number, cpus: number[]): void {
  const cputune = ensureTop(doc, 'cputune', record);
  const identity = { [idAttr]: String(id) };
  const pin = edit(record, kind, identity, childWith(cputune, kind, idAttr, String(id)), () => {
    const el = createElement(doc, kind, identity);
    insertOrdered(cputune, el, CPUTUNE_ORDER, byNumber(idAttr));
    return el;
  });
  pin.setAttribute('cpuset', formatCpuset(cpus));
}

function configureVcpuPins(doc: Document, layout: Layout, record: ChangeRecord): void {
  for (const { vcpu, cpus } of layout.vcpuPins) setPin(doc, record, 'vcpupin', 'vcpu', vcpu, cpus);
}

/** `<iothreads>` counts them all; `<iothreadids>` lists them when the domain uses it, or when poll needs it. */
function configureIothreads(doc: Document, layout: Layout, record: ChangeRecord): void {
  if (layout.iothreadIds.length === 0) return;
  const existing = iothreadIds(doc);
  const all = [...new Set([...existing, ...layout.iothreadIds])].sort((a, b) => a - b);
  const count = child(root(doc), 'iothreads');
  if (count === null || existing.length < all.length) {
    setText(edit(record, 'iothreads', {}, count, () => createTop(doc, 'iothreads')), String(all.length));
  }
  const insertId = (ids: Element, id: number): void =>
    insertOrdered(ids, createElement(doc, 'iothread', { id: String(id) }), ['iothread'], byNumber('id'));
  const ids = child(root(doc), 'iothreadids');
  if (ids !== null) {
    for (const id of layout.addedIothreadIds) {
      record.created.push({ kind: 'iothread', attrs: { id: String(id) } });
      insertId(ids, id);
    }
  } else if (layout.pollInXml && layout.poll !== null) {
    // The ids of a created <iothreadids> need no entries: removing the container removes them.
    const created = ensureTop(doc, 'iothreadids', record);
    for (const id of all) insertId(created, id);
  }
}

function configureIothreadPins(doc: Document, layout: Layout, record: ChangeRecord): void {
  if (layout.iothreadCpus === null) return;
  for (const id of layout.iothreadIds) setPin(doc, record, 'iothreadpin', 'iothread', id, layout.iothreadCpus);
}

/** `<poll max grow shrink>` under `<iothread>`: libvirt >= 9.4 only (before, poll is set live). */
function configurePoll(doc: Document, layout: Layout, record: ChangeRecord): void {
  const poll = layout.poll;
  if (!layout.pollInXml || poll === null) return;
  for (const id of layout.iothreadIds) {
    const thread = childWith(child(root(doc), 'iothreadids'), 'iothread', 'id', String(id)) as Element;
    const el = edit(record, 'poll', { iothread: String(id) }, child(thread, 'poll'), () => {
      const created = createElement(doc, 'poll');
      insertAfter(thread, created, null);
      return created;
    });
    if (poll.pollMaxNs !== undefined) el.setAttribute('max', String(poll.pollMaxNs));
    if (poll.pollGrow !== undefined) el.setAttribute('grow', String(poll.pollGrow));
    if (poll.pollShrink !== undefined) el.setAttribute('shrink', String(poll.pollShrink));
  }
}

/** `<driver iothread=>` on virtio disks: takes effect at the next start. */
function configureDisks(doc: Document, layout: Layout, record: ChangeRecord): void {
  const disks = virtioDisks(doc);
  for (const { disk, iothread } of layout.diskIothreads) {
    const diskEl = disks.find((d) => diskTarget(d) === disk) as Element;
    const driver = edit(record, 'driver', { disk }, child(diskEl, 'driver'), () => {
      const el = createElement(doc, 'driver', { name: 'qemu' });
      insertOrdered(diskEl, el, DISK_ORDER);
      return el;
    });
    driver.setAttribute('iothread', String(iothread));
  }
}

/** Writes a layout into a domain that carries no es2 changes, recording each change. */
export function configure(doc: Document, layout: Layout, record: ChangeRecord): void {
  configureVcpuPins(doc, layout, record);
  // IOThreads exist before anything pins, polls or assigns disks to them.
  configureIothreads(doc, layout, record);
  configureIothreadPins(doc, layout, record);
  configurePoll(doc, layout, record);
  configureDisks(doc, layout, record);
}
