// XML mechanism: parse, serialize, find and edit elements while keeping everything else (order,
// comments, namespaces, formatting) as it was. xmldom escapes every text and attribute value it
// writes, so no string es2 puts into a document can become markup.
import { DOMParser, type Document, type Element, type Node, XMLSerializer } from '@xmldom/xmldom';

import { validationFailed } from '../errors/index.js';

const ELEMENT_NODE = 1;
const TEXT_NODE = 3;

/**
 * Parses an XML document.
 * @throws Es2Error VALIDATION_FAILED when it is not well-formed, saying where.
 */
export function parseXml(xml: string, what: string): Document {
  let problem: string | null = null;
  try {
    return new DOMParser({
      onError: (_level, message, context) => {
        const at = context?.locator;
        problem = at === undefined ? message : `${message} (line ${at.lineNumber}, column ${at.columnNumber})`;
        throw new Error(problem);
      },
    }).parseFromString(xml, 'text/xml');
  } catch (err) {
    const why = problem ?? (err instanceof Error ? err.message : String(err));
    throw validationFailed(`malformed ${what}: ${why}`, [{ path: '/', message: why }]);
  }
}

/**
 * Parses a domain XML document.
 * @throws Es2Error VALIDATION_FAILED when it is not well-formed or its root is not `<domain>`.
 */
export function parseDomainXml(xml: string): Document {
  const doc = parseXml(xml, 'domain XML');
  const root = doc.documentElement;
  if (root === null || root.namespaceURI !== null || root.localName !== 'domain') {
    throw validationFailed('not a libvirt domain XML: the root element must be <domain>', [
      { path: '/', message: `root element is <${root?.tagName ?? ''}>` },
    ]);
  }
  return doc;
}

export function serialize(node: Node): string {
  return new XMLSerializer().serializeToString(node);
}

export function root(doc: Document): Element {
  return doc.documentElement as Element;
}

function isElement(node: Node | null): node is Element {
  return node !== null && node.nodeType === ELEMENT_NODE;
}

function isWhitespace(node: Node | null): boolean {
  return node !== null && node.nodeType === TEXT_NODE && (node.nodeValue ?? '').trim() === '';
}

/** Element children of `parent` with this local name and namespace (null: libvirt's own, no namespace). */
export function children(parent: Element, localName?: string, ns: string | null = null): Element[] {
  const found: Element[] = [];
  for (let node = parent.firstChild; node !== null; node = node.nextSibling) {
    if (!isElement(node)) continue;
    if (localName === undefined || (node.localName === localName && node.namespaceURI === ns)) found.push(node);
  }
  return found;
}

export function child(parent: Element, localName: string, ns: string | null = null): Element | null {
  return children(parent, localName, ns)[0] ?? null;
}

/** The first child with `attr="value"`, e.g. `<vcpupin vcpu='2'>`. */
export function childWith(parent: Element | null, localName: string, attr: string, value: string): Element | null {
  if (parent === null) return null;
  return children(parent, localName).find((el) => el.getAttribute(attr) === value) ?? null;
}

export function textOf(el: Element | null): string | null {
  return el === null ? null : (el.textContent ?? '');
}

/** Replaces an element's content with one text node. */
export function setText(el: Element, value: string): void {
  while (el.firstChild !== null) el.removeChild(el.firstChild);
  el.appendChild((el.ownerDocument as Document).createTextNode(value));
}

/** Sets or, for null, removes an attribute. */
export function setAttr(el: Element, name: string, value: string | null): void {
  if (value === null) el.removeAttribute(name);
  else el.setAttribute(name, value);
}

function indentBefore(node: Node): string {
  const prev = node.previousSibling;
  if (!isWhitespace(prev)) return '';
  const text = prev?.nodeValue ?? '';
  return text.includes('\n') ? text.slice(text.lastIndexOf('\n') + 1) : '';
}

/** The indentation of `parent`'s children: copied from a sibling, else one step (2 spaces) deeper. */
function childIndent(parent: Element): string | null {
  const first = children(parent)[0];
  if (first !== undefined) {
    const prev = first.previousSibling;
    return isWhitespace(prev) && (prev?.nodeValue ?? '').includes('\n') ? indentBefore(first) : null;
  }
  const parentPretty = parent.parentNode !== null && isWhitespace(parent.previousSibling)
    && (parent.previousSibling?.nodeValue ?? '').includes('\n');
  return parentPretty ? indentBefore(parent) + '  ' : null;
}

/**
 * Inserts `el` into `parent` after the element `after` (null: as the first element child),
 * indented like its siblings when the document is indented.
 */
export function insertAfter(parent: Element, el: Element, after: Element | null): void {
  const doc = parent.ownerDocument as Document;
  const indent = childIndent(parent);
  if (indent === null) {
    parent.insertBefore(el, after === null ? children(parent)[0] ?? null : after.nextSibling);
    return;
  }
  const ws = (): Node => doc.createTextNode('\n' + indent);
  if (after !== null) {
    parent.insertBefore(el, after.nextSibling);
    parent.insertBefore(ws(), el);
    return;
  }
  const first = children(parent)[0];
  if (first !== undefined) {
    parent.insertBefore(el, first);
    parent.insertBefore(ws(), first);
    return;
  }
  // No element child yet: the closing tag goes on its own line at the parent's indentation.
  const closing = parent.lastChild !== null && isWhitespace(parent.lastChild) ? parent.lastChild : null;
  if (closing === null) parent.appendChild(doc.createTextNode('\n' + indentBefore(parent)));
  parent.insertBefore(ws(), parent.lastChild);
  parent.insertBefore(el, parent.lastChild);
}

/**
 * Inserts `el` where libvirt's formatter puts it: `order` lists the element names of `parent` in
 * libvirt's order, and elements of one name are kept ascending by `key` (e.g. vcpupin by `vcpu`).
 * Elements in other namespaces or not in `order` are stepped over and never moved.
 */
export function insertOrdered(parent: Element, el: Element, order: readonly string[], key?: (e: Element) => number): void {
  const rank = (e: Element): number => (e.namespaceURI === null ? order.indexOf(e.localName ?? '') : -1);
  const mine = rank(el);
  let after: Element | null = null;
  for (const sibling of children(parent)) {
    const theirs = rank(sibling);
    if (theirs < 0) continue;
    if (theirs < mine || (theirs === mine && (key === undefined || key(sibling) < key(el)))) after = sibling;
  }
  if (after === null) {
    // Nothing known goes before it: it goes before the first known element that comes later.
    const all = children(parent);
    const firstLater = all.findIndex((s) => rank(s) > mine);
    after = firstLater < 0 ? all.at(-1) ?? null : all[firstLater - 1] ?? null;
  }
  insertAfter(parent, el, after);
}

/** Removes an element and the indentation in front of it, the inverse of the inserts above. */
export function removeTidy(el: Element): void {
  const parent = el.parentNode;
  if (parent === null) return;
  const prev = el.previousSibling;
  if (isWhitespace(prev) && prev !== null) parent.removeChild(prev);
  parent.removeChild(el);
  // What is left of an element es2 filled from empty is the closing line: libvirt writes it `<x/>`.
  let only = true;
  for (let node = parent.firstChild; node !== null; node = node.nextSibling) only &&= isWhitespace(node);
  while (only && parent.firstChild !== null) parent.removeChild(parent.firstChild);
}

/** Creates an element in libvirt's (empty) namespace with attributes in the given order. */
export function createElement(doc: Document, name: string, attrs: Readonly<Record<string, string>> = {}): Element {
  const el = doc.createElementNS(null, name);
  for (const [attr, value] of Object.entries(attrs)) el.setAttribute(attr, value);
  return el;
}
