// What es2 changed in a domain, so that removal restores it exactly. Two lists: elements es2
// created (removed again), and elements es2 modified with their previous values (put back). Each
// entry names its element by kind and identity attributes, e.g. `vcpupin vcpu=2`.
import type { Document, Element } from '@xmldom/xmldom';

import { child, childWith, children, removeTidy, root, setAttr, setText } from './dom.js';
import { diskTarget, virtioDisks } from './domain.js';

export interface RecordEntry {
  /** Kind of element: `vcpupin`, `iothreadpin`, `poll`, `driver`, `iothread`, `iothreads`, ... */
  kind: string;
  /** Identity attributes, then (for replaced entries) the previous values; absent = was absent. */
  attrs: Record<string, string>;
}

export interface ChangeRecord {
  created: RecordEntry[];
  replaced: RecordEntry[];
}

/** Per kind: the attributes that identify the element, and the values a replaced entry keeps. */
export const RECORD_KINDS: Readonly<Record<string, { identity: readonly string[]; values: readonly string[] }>> = {
  metadata: { identity: [], values: [] },
  cputune: { identity: [], values: [] },
  iothreads: { identity: [], values: ['count'] },
  iothreadids: { identity: [], values: [] },
  iothread: { identity: ['id'], values: [] },
  vcpupin: { identity: ['vcpu'], values: ['cpuset'] },
  iothreadpin: { identity: ['iothread'], values: ['cpuset'] },
  poll: { identity: ['iothread'], values: ['max', 'grow', 'shrink'] },
  driver: { identity: ['disk'], values: ['iothread'] },
};

/** Finds the element an entry names, or null when it is not (or no longer) there. */
function locate(doc: Document, entry: RecordEntry): Element | null {
  const domain = root(doc);
  const cputune = child(domain, 'cputune');
  const a = entry.attrs;
  switch (entry.kind) {
    case 'metadata':
    case 'cputune':
    case 'iothreads':
    case 'iothreadids':
      return child(domain, entry.kind);
    case 'iothread':
      return childWith(child(domain, 'iothreadids'), 'iothread', 'id', a.id ?? '');
    case 'vcpupin':
      return childWith(cputune, 'vcpupin', 'vcpu', a.vcpu ?? '');
    case 'iothreadpin':
      return childWith(cputune, 'iothreadpin', 'iothread', a.iothread ?? '');
    case 'poll': {
      const thread = childWith(child(domain, 'iothreadids'), 'iothread', 'id', a.iothread ?? '');
      return thread === null ? null : child(thread, 'poll');
    }
    case 'driver': {
      const disk = virtioDisks(doc).find((d) => diskTarget(d) === a.disk);
      return disk === undefined ? null : child(disk, 'driver');
    }
    default:
      return null;
  }
}

/** The values a replaced entry records for `el`, read before es2 changes it. */
export function previousValues(kind: string, el: Element): Record<string, string> {
  const values: Record<string, string> = {};
  if (kind === 'iothreads') {
    values.count = el.textContent ?? '';
    return values;
  }
  for (const name of RECORD_KINDS[kind]?.values ?? []) {
    const value = el.getAttribute(name);
    if (value !== null) values[name] = value;
  }
  return values;
}

// Containers go last: a container es2 created is removed only once what es2 put in it is gone,
// and only when nothing else was added to it since.
const CONTAINERS = new Set(['metadata', 'cputune', 'iothreadids', 'iothreads']);
// Others may add their own elements to these after es2 created them. A created <iothreadids> holds
// only ids es2 listed itself.
const SHARED_CONTAINERS = new Set(['metadata', 'cputune']);

/** Undoes a record: removes what es2 created, puts back what it replaced. Missing elements are skipped. */
export function undo(doc: Document, record: ChangeRecord): void {
  for (const entry of record.replaced) {
    const el = locate(doc, entry);
    if (el === null) continue;
    if (entry.kind === 'iothreads') {
      setText(el, entry.attrs.count ?? '');
      continue;
    }
    for (const name of RECORD_KINDS[entry.kind]?.values ?? []) setAttr(el, name, entry.attrs[name] ?? null);
  }
  const created = [...record.created].sort((a, b) => Number(CONTAINERS.has(a.kind)) - Number(CONTAINERS.has(b.kind)));
  for (const entry of created) {
    const el = locate(doc, entry);
    if (el === null) continue;
    if (SHARED_CONTAINERS.has(entry.kind) && children(el).length > 0) continue;
    removeTidy(el);
  }
}
