// Semantic XML comparison for tests: elements by namespace and local name, attributes as a set
// (order, quoting and namespace declarations ignored), text and comments trimmed, whitespace-only
// text ignored. Reports the location of the first difference.
import assert from 'node:assert/strict';

import { DOMParser, type Element, type Node } from '@xmldom/xmldom';

const ELEMENT = 1;
const TEXT = 3;
const CDATA = 4;
const COMMENT = 8;

type Item = { kind: 'element'; el: Element } | { kind: 'text' | 'comment'; value: string };

function parse(xml: string, which: string): Element {
  const doc = new DOMParser({
    onError: (level, message) => {
      throw new Error(`${which} XML is not well-formed (${level}): ${message}`);
    },
  }).parseFromString(xml, 'text/xml');
  return doc.documentElement as Element;
}

function name(el: Element): string {
  return el.namespaceURI === null ? (el.localName ?? '') : `{${el.namespaceURI}}${el.localName ?? ''}`;
}

function attributes(el: Element): Map<string, string> {
  const attrs = new Map<string, string>();
  for (let i = 0; i < el.attributes.length; i++) {
    const attr = el.attributes.item(i);
    if (attr === null || attr.name === 'xmlns' || attr.prefix === 'xmlns') continue;
    attrs.set(attr.namespaceURI === null ? (attr.localName ?? attr.name) : `{${attr.namespaceURI}}${attr.localName ?? ''}`, attr.value);
  }
  return attrs;
}

/** Significant children: elements, trimmed non-empty text (adjacent text and CDATA joined), comments. */
function items(el: Element): Item[] {
  const found: Item[] = [];
  let text = '';
  const flush = (): void => {
    if (text.trim() !== '') found.push({ kind: 'text', value: text.trim() });
    text = '';
  };
  for (let node: Node | null = el.firstChild; node !== null; node = node.nextSibling) {
    if (node.nodeType === TEXT || node.nodeType === CDATA) {
      text += node.nodeValue ?? '';
      continue;
    }
    flush();
    if (node.nodeType === ELEMENT) found.push({ kind: 'element', el: node as Element });
    else if (node.nodeType === COMMENT) found.push({ kind: 'comment', value: (node.nodeValue ?? '').trim() });
  }
  flush();
  return found;
}

function describe(item: Item | undefined): string {
  if (item === undefined) return 'nothing';
  if (item.kind === 'element') return `<${item.el.tagName}>`;
  return `${item.kind} ${JSON.stringify(item.value)}`;
}

function compare(actual: Element, expected: Element, path: string): string | null {
  if (name(actual) !== name(expected)) return `${path}: element ${name(actual)}, expected ${name(expected)}`;
  const a = attributes(actual);
  const e = attributes(expected);
  for (const key of [...new Set([...e.keys(), ...a.keys()])].sort()) {
    if (a.get(key) !== e.get(key)) {
      return `${path}/@${key}: ${a.has(key) ? JSON.stringify(a.get(key)) : 'absent'}, expected ${e.has(key) ? JSON.stringify(e.get(key)) : 'absent'}`;
    }
  }
  const ai = items(actual);
  const ei = items(expected);
  const seen = new Map<string, number>();
  for (let i = 0; i < Math.max(ai.length, ei.length); i++) {
    const x = ai[i];
    const y = ei[i];
    if (x === undefined || y === undefined || x.kind !== y.kind) {
      return `${path}: child ${i + 1} is ${describe(x)}, expected ${describe(y)}`;
    }
    if (x.kind !== 'element' || y.kind !== 'element') {
      if (x.kind !== 'element' && y.kind !== 'element' && x.value !== y.value) {
        return `${path}/${x.kind}()[${i + 1}]: ${JSON.stringify(x.value)}, expected ${JSON.stringify(y.value)}`;
      }
      continue;
    }
    const tag = y.el.tagName;
    const n = (seen.get(tag) ?? 0) + 1;
    seen.set(tag, n);
    const difference = compare(x.el, y.el, `${path}/${tag}[${n}]`);
    if (difference !== null) return difference;
  }
  return null;
}

/** The first semantic difference between two XML documents, or null when they are equal. */
export function xmlDifference(actual: string, expected: string): string | null {
  const a = parse(actual, 'actual');
  const e = parse(expected, 'expected');
  return compare(a, e, `/${e.tagName}`);
}

/** Asserts two XML documents are semantically equal, naming the first difference. */
export function assertXmlEqual(actual: string, expected: string, message = 'XML differs'): void {
  const difference = xmlDifference(actual, expected);
  assert.equal(difference, null, `${message}: ${difference ?? ''}`);
}
