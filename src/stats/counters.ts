// One libvirt bulk stats record (typed values from the binding, or the strings of a capture) to a
// DomainSample: exit counters summed over vCPUs and the I/O op counter. This runs for every domain
// on every stats cycle, so key names are classified once and remembered.

import type { TypedParamValue } from '../libvirt/index.js';

/** KVM exit counters es2 reads, `exits` (the total) first. Libvirt names them `vcpu.N.<reason>.sum`. */
export const REASONS = [
  'exits',
  'io_exits',
  'mmio_exits',
  'irq_exits',
  'halt_exits',
  'irq_window_exits',
  'request_irq_exits',
  'signal_exits',
  'nmi_window_exits',
] as const;

export type Reason = (typeof REASONS)[number];

export type ExitCounters = Record<Reason, bigint>;

/** One domain at one instant. Counters stay bigint (libvirt's ULLONG); deltas become numbers. */
export interface DomainSample {
  /** Absent for a capture, which names domains but carries no UUIDs. */
  uuid?: string;
  name: string;
  /** Unix time in seconds. */
  time: number;
  /** `vcpu.current`, or the number of distinct `vcpu.N` indices when that key is absent. */
  vcpus: number;
  /** Summed over vCPUs; 0n for a reason the record does not carry. */
  exits: ExitCounters;
  /** Σ net.N.rx.pkts + net.N.tx.pkts + block.N.rd.reqs + block.N.wr.reqs. */
  ioOps: bigint;
  /** True when any `vcpu.N.exits.sum` is present (KVM domain with QEMU query-stats). */
  hasKvmStats: boolean;
  /**
   * How many counter keys (exit and I/O) the record carried. A record with fewer than the one
   * before it lost part of its stats (see the collector's NOWAIT handling).
   */
  counterKeys: number;
}

const enum KeyKind {
  Ignored,
  VcpuCurrent,
  /** Any other `vcpu.N.*` key: counts vCPU N as present. */
  VcpuEntry,
  Exit,
  IoOp,
}

interface KeyClass {
  kind: KeyKind;
  vcpu: number;
  reason: Reason | null;
}

const IGNORED: KeyClass = { kind: KeyKind.Ignored, vcpu: -1, reason: null };
const VCPU_CURRENT: KeyClass = { kind: KeyKind.VcpuCurrent, vcpu: -1, reason: null };
const IO_OP: KeyClass = { kind: KeyKind.IoOp, vcpu: -1, reason: null };

const REASON_SET: ReadonlySet<string> = new Set(REASONS);
const VCPU_KEY = /^vcpu\.(\d+)\.(.+)$/;
const IO_KEY = /^(?:net\.\d+\.(?:rx|tx)\.pkts|block\.\d+\.(?:rd|wr)\.reqs)$/;

function classify(key: string): KeyClass {
  if (key === 'vcpu.current') return VCPU_CURRENT;
  if (IO_KEY.test(key)) return IO_OP;
  const m = VCPU_KEY.exec(key);
  if (m === null) return IGNORED;
  const vcpu = Number(m[1]);
  const rest = m[2] as string;
  if (rest.endsWith('.sum')) {
    const reason = rest.slice(0, -'.sum'.length);
    if (REASON_SET.has(reason)) return { kind: KeyKind.Exit, vcpu, reason: reason as Reason };
  }
  return { kind: KeyKind.VcpuEntry, vcpu, reason: null };
}

// Keys come from libvirt and are bounded by devices and vCPUs; the cap only guards against a
// source that invents keys without end.
const KEY_CACHE_LIMIT = 65_536;
const keyCache = new Map<string, KeyClass>();

function classifyCached(key: string): KeyClass {
  let c = keyCache.get(key);
  if (c === undefined) {
    if (keyCache.size >= KEY_CACHE_LIMIT) keyCache.clear();
    c = classify(key);
    keyCache.set(key, c);
  }
  return c;
}

/** True for a key whose value es2 sums as a counter: a capture must carry an integer there. */
export function isCounterKey(key: string): boolean {
  const kind = classifyCached(key).kind;
  return kind === KeyKind.Exit || kind === KeyKind.IoOp || kind === KeyKind.VcpuCurrent;
}

function toBigInt(v: TypedParamValue): bigint {
  switch (typeof v) {
    case 'bigint':
      return v;
    case 'number':
      return Number.isSafeInteger(v) ? BigInt(v) : BigInt(Math.trunc(v));
    case 'string':
      return BigInt(v);
    default:
      return 0n;
  }
}

export function zeroExits(): ExitCounters {
  return {
    exits: 0n,
    io_exits: 0n,
    mmio_exits: 0n,
    irq_exits: 0n,
    halt_exits: 0n,
    irq_window_exits: 0n,
    request_irq_exits: 0n,
    signal_exits: 0n,
    nmi_window_exits: 0n,
  };
}

// Reused across calls (the cycle is synchronous per record) so counting vCPUs allocates nothing.
const seenVcpus = new Set<number>();

/**
 * Builds the sample of one stats record taken at `time` (seconds). Unknown keys are ignored; a
 * string counter that is not an integer throws (the capture parser checks before calling).
 */
export function sampleFromStats(
  name: string,
  uuid: string | undefined,
  stats: Readonly<Record<string, TypedParamValue>>,
  time: number,
): DomainSample {
  const exits = zeroExits();
  let ioOps = 0n;
  let vcpuCurrent = -1;
  let hasKvmStats = false;
  let counterKeys = 0;
  seenVcpus.clear();
  for (const key in stats) {
    const c = classifyCached(key);
    switch (c.kind) {
      case KeyKind.Ignored:
        break;
      case KeyKind.VcpuCurrent:
        vcpuCurrent = Number(stats[key]);
        break;
      case KeyKind.VcpuEntry:
        seenVcpus.add(c.vcpu);
        break;
      case KeyKind.Exit: {
        seenVcpus.add(c.vcpu);
        const reason = c.reason as Reason;
        exits[reason] += toBigInt(stats[key] as TypedParamValue);
        if (reason === 'exits') hasKvmStats = true;
        counterKeys++;
        break;
      }
      case KeyKind.IoOp:
        ioOps += toBigInt(stats[key] as TypedParamValue);
        counterKeys++;
        break;
    }
  }
  return {
    // Always present (possibly undefined) so every sample has the same shape.
    uuid: uuid === '' ? undefined : uuid,
    name,
    time,
    vcpus: vcpuCurrent >= 0 ? vcpuCurrent : seenVcpus.size,
    exits,
    ioOps,
    hasKvmStats,
    counterKeys,
  };
}
