// The parts of a domain es2 owns, read into plain data, and the differences between two such
// views: the persistent changes and the live operations of a plan.
import type { Document } from '@xmldom/xmldom';

import { parseCpuset, sameCpus } from '../policy/cpuset.js';
import { type PollParams, QEMU_IOTHREAD_POLL_DEFAULTS } from '../policy/decide.js';
import type { HostFacts } from '../policy/host-facts.js';
import type { LiveOp, XmlChange } from '../policy/plan.js';
import { child, children, root } from './dom.js';
import { diskTarget, iothreadIds, virtioDisks } from './domain.js';
import { ES2_METADATA_KEY, ES2_NS, type Es2State, findEs2Element, metadataPayload, readEs2State } from './metadata.js';

export interface Es2View {
  iothreads: string | null;
  iothreadIds: number[];
  /** Ids listed in `<iothreadids>`, null when the domain has none. */
  listedIothreadIds: number[] | null;
  iothreadPins: Map<number, string>;
  /** `<poll>` attributes under `<iothreadids><iothread>`. */
  xmlPolls: Map<number, PollParams>;
  vcpuPins: Map<number, string>;
  hasCputune: boolean;
  hasMetadata: boolean;
  /** Virtio disk target → its `<driver iothread>`, null when it has none. */
  diskIothreads: Map<string, string | null>;
  /** The es2 element as XML and as read (a canonical form for comparing), or null. */
  es2Xml: string | null;
  es2State: Es2State | null;
  /** `<vcpu cpuset>`: where unpinned vCPUs and IOThreads run, null for all host CPUs. */
  placement: string | null;
}

function pinsOf(doc: Document, kind: 'vcpupin' | 'iothreadpin', idAttr: string): Map<number, string> {
  const cputune = child(root(doc), 'cputune');
  const pins = new Map<number, string>();
  for (const pin of cputune === null ? [] : children(cputune, kind)) {
    pins.set(Number(pin.getAttribute(idAttr)), pin.getAttribute('cpuset') ?? '');
  }
  return pins;
}

function pollsOf(doc: Document): Map<number, PollParams> {
  const polls = new Map<number, PollParams>();
  const ids = child(root(doc), 'iothreadids');
  for (const thread of ids === null ? [] : children(ids, 'iothread')) {
    const poll = child(thread, 'poll');
    if (poll === null) continue;
    const params: PollParams = {};
    const read = (attr: string): number | undefined => (poll.hasAttribute(attr) ? Number(poll.getAttribute(attr)) : undefined);
    const max = read('max');
    const grow = read('grow');
    const shrink = read('shrink');
    if (max !== undefined) params.pollMaxNs = max;
    if (grow !== undefined) params.pollGrow = grow;
    if (shrink !== undefined) params.pollShrink = shrink;
    polls.set(Number(thread.getAttribute('id')), params);
  }
  return polls;
}

export function readView(doc: Document): Es2View {
  const domain = root(doc);
  const es2 = findEs2Element(doc);
  const listed = child(domain, 'iothreadids');
  return {
    iothreads: child(domain, 'iothreads')?.textContent?.trim() ?? null,
    iothreadIds: iothreadIds(doc),
    listedIothreadIds: listed === null ? null : children(listed, 'iothread').map((el) => Number(el.getAttribute('id'))),
    iothreadPins: pinsOf(doc, 'iothreadpin', 'iothread'),
    xmlPolls: pollsOf(doc),
    vcpuPins: pinsOf(doc, 'vcpupin', 'vcpu'),
    hasCputune: child(domain, 'cputune') !== null,
    hasMetadata: child(domain, 'metadata') !== null,
    diskIothreads: new Map(virtioDisks(doc).map((disk) => [diskTarget(disk), child(disk, 'driver')?.getAttribute('iothread') ?? null])),
    es2Xml: es2 === null ? null : metadataPayload(es2),
    es2State: readEs2State(doc),
    placement: child(domain, 'vcpu')?.getAttribute('cpuset') || null,
  };
}

const ES2_PATH = `/domain/metadata/${ES2_METADATA_KEY}:policy`;

function pollText(poll: PollParams): string {
  return `max=${poll.pollMaxNs ?? ''} grow=${poll.pollGrow ?? ''} shrink=${poll.pollShrink ?? ''}`;
}

/** The view as location → value, the form persistent changes are listed in. */
function flatten(view: Es2View): Map<string, string> {
  const flat = new Map<string, string>();
  if (view.hasMetadata) flat.set('/domain/metadata', '');
  if (view.es2State !== null) flat.set(ES2_PATH, JSON.stringify(view.es2State));
  if (view.iothreads !== null) flat.set('/domain/iothreads', view.iothreads);
  if (view.listedIothreadIds !== null) flat.set('/domain/iothreadids', '');
  for (const id of view.listedIothreadIds ?? []) flat.set(`/domain/iothreadids/iothread[@id='${id}']`, '');
  for (const [id, poll] of view.xmlPolls) flat.set(`/domain/iothreadids/iothread[@id='${id}']/poll`, pollText(poll));
  if (view.hasCputune) flat.set('/domain/cputune', '');
  for (const [vcpu, cpuset] of view.vcpuPins) flat.set(`/domain/cputune/vcpupin[@vcpu='${vcpu}']`, cpuset);
  for (const [id, cpuset] of view.iothreadPins) flat.set(`/domain/cputune/iothreadpin[@iothread='${id}']`, cpuset);
  for (const [disk, iothread] of view.diskIothreads) {
    if (iothread !== null) flat.set(`/domain/devices/disk[target/@dev='${disk}']/driver/@iothread`, iothread);
  }
  return flat;
}

/** What changes in the persistent definition, in document order of the result. */
export function persistentChanges(before: Es2View, after: Es2View): XmlChange[] {
  const a = flatten(before);
  const b = flatten(after);
  const changes: XmlChange[] = [];
  // The es2 element is too long to show; its policy is in the plan's context already.
  const shown = (path: string, value: string): string | undefined => (path === ES2_PATH || value === '' ? undefined : value);
  for (const [path, value] of b) {
    const old = a.get(path);
    if (old === value) continue;
    const change: XmlChange = { path, action: old === undefined ? 'add' : 'set' };
    const beforeText = old === undefined ? undefined : shown(path, old);
    const afterText = shown(path, value);
    if (beforeText !== undefined) change.before = beforeText;
    if (afterText !== undefined) change.after = afterText;
    changes.push(change);
  }
  for (const [path, value] of a) {
    if (b.has(path)) continue;
    const change: XmlChange = { path, action: 'remove' };
    const beforeText = shown(path, value);
    if (beforeText !== undefined) change.before = beforeText;
    changes.push(change);
  }
  return changes;
}

/** Poll parameters in force on a running domain as far as the view tells. */
function livePolls(view: Es2View, pollInXml: boolean): Map<number, PollParams> {
  if (pollInXml) return view.xmlPolls;
  // Before libvirt 9.4 nothing in the XML shows them: es2 set what its recorded policy says.
  const polls = new Map<number, PollParams>();
  const io = view.es2State?.policy.enabled ? view.es2State.policy.hybridIo : undefined;
  const params: PollParams = {};
  if (io?.pollMaxNs !== undefined) params.pollMaxNs = io.pollMaxNs;
  if (io?.pollGrow !== undefined) params.pollGrow = io.pollGrow;
  if (io?.pollShrink !== undefined) params.pollShrink = io.pollShrink;
  if (Object.keys(params).length === 0) return polls;
  for (const id of view.es2State?.iothreadIds ?? []) polls.set(id, params);
  return polls;
}

function samePoll(a: PollParams | undefined, b: PollParams | undefined): boolean {
  return a !== undefined && b !== undefined && pollText(a) === pollText(b);
}

/**
 * The live operations that take a running domain shown by `before` to `after`.
 * @param pollInXml libvirt >= 9.4: poll parameters are in the XML. Before that libvirt forgets them
 * at every start and no XML shows them, so they are always (re)set: setting them is harmless.
 */
export function liveOps(before: Es2View, after: Es2View, host: HostFacts, pollInXml: boolean): LiveOp[] {
  // Unpinned vCPUs and IOThreads run where <vcpu cpuset> says, else on every host CPU.
  const unpinned = after.placement === null ? host.cpus : parseCpuset(after.placement, '/domain/vcpu/@cpuset');
  const cpusOf = (cpuset: string | undefined, path: string): number[] => (cpuset === undefined ? unpinned : parseCpuset(cpuset, path));
  const hadIds = new Set(before.iothreadIds);
  const keptIds = new Set(after.iothreadIds);
  const beforePolls = livePolls(before, pollInXml);
  const afterPolls = livePolls(after, pollInXml);

  // src/apply/ runs these in this order. IOThreads first, added, then pinned, then polled, so they
  // exist before anything refers to them; IOThreads es2 no longer uses go next; then vCPU pins;
  // the metadata last, so that it only ever claims what is already done.
  const ops: LiveOp[] = [];
  for (const id of after.iothreadIds) if (!hadIds.has(id)) ops.push({ op: 'iothread-add', id });
  for (const id of after.iothreadIds) {
    const path = `/domain/cputune/iothreadpin[@iothread='${id}']/@cpuset`;
    const want = after.iothreadPins.get(id);
    // A new IOThread without a pin already runs where unpinned threads run.
    if (!hadIds.has(id) && want === undefined) continue;
    if (hadIds.has(id) && sameCpus(cpusOf(want, path), cpusOf(before.iothreadPins.get(id), path))) continue;
    ops.push({ op: 'iothread-pin', id, cpus: cpusOf(want, path) });
  }
  for (const id of after.iothreadIds) {
    const want = afterPolls.get(id);
    const had = hadIds.has(id) ? beforePolls.get(id) : undefined;
    if (want !== undefined && (!pollInXml || !samePoll(want, had))) ops.push({ op: 'iothread-poll', id, ...want });
    if (want === undefined && had !== undefined) ops.push({ op: 'iothread-poll', id, ...QEMU_IOTHREAD_POLL_DEFAULTS });
  }
  for (const id of before.iothreadIds) if (!keptIds.has(id)) ops.push({ op: 'iothread-del', id });
  const vcpus = [...new Set([...before.vcpuPins.keys(), ...after.vcpuPins.keys()])].sort((x, y) => x - y);
  for (const vcpu of vcpus) {
    const path = `/domain/cputune/vcpupin[@vcpu='${vcpu}']/@cpuset`;
    const want = cpusOf(after.vcpuPins.get(vcpu), path);
    if (!sameCpus(want, cpusOf(before.vcpuPins.get(vcpu), path))) ops.push({ op: 'vcpu-pin', vcpu, cpus: want });
  }
  const es2Changed = JSON.stringify(before.es2State) !== JSON.stringify(after.es2State);
  if (es2Changed && after.es2Xml !== null) ops.push({ op: 'metadata-set', key: 'es2', uri: ES2_NS, xml: after.es2Xml });
  if (es2Changed && after.es2Xml === null) ops.push({ op: 'metadata-remove', key: 'es2', uri: ES2_NS });
  return ops;
}
