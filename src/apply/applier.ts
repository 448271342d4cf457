// Turns a policy into libvirt calls and host writes for one domain, transactionally: every step
// that succeeded is undone, newest first, when a later one fails.
//
// Order (the plan's live ops come in this order from src/xml, see liveOps there):
//   1. compute everything (plans for the live and the persistent XML): a refusal changes nothing;
//   2. live ops on a running domain: IOThreads added, pinned, polled; IOThreads es2 no longer
//      uses deleted; vCPU pins; the es2 metadata element last, so it only claims what is done;
//   3. the ES2 kernel interface's per-VM files (es2-kernel backend only);
//   4. host knob holds (halt polling), taken while the domain runs, released when es2 lets go;
//   5. the persistent definition (defineXML), so the next start (and a Nova hard reboot's
//      regenerated XML, re-applied by src/reconcile/) comes up the same way.
import { Es2Error } from '../errors/index.js';
import type { KnobManager, VmBackend } from '../host/index.js';
import { isKnobName } from '../host/index.js';
import {
  type Connection,
  type DomainInfo,
  DomainMetadataType,
  DomainModificationImpact,
  DomainStatsTypes,
  DomainXMLFlags,
  isConnectionLost,
  isNoDomain,
  isNoMetadata,
  LibvirtError,
} from '../libvirt/index.js';
import { formatCpuset, type Es2KernelSettings, type HostFacts, type LiveOp, type Plan, type Policy } from '../policy/index.js';
import type { Logger } from '../daemon/logger.js';
import { apply as applyXml, remove as removeXml, ES2_NS, ES2_METADATA_KEY } from '../xml/index.js';

// AFFECT_CURRENT on a running domain is its live state; the test driver accepts no other flag.
const CURRENT = DomainModificationImpact.AFFECT_CURRENT;

export interface ApplyOutcome {
  uuid: string;
  name: string;
  /** `applied`: live and persistent; `stored`: the domain is not running, only its definition changed. */
  status: 'applied' | 'stored' | 'planned';
  plan: Plan;
  /** Steps actually executed (0 when everything was already in place). */
  steps: number;
}

interface Step {
  what: string;
  undo?: () => Promise<unknown>;
}

/** A domain as libvirt describes it at the start of a converge. */
export interface DomainSnapshot {
  info: DomainInfo;
  persistentXml: string | null;
  liveXml: string | null;
}

/** The policy a converge brings in: null (undo what es2 did) for none or a disabled one. */
function inForce(policy: Policy | null): Policy | null {
  return policy !== null && policy.enabled ? policy : null;
}

/** The pure transform of a domain XML to `policy` (removal of es2's settings when none is in force). */
function transformTo(policy: Policy | null, facts: HostFacts): (xml: string) => { xml: string; plan: Plan } {
  const wanted = inForce(policy);
  return (xml) => (wanted === null ? removeXml(xml, facts) : applyXml(xml, wanted, facts));
}

/** Both definitions of a domain transformed, and the one plan a converge of them follows. */
function planConverge(snap: DomainSnapshot, policy: Policy | null, facts: HostFacts): {
  persistent: { xml: string; plan: Plan } | null;
  live: { xml: string; plan: Plan } | null;
  plan: Plan;
} {
  const transform = transformTo(policy, facts);
  const persistent = snap.persistentXml === null ? null : transform(snap.persistentXml);
  const live = snap.liveXml === null ? null : transform(snap.liveXml);
  const plan: Plan = live === null
    ? persistent!.plan
    : { ...(persistent?.plan ?? live.plan), live: live.plan.live, noop: false };
  return { persistent, live, plan };
}

/** One way a running domain differs from its policy. */
export interface DriftItem {
  what: string;
  expected: string;
  actual: string;
}

export interface ApplierDeps {
  knobs: KnobManager;
  backend: VmBackend;
  logger: Logger;
}

/** The live IOThread poll values as libvirt reports them (bulk stats IOTHREAD group). */
type PollState = Map<number, { pollMaxNs?: number; pollGrow?: number; pollShrink?: number }>;

async function readPolls(conn: Connection, uuid: string): Promise<PollState> {
  const [rec] = await conn.domainListGetStats([uuid], DomainStatsTypes.IOTHREAD);
  const polls: PollState = new Map();
  for (const [key, value] of Object.entries(rec?.stats ?? {})) {
    const m = /^iothread\.(\d+)\.poll-(max-ns|grow|shrink)$/.exec(key);
    if (m === null) continue;
    const id = Number(m[1]);
    const entry = polls.get(id) ?? {};
    const n = Number(value);
    if (m[2] === 'max-ns') entry.pollMaxNs = n;
    else if (m[2] === 'grow') entry.pollGrow = n;
    else entry.pollShrink = n;
    polls.set(id, entry);
  }
  return polls;
}

function samePoll(op: Extract<LiveOp, { op: 'iothread-poll' }>, have: PollState): boolean {
  const h = have.get(op.id);
  return h !== undefined
    && (op.pollMaxNs === undefined || op.pollMaxNs === h.pollMaxNs)
    && (op.pollGrow === undefined || op.pollGrow === h.pollGrow)
    && (op.pollShrink === undefined || op.pollShrink === h.pollShrink);
}

export class Applier {
  constructor(private readonly deps: ApplierDeps) {}

  /**
   * What a converge works from, read in one round of parallel libvirt calls: the domain's info, its
   * persistent definition (null for a transient domain) and its live XML (null when not running).
   */
  async snapshot(conn: Connection, uuid: string): Promise<DomainSnapshot> {
    // The live XML is asked for before knowing whether the domain runs: for a shut-off domain
    // libvirt returns its definition, which costs less than a second round trip to find out.
    const [info, inactiveXml, currentXml] = await Promise.all([
      conn.domainGetInfo(uuid),
      conn.domainGetXMLDesc(uuid, DomainXMLFlags.INACTIVE),
      conn.domainGetXMLDesc(uuid),
    ]).catch((err: unknown) => {
      if (isNoDomain(err)) throw new Es2Error('DOMAIN_NOT_FOUND', `libvirt has no domain ${uuid}`);
      throw err;
    });
    return { info, persistentXml: info.persistent ? inactiveXml : null, liveXml: info.active ? currentXml : null };
  }

  /**
   * Brings one domain in line with `policy`; null (or a disabled policy) removes what es2 did.
   * Callers serialise per domain (KeyedQueue). Throws Es2Error; on failure nothing stays half done
   * (undo failures are logged and reported in the error message). `beforeChanges` runs once the
   * plan is computed and before anything changes (an API write stores its policy there, so a
   * policy the plan refuses is never stored); it does not run for a dry run.
   */
  async converge(
    conn: Connection,
    uuid: string,
    policy: Policy | null,
    facts: HostFacts,
    options: { dryRun?: boolean; snapshot?: DomainSnapshot; beforeChanges?: () => void | Promise<void> } = {},
  ): Promise<ApplyOutcome> {
    const snapshot = options.snapshot ?? await this.snapshot(conn, uuid);
    try {
      return await this.apply(conn, uuid, policy, facts, { ...options, snapshot });
    } catch (err) {
      throw await this.asConflict(conn, uuid, policy, facts, snapshot, err);
    }
  }

  /**
   * A libvirt refusal of a step planned from the domain as libvirt itself described it means,
   * most often, that someone changed the domain in between (`virsh iothreaddel` while es2 pins that
   * IOThread). After the rollback the domain is planned again: a different plan is that change,
   * and the caller gets CONFLICT (retry) instead of INTERNAL.
   */
  private async asConflict(
    conn: Connection, uuid: string, policy: Policy | null, facts: HostFacts, before: DomainSnapshot, err: unknown,
  ): Promise<unknown> {
    if (!(err instanceof Es2Error) || err.code !== 'INTERNAL' || !(err.cause instanceof LibvirtError)) return err;
    const planOf = (snap: DomainSnapshot): string => {
      try {
        return JSON.stringify([snap.info.active, planConverge(snap, policy, facts).plan]);
      } catch (e) {
        return `refused: ${(e as Error).message}`;
      }
    };
    let now: DomainSnapshot;
    try {
      now = await this.snapshot(conn, uuid);
    } catch (e) {
      // Gone meanwhile: the domain changed under the apply, as surely as it can.
      if (e instanceof Es2Error && e.code === 'DOMAIN_NOT_FOUND') {
        return new Es2Error('CONFLICT', `${err.message}; the domain was undefined meanwhile`, { cause: err });
      }
      return err;
    }
    if (planOf(now) === planOf(before)) return err;
    return new Es2Error('CONFLICT', `${err.message}; the domain changed while es2 applied to it (another tool or operator?): `
      + 'nothing of this apply stays, send it again', { details: err.details, cause: err });
  }

  private async apply(
    conn: Connection,
    uuid: string,
    policy: Policy | null,
    facts: HostFacts,
    options: { dryRun?: boolean; snapshot: DomainSnapshot; beforeChanges?: () => void | Promise<void> },
  ): Promise<ApplyOutcome> {
    const { info, persistentXml } = options.snapshot;
    const wanted = inForce(policy);
    // 1. Everything is computed before anything changes.
    const { persistent, live, plan } = planConverge(options.snapshot, policy, facts);
    if (options.dryRun === true) return { uuid, name: info.name, status: 'planned', plan, steps: 0 };
    await options.beforeChanges?.();

    const done: Step[] = [];
    const run = async (what: string, action: () => Promise<unknown>, undo?: () => Promise<unknown>): Promise<void> => {
      try {
        await action();
      } catch (err) {
        throw await this.rollback(done, uuid, info.name, what, err);
      }
      done.push({ what, ...(undo === undefined ? {} : { undo }) });
    };

    if (live !== null) await this.runLive(conn, uuid, live.plan.live, run);
    if (info.active) {
      const warning = await this.runKernel(info.name, wanted === null ? null : plan.es2Kernel, run);
      if (warning !== undefined) plan.warnings = [...plan.warnings, warning];
      await this.runKnobs(uuid, wanted === null ? [] : plan.hostKnobs, run);
    }
    if (persistent !== null && persistentXml !== null && persistent.xml !== persistentXml && !persistent.plan.noop) {
      await run('define the persistent domain', () => conn.domainDefineXML(persistent.xml), () => conn.domainDefineXML(persistentXml));
    }

    const outcome: ApplyOutcome = { uuid, name: info.name, status: info.active ? 'applied' : 'stored', plan, steps: done.length };
    this.deps.logger.info('domain converged', {
      domain: info.name, uuid, enabled: wanted !== null, steps: done.map((s) => s.what), result: 'ok',
    });
    return outcome;
  }

  /**
   * How the running domain differs from `policy` (what a converge would change live): someone ran
   * `virsh vcpupin`, deleted an IOThread, reset polling, or removed es2's metadata.
   */
  async drift(conn: Connection, uuid: string, policy: Policy | null, facts: HostFacts): Promise<DriftItem[]> {
    const ops = transformTo(policy, facts)(await conn.domainGetXMLDesc(uuid)).plan.live;
    if (ops.length === 0) return [];
    const pins = await conn.domainGetVcpuPinInfo(uuid, CURRENT);
    const threads = await conn.domainGetIOThreadInfo(uuid, CURRENT);
    const polls = await readPolls(conn, uuid);
    const cpus = (list: number[] | undefined): string => (list === undefined ? 'none' : formatCpuset(list));
    const items: DriftItem[] = [];
    for (const op of ops) {
      switch (op.op) {
        case 'vcpu-pin':
          items.push({ what: `vcpu ${op.vcpu} pin`, expected: cpus(op.cpus), actual: cpus(pins[op.vcpu]) });
          break;
        case 'iothread-pin':
          items.push({ what: `iothread ${op.id} pin`, expected: cpus(op.cpus), actual: cpus(threads.find((t) => t.id === op.id)?.cpus) });
          break;
        case 'iothread-add':
          items.push({ what: `iothread ${op.id}`, expected: 'present', actual: 'absent' });
          break;
        case 'iothread-del':
          items.push({ what: `iothread ${op.id}`, expected: 'absent', actual: 'present' });
          break;
        case 'iothread-poll':
          if (!samePoll(op, polls)) {
            const have = polls.get(op.id);
            items.push({
              what: `iothread ${op.id} polling`,
              expected: `max=${op.pollMaxNs ?? '-'} grow=${op.pollGrow ?? '-'} shrink=${op.pollShrink ?? '-'}`,
              actual: have === undefined ? 'unknown' : `max=${have.pollMaxNs ?? '-'} grow=${have.pollGrow ?? '-'} shrink=${have.pollShrink ?? '-'}`,
            });
          }
          break;
        case 'metadata-set':
        case 'metadata-remove':
          items.push({ what: 'es2 metadata', expected: op.op === 'metadata-set' ? 'present' : 'absent', actual: op.op === 'metadata-set' ? 'differs' : 'present' });
          break;
      }
    }
    return items;
  }

  private async runLive(
    conn: Connection,
    uuid: string,
    ops: LiveOp[],
    run: (what: string, action: () => Promise<unknown>, undo?: () => Promise<unknown>) => Promise<void>,
  ): Promise<void> {
    if (ops.length === 0) return;
    // What each op replaces, read once and in parallel (independent queries), so undo can put it back.
    const has = (...kinds: LiveOp['op'][]): boolean => ops.some((o) => kinds.includes(o.op));
    const [pins, threads, polls, metadata] = await Promise.all([
      has('vcpu-pin') ? conn.domainGetVcpuPinInfo(uuid, CURRENT) : [],
      has('iothread-pin', 'iothread-del') ? conn.domainGetIOThreadInfo(uuid, CURRENT) : [],
      has('iothread-poll') ? readPolls(conn, uuid) : new Map() as PollState,
      has('metadata-set', 'metadata-remove')
        ? conn.domainGetMetadata(uuid, DomainMetadataType.ELEMENT, ES2_NS, CURRENT).catch((err: unknown) => {
          if (isNoMetadata(err)) return null;
          throw err;
        })
        : null,
    ]);
    const restoreMetadata = (): Promise<void> =>
      conn.domainSetMetadata(uuid, DomainMetadataType.ELEMENT, metadata, metadata === null ? null : ES2_METADATA_KEY, ES2_NS, CURRENT);

    for (const op of ops) {
      switch (op.op) {
        case 'iothread-add':
          await run(`add IOThread ${op.id}`, () => conn.domainAddIOThread(uuid, op.id, CURRENT),
            () => conn.domainDelIOThread(uuid, op.id, CURRENT));
          break;
        case 'iothread-del': {
          const before = threads.find((t) => t.id === op.id);
          await run(`delete IOThread ${op.id}`, () => conn.domainDelIOThread(uuid, op.id, CURRENT), async () => {
            await conn.domainAddIOThread(uuid, op.id, CURRENT);
            if (before !== undefined) await conn.domainPinIOThread(uuid, op.id, before.cpus, CURRENT);
          });
          break;
        }
        case 'iothread-pin': {
          const before = threads.find((t) => t.id === op.id)?.cpus;
          await run(`pin IOThread ${op.id} to ${op.cpus.join(',')}`, () => conn.domainPinIOThread(uuid, op.id, op.cpus, CURRENT),
            before === undefined ? undefined : () => conn.domainPinIOThread(uuid, op.id, before, CURRENT));
          break;
        }
        case 'iothread-poll': {
          // Poll values are not in the live XML before libvirt 9.4, so the plan always carries
          // them; what libvirt reports already in force is not set again.
          if (samePoll(op, polls)) break;
          const before = polls.get(op.id);
          const params = {
            ...(op.pollMaxNs === undefined ? {} : { pollMaxNs: op.pollMaxNs }),
            ...(op.pollGrow === undefined ? {} : { pollGrow: op.pollGrow }),
            ...(op.pollShrink === undefined ? {} : { pollShrink: op.pollShrink }),
          };
          await run(`set IOThread ${op.id} polling`, () => conn.domainSetIOThreadParams(uuid, op.id, params, CURRENT),
            before === undefined ? undefined : () => conn.domainSetIOThreadParams(uuid, op.id, before, CURRENT));
          break;
        }
        case 'vcpu-pin': {
          const before = pins[op.vcpu];
          await run(`pin vCPU ${op.vcpu} to ${op.cpus.join(',')}`, () => conn.domainPinVcpu(uuid, op.vcpu, op.cpus, CURRENT),
            before === undefined ? undefined : () => conn.domainPinVcpu(uuid, op.vcpu, before, CURRENT));
          break;
        }
        case 'metadata-set':
          await run('set the es2 metadata', () => conn.domainSetMetadata(uuid, DomainMetadataType.ELEMENT, op.xml, op.key, op.uri, CURRENT),
            restoreMetadata);
          break;
        case 'metadata-remove':
          await run('remove the es2 metadata', () => conn.domainSetMetadata(uuid, DomainMetadataType.ELEMENT, null, null, op.uri, CURRENT),
            restoreMetadata);
          break;
      }
    }
  }

  /** Returns a warning when the VM has no entry in the ES2 kernel interface (not a KVM domain). */
  private async runKernel(
    name: string,
    settings: Es2KernelSettings | null,
    run: (what: string, action: () => Promise<unknown>, undo?: () => Promise<unknown>) => Promise<void>,
  ): Promise<string | undefined> {
    const backend = this.deps.backend;
    if (backend.kind !== 'es2-kernel') return undefined;
    let before: Es2KernelSettings | null;
    try {
      before = backend.read(name);
    } catch (err) {
      // A TCG domain on an ES2 host has no per-VM entry: the rest of the policy still applies,
      // and the plan says what did not.
      if (!(err instanceof Es2Error && err.code === 'HOST_UNSUPPORTED')) throw err;
      return settings?.enabled === true ? `ES2 kernel settings not applied: ${err.message}` : undefined;
    }
    const restore = async (): Promise<void> => {
      if (before === null) backend.disable(name);
      else backend.apply(name, before);
    };
    if (settings === null || !settings.enabled) {
      if (before !== null && before.enabled) await run('disable ES2 in the kernel', async () => backend.disable(name), restore);
      return undefined;
    }
    if (JSON.stringify(before) === JSON.stringify(settings)) return undefined;
    await run('write the ES2 kernel settings', async () => backend.apply(name, settings), restore);
    return undefined;
  }

  private async runKnobs(
    uuid: string,
    changes: Plan['hostKnobs'],
    run: (what: string, action: () => Promise<unknown>, undo?: () => Promise<unknown>) => Promise<void>,
  ): Promise<void> {
    const knobs = this.deps.knobs;
    const held = knobs.list().filter((k) => uuid in k.holders);
    const wanted = new Map(changes.map((c) => [c.knob as string, c.value]));
    for (const k of held) {
      if (wanted.has(k.knob)) continue;
      const previous = k.holders[uuid]!;
      await run(`release ${k.knob}`, async () => knobs.release(uuid, k.knob), async () => knobs.hold(uuid, k.knob, previous));
    }
    for (const [knob, value] of wanted) {
      if (!isKnobName(knob)) continue;
      const previous = held.find((k) => k.knob === knob)?.holders[uuid];
      if (previous === value) continue;
      await run(`hold ${knob}=${value}`, async () => knobs.hold(uuid, knob, value),
        async () => (previous === undefined ? knobs.release(uuid, knob) : knobs.hold(uuid, knob, previous)));
    }
  }

  private async rollback(done: Step[], uuid: string, name: string, failed: string, err: unknown): Promise<Es2Error> {
    const undoErrors: string[] = [];
    for (const step of [...done].reverse()) {
      if (step.undo === undefined) continue;
      try {
        await step.undo();
      } catch (e) {
        undoErrors.push(`${step.what}: ${(e as Error).message}`);
      }
    }
    const cause = err instanceof Error ? err.message : String(err);
    const tail = undoErrors.length === 0
      ? `; ${done.length} earlier step(s) undone`
      : `; undo failed for: ${undoErrors.join('; ')}`;
    this.deps.logger.error('apply failed', { domain: name, uuid, step: failed, error: cause, undone: done.length, undoErrors, result: 'failed' });
    if (err instanceof Es2Error) return new Es2Error(err.code, `${failed}: ${err.message}${tail}`, { details: err.details, cause: err });
    const code = err instanceof LibvirtError && isConnectionLost(err) ? 'LIBVIRT_UNAVAILABLE' : 'INTERNAL';
    return new Es2Error(code, `${failed} failed: ${cause}${tail}`, { cause: err });
  }
}
