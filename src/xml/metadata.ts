// The es2 metadata element: exactly one element in namespace urn:x-es2:policy:1 under <metadata>.
// It carries the policy (JSON text) and the change record, and is what src/apply/ hands to
// virDomainSetMetadata(key `es2`, uri urn:x-es2:policy:1). libvirt re-serializes it (indentation,
// where xmlns is declared, even the prefix), so reading goes by namespace and local name only.
//
//   <es2:policy xmlns:es2="urn:x-es2:policy:1" iothreads="1-2">
//     <es2:spec>{"enabled":true,...}</es2:spec>
//     <es2:created><es2:cputune/><es2:vcpupin vcpu="1"/>...</es2:created>
//     <es2:replaced><es2:vcpupin vcpu="0" cpuset="4-7"/><es2:driver disk="vda"/>...</es2:replaced>
//   </es2:policy>
//
// In <es2:replaced> each attribute other than the identity holds a previous value, and an absent
// attribute means the value was absent. `iothreads` lists the IOThread ids es2 serves (cpuset
// syntax). The policy JSON has its keys sorted.
import { DOMImplementation, type Document, type Element, type Node } from '@xmldom/xmldom';

import { validationFailed } from '../errors/index.js';
import { formatCpuset, parseCpuset } from '../policy/cpuset.js';
import type { Policy } from '../policy/types.js';
import { validatePolicy } from '../policy/validate.js';
import { child, children, insertAfter, parseDomainXml, parseXml, root, serialize } from './dom.js';
import { type ChangeRecord, RECORD_KINDS, type RecordEntry } from './record.js';

export const ES2_NS = 'urn:x-es2:policy:1';
export const ES2_PREFIX = 'es2';
export const ES2_METADATA_KEY = 'es2';
const ELEMENT = 'policy';
const WHERE = `/domain/metadata/${ES2_PREFIX}:${ELEMENT}`;

/** What the es2 element says: the policy in force, the change record, and the IOThreads es2 serves. */
export interface Es2State {
  policy: Policy;
  record: ChangeRecord;
  iothreadIds: number[];
}

function corrupt(detail: string, path = WHERE): Error {
  return validationFailed(`the es2 metadata element is corrupt: ${detail}`, [{ path, message: detail }]);
}

/** The es2 element of a parsed domain, or null. */
export function findEs2Element(doc: Document): Element | null {
  const metadata = child(root(doc), 'metadata');
  if (metadata === null) return null;
  const found = children(metadata).filter((el) => el.namespaceURI === ES2_NS);
  if (found.length > 1) throw corrupt(`${found.length} elements in ${ES2_NS}, expected one`);
  return found[0] ?? null;
}

function readEntries(group: Element | null, where: string): RecordEntry[] {
  if (group === null) return [];
  return children(group).map((el) => {
    const kind = el.localName ?? '';
    const known = RECORD_KINDS[kind];
    if (el.namespaceURI !== ES2_NS || known === undefined) throw corrupt(`unknown entry <${el.tagName}>`, where);
    const attrs: Record<string, string> = {};
    for (let i = 0; i < el.attributes.length; i++) {
      const attr = el.attributes.item(i);
      if (attr === null || attr.name === 'xmlns' || attr.prefix === 'xmlns') continue;
      if (![...known.identity, ...known.values].includes(attr.name)) {
        throw corrupt(`unknown attribute ${attr.name} on <${el.tagName}>`, where);
      }
      attrs[attr.name] = attr.value;
    }
    for (const name of known.identity) if (attrs[name] === undefined) throw corrupt(`<${el.tagName}> lacks ${name}`, where);
    return { kind, attrs };
  });
}

function readElement(el: Element): Es2State {
  if (el.namespaceURI !== ES2_NS || el.localName !== ELEMENT) throw corrupt(`unknown element <${el.tagName}>`);
  const spec = child(el, 'spec', ES2_NS);
  if (spec === null) throw corrupt('no <es2:spec>');
  let json: unknown;
  try {
    json = JSON.parse(spec.textContent ?? '');
  } catch (err) {
    throw corrupt(`<es2:spec> is not JSON: ${(err as Error).message}`, `${WHERE}/${ES2_PREFIX}:spec`);
  }
  const policy = validatePolicy(json);
  const ids = el.getAttribute('iothreads');
  return {
    policy,
    record: {
      created: readEntries(child(el, 'created', ES2_NS), `${WHERE}/${ES2_PREFIX}:created`),
      replaced: readEntries(child(el, 'replaced', ES2_NS), `${WHERE}/${ES2_PREFIX}:replaced`),
    },
    iothreadIds: ids === null || ids === '' ? [] : parseCpuset(ids, `${WHERE}/@iothreads`),
  };
}

/**
 * Reads the es2 element of a parsed domain; null when there is none.
 * @throws Es2Error VALIDATION_FAILED when the element is there but cannot be read.
 */
export function readEs2State(doc: Document): Es2State | null {
  const el = findEs2Element(doc);
  return el === null ? null : readElement(el);
}

/** JSON with object keys sorted: equal policies always read the same, whatever order they came in. */
function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v !== null && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : v);
}

function es2Element(doc: Document, name: string, attrs: Readonly<Record<string, string>> = {}): Element {
  const el = doc.createElementNS(ES2_NS, `${ES2_PREFIX}:${name}`);
  for (const [attr, value] of Object.entries(attrs)) el.setAttribute(attr, value);
  return el;
}

function append(parent: Element, el: Element): Element {
  insertAfter(parent, el, children(parent).at(-1) ?? null);
  return el;
}

/** Appends the es2 element as the last child of `metadata` (which must be in the document). */
export function writeEs2Element(metadata: Element, state: Es2State): Element {
  const doc = metadata.ownerDocument as Document;
  const attrs: Record<string, string> = state.iothreadIds.length > 0 ? { iothreads: formatCpuset(state.iothreadIds) } : {};
  const el = append(metadata, es2Element(doc, ELEMENT, attrs));
  append(el, es2Element(doc, 'spec')).appendChild(doc.createTextNode(canonicalJson(state.policy)));
  for (const group of ['created', 'replaced'] as const) {
    const entries = state.record[group];
    if (entries.length === 0) continue;
    const holder = append(el, es2Element(doc, group));
    for (const entry of entries) append(holder, es2Element(doc, entry.kind, entry.attrs));
  }
  return el;
}

/** A copy of `el` with every element moved into namespace `ns` (null: no namespace). */
function renamespaced(el: Element, ns: string | null, prefix: string | null): Element {
  const doc = new DOMImplementation().createDocument(ns, null as unknown as string, null);
  const copy = (from: Element): Element => {
    const name = from.localName ?? from.tagName;
    const to = doc.createElementNS(ns, prefix === null ? name : `${prefix}:${name}`);
    for (let i = 0; i < from.attributes.length; i++) {
      const attr = from.attributes.item(i);
      if (attr === null || attr.name === 'xmlns' || attr.prefix === 'xmlns') continue;
      to.setAttribute(attr.name, attr.value);
    }
    for (let n: Node | null = from.firstChild; n !== null; n = n.nextSibling) {
      if (n.nodeType === n.ELEMENT_NODE) to.appendChild(copy(n as Element));
      else if (n.nodeType === n.TEXT_NODE || n.nodeType === n.CDATA_SECTION_NODE) to.appendChild(doc.createTextNode(n.nodeValue ?? ''));
    }
    return to;
  };
  return copy(el);
}

/**
 * The es2 element as virDomainSetMetadata takes it: without a namespace. libvirt puts the element
 * and its descendants into the `uri` namespace under the `key` prefix itself, and refuses an
 * element that already declares that prefix ("failed to create a new XML namespace").
 */
export function metadataPayload(el: Element): string {
  return serialize(renamespaced(el, null, null));
}

/**
 * The es2 metadata element of a domain as an XML string (what virDomainSetMetadata takes), or
 * null when the domain has none.
 * @throws Es2Error VALIDATION_FAILED for malformed domain XML.
 */
export function es2MetadataXml(domainXml: string): string | null {
  const el = findEs2Element(parseDomainXml(domainXml));
  return el === null ? null : metadataPayload(el);
}

/**
 * The policy recorded by es2: from a domain XML (null when it has no es2 element), or from the es2
 * element alone, as virDomainGetMetadata returns it.
 * @throws Es2Error VALIDATION_FAILED for malformed XML or an unreadable es2 element.
 */
export function readRecordedPolicy(xml: string): Policy | null {
  const doc = parseXml(xml, 'XML');
  const top = root(doc);
  if (top.namespaceURI === ES2_NS) return readElement(top).policy;
  // virDomainGetMetadata returns the element without its namespace.
  if (top.namespaceURI === null && top.localName === ELEMENT) return readElement(renamespaced(top, ES2_NS, ES2_PREFIX)).policy;
  return readEs2State(parseDomainXml(xml))?.policy ?? null;
}
