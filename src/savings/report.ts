// The savings report of one domain (DESIGN.md, "Savings (contract)"): a stored baseline against the
// current window. Values that cannot be computed are null, never NaN or Infinity.

import { REASONS, type DomainSample, type Reason } from '../stats/counters.js';
import { DEFAULT_EXIT_COSTS_NS, eht, type ExitCosts } from './costs.js';
import { windowRates, type RatesByReason } from './window.js';

/** Fewer I/O ops than this in either window make the report `insufficient-data`. */
export const DEFAULT_MIN_IO_OPS = 1000;

/** A baseline as the store persists it: plain JSON. */
export interface Baseline {
  /** ISO time of the window's last sample. */
  capturedAt: string;
  /** ISO time of the window's first sample. */
  start: string;
  /** Counted seconds (restart steps left out). */
  seconds: number;
  ioOps: number;
  ioOpsPerSecond: number | null;
  vcpus: number;
  hasKvmStats: boolean;
  byReason: RatesByReason;
}

export type Confidence = 'ok' | 'no-baseline' | 'insufficient-data' | 'no-kvm-stats';

export interface ReasonSavings {
  /** 1 − current.perIoOp / baseline.perIoOp. */
  reduction: number | null;
  /** baseline.perIoOp × current.ioOpsPerSecond − current.perSecond; negative when exits grew. */
  avoidedPerSecond: number | null;
}

export interface NovaIdentity {
  project: string | null;
  flavor: string | null;
}

export interface SavingsReport {
  /** null for a domain known only by name (a capture). */
  uuid: string | null;
  name: string;
  nova: NovaIdentity;
  baseline: {
    capturedAt: string;
    seconds: number;
    ioOpsPerSecond: number | null;
    vcpus: number;
    byReason: RatesByReason;
  } | null;
  current: {
    start: string | null;
    end: string | null;
    seconds: number;
    ioOpsPerSecond: number | null;
    vcpus: number;
    byReason: RatesByReason;
  };
  savings: {
    byReason: Record<Reason, ReasonSavings>;
    ehtBefore: number | null;
    ehtAfter: number | null;
  };
  confidence: Confidence;
}

export interface ReportInput {
  uuid: string | null;
  name: string;
  nova?: NovaIdentity | null;
  baseline: Baseline | null;
  /** The current window's samples, in time order. */
  current: readonly DomainSample[];
  costs?: Readonly<ExitCosts>;
  minIoOps?: number;
}

function iso(seconds: number): string {
  return new Date(seconds * 1000).toISOString();
}

function finiteOrNull(x: number): number | null {
  return Number.isFinite(x) ? x : null;
}

/** The baseline of a window, or null when the window has no countable step. */
export function baselineFromWindow(samples: readonly DomainSample[]): Baseline | null {
  const w = windowRates(samples);
  if (w.seconds === 0 || w.start === null || w.end === null) return null;
  return {
    capturedAt: iso(w.end),
    start: iso(w.start),
    seconds: w.seconds,
    ioOps: w.ioOps,
    ioOpsPerSecond: w.ioOpsPerSecond,
    vcpus: w.vcpus,
    hasKvmStats: w.hasKvmStats,
    byReason: w.byReason,
  };
}

function reasonSavings(
  baseline: Baseline | null,
  current: { ioOpsPerSecond: number | null; byReason: RatesByReason },
  reason: Reason,
): ReasonSavings {
  const before = baseline?.byReason[reason].perIoOp ?? null;
  const now = current.byReason[reason];
  const reduction = before === null || before === 0 || now.perIoOp === null ? null : finiteOrNull(1 - now.perIoOp / before);
  const avoidedPerSecond =
    before === null || current.ioOpsPerSecond === null || now.perSecond === null
      ? null
      : finiteOrNull(before * current.ioOpsPerSecond - now.perSecond);
  return { reduction, avoidedPerSecond };
}

export function buildReport(input: ReportInput): SavingsReport {
  const costs = input.costs ?? DEFAULT_EXIT_COSTS_NS;
  const minIoOps = input.minIoOps ?? DEFAULT_MIN_IO_OPS;
  const { baseline } = input;
  const w = windowRates(input.current);

  const byReason = {} as Record<Reason, ReasonSavings>;
  for (const r of REASONS) byReason[r] = reasonSavings(baseline, w, r);

  let confidence: Confidence;
  if ((w.start !== null && !w.hasKvmStats) || (baseline !== null && !baseline.hasKvmStats)) confidence = 'no-kvm-stats';
  else if (baseline === null) confidence = 'no-baseline';
  else if (w.ioOps < minIoOps || baseline.ioOps < minIoOps) confidence = 'insufficient-data';
  else confidence = 'ok';

  return {
    uuid: input.uuid,
    name: input.name,
    nova: { project: input.nova?.project ?? null, flavor: input.nova?.flavor ?? null },
    baseline:
      baseline === null
        ? null
        : {
            capturedAt: baseline.capturedAt,
            seconds: baseline.seconds,
            ioOpsPerSecond: baseline.ioOpsPerSecond,
            vcpus: baseline.vcpus,
            byReason: baseline.byReason,
          },
    current: {
      start: w.start === null ? null : iso(w.start),
      end: w.end === null ? null : iso(w.end),
      seconds: w.seconds,
      ioOpsPerSecond: w.ioOpsPerSecond,
      vcpus: w.vcpus,
      byReason: w.byReason,
    },
    savings: {
      byReason,
      ehtBefore: baseline === null ? null : eht(baseline, costs),
      ehtAfter: eht(w, costs),
    },
    confidence,
  };
}
