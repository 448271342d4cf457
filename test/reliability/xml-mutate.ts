// Mutations of domain XML for the fuzz tests: structural (elements removed or duplicated,
// attributes and text replaced, the es2 record's JSON replaced) and byte-level, described as plain
// data so a counterexample can be stored as JSON and replayed.
import { DOMParser, XMLSerializer, type Element } from '@xmldom/xmldom';
import fc from 'fast-check';

export type Mutation =
  | { op: 'remove' | 'duplicate'; at: number }
  | { op: 'attr'; at: number; value: string }
  | { op: 'text'; at: number; value: string }
  | { op: 'spec'; value: string }
  | { op: 'bytes'; at: number; cut: number; insert: string };

const weird = fc.constantFrom('', '-1', '0', '99999', '4294967296', 'abc', '0-3,^1', '1-0', '^0', '1e3', '0x10', ' 2 ', "'", '<x/>', '&amp;', 'NaN', '3-', ',', '65-70');
const specText = fc.oneof(
  fc.jsonValue().map((v) => JSON.stringify(v) ?? 'null'),
  fc.constantFrom('{', '', '{"enabled":true}', '{"enabled":true,"vcpus":[{"vcpu":99,"cpuset":"0"}]}',
    '{"enabled":true,"hybridIo":{"iothreads":0}}', '{"enabled":"yes"}', '{"enabled":true,"vcpus":[{"vcpu":0,"cpuset":"0-99999999"}]}',
    '{"enabled":true,"__proto__":{"x":1}}', '{"enabled":true,"hybridIo":{"iothreads":1000000}}'),
);
export const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ op: fc.constantFrom('remove' as const, 'duplicate' as const), at: fc.nat() }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constant('attr' as const), at: fc.nat(), value: fc.oneof(weird, fc.string({ maxLength: 8 })) }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('text' as const), at: fc.nat(), value: fc.oneof(weird, fc.string({ maxLength: 8 })) }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('spec' as const), value: specText }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('bytes' as const), at: fc.nat(), cut: fc.nat({ max: 6 }), insert: fc.constantFrom('', '<', '>', '"', '/>', '</domain>', '<vcpu>', 'x', '&') }) },
);

/** Every element of the document, in document order. */
function elements(doc: Document): Element[] {
  return Array.from(doc.getElementsByTagName('*')) as unknown as Element[];
}

type Document = ReturnType<DOMParser['parseFromString']>;

export function mutate(xml: string, mutations: readonly Mutation[]): string {
  const doc = new DOMParser({ onError: () => undefined }).parseFromString(xml, 'text/xml');
  const bytes: Extract<Mutation, { op: 'bytes' }>[] = [];
  for (const m of mutations) {
    const all = elements(doc).filter((e) => e !== doc.documentElement);
    const el = 'at' in m && all.length > 0 ? all[m.at % all.length]! : undefined;
    switch (m.op) {
      case 'remove':
        el?.parentNode?.removeChild(el);
        break;
      case 'duplicate':
        if (el !== undefined) el.parentNode?.insertBefore(el.cloneNode(true), el.nextSibling);
        break;
      case 'attr': {
        const attr = el === undefined || el.attributes.length === 0 ? undefined : el.attributes.item(m.at % el.attributes.length);
        if (attr !== null && attr !== undefined) el!.setAttribute(attr.name, m.value);
        break;
      }
      case 'text':
        if (el !== undefined && el.childNodes.length <= 1) el.textContent = m.value;
        break;
      case 'spec': {
        const spec = elements(doc).find((e) => e.localName === 'spec' && e.namespaceURI === 'urn:x-es2:policy:1');
        if (spec !== undefined) spec.textContent = m.value;
        break;
      }
      case 'bytes':
        bytes.push(m);
        break;
    }
  }
  let out = new XMLSerializer().serializeToString(doc);
  for (const b of bytes) {
    const i = b.at % Math.max(1, out.length);
    out = out.slice(0, i) + b.insert + out.slice(i + b.cut);
  }
  return out;
}
