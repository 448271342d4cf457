// Window rates (DESIGN.md, "Savings"): the sum of the deltas between consecutive samples. A step in
// which the domain restarted is skipped, its counts and its time alike, so no rate is ever negative.

import { REASONS, type DomainSample, type Reason } from '../stats/counters.js';

export interface ReasonRates {
  /** Exits per second of counted time; null when nothing was counted or the domain has no KVM counters. */
  perSecond: number | null;
  /** Exits per I/O op; null when the window saw no I/O op or the domain has no KVM counters. */
  perIoOp: number | null;
}

export type RatesByReason = Record<Reason, ReasonRates>;

export interface WindowRates {
  /** Times (unix seconds) of the first and last sample; null for an empty window. */
  start: number | null;
  end: number | null;
  /** Counted time: the window's span minus the skipped steps. */
  seconds: number;
  /** I/O ops over the counted steps. */
  ioOps: number;
  ioOpsPerSecond: number | null;
  /** vCPUs of the last sample (0 for an empty window). */
  vcpus: number;
  /** Whether the last sample carries KVM exit counters. */
  hasKvmStats: boolean;
  /** Steps left out (restart, vCPU count or counter set changed, time not moving forward). */
  skippedSteps: number;
  skippedSeconds: number;
  byReason: RatesByReason;
}

/**
 * True when the step from `prev` to `next` cannot be counted. Any counter going down means the
 * domain restarted. A changed vCPU count also breaks the step: the sums then cover a different
 * set of vCPUs, so an unplugged vCPU's counts could hide behind the others' growth. A change in
 * whether KVM counters are present would turn their appearance into one huge bogus delta.
 */
export function isBrokenStep(prev: DomainSample, next: DomainSample): boolean {
  if (next.time <= prev.time) return true;
  if (next.vcpus !== prev.vcpus || next.hasKvmStats !== prev.hasKvmStats) return true;
  if (next.ioOps < prev.ioOps) return true;
  for (const r of REASONS) if (next.exits[r] < prev.exits[r]) return true;
  return false;
}

function ratio(numerator: number, denominator: number): number | null {
  if (denominator === 0) return null;
  const q = numerator / denominator;
  return Number.isFinite(q) ? q : null;
}

/** Rates of one window. `samples` are one domain's, in time order. */
export function windowRates(samples: readonly DomainSample[]): WindowRates {
  const counts = Object.fromEntries(REASONS.map((r) => [r, 0])) as Record<Reason, number>;
  let seconds = 0;
  let ioOps = 0;
  let skippedSteps = 0;
  let skippedSeconds = 0;
  // The deltas of consecutive countable steps telescope: a run of them adds its last sample minus
  // its first, once. This runs for every domain on every report and /metrics scrape, and a bigint
  // subtraction per step and reason allocated a bigint each (bench stats-cycle, api-read).
  const addRun = (from: DomainSample, to: DomainSample): void => {
    if (from === to) return;
    seconds += to.time - from.time;
    ioOps += Number(to.ioOps - from.ioOps);
    for (const r of REASONS) counts[r] += Number(to.exits[r] - from.exits[r]);
  };
  let runStart = samples[0];
  for (let i = 1; i < samples.length; i++) {
    const prev = samples[i - 1] as DomainSample;
    const next = samples[i] as DomainSample;
    if (isBrokenStep(prev, next)) {
      addRun(runStart as DomainSample, prev);
      runStart = next;
      skippedSteps++;
      skippedSeconds += Math.max(0, next.time - prev.time);
    }
  }
  if (runStart !== undefined) addRun(runStart, samples[samples.length - 1] as DomainSample);
  const first = samples[0];
  const last = samples[samples.length - 1];
  const hasKvmStats = last?.hasKvmStats ?? false;
  const byReason = {} as RatesByReason;
  for (const r of REASONS) {
    byReason[r] = hasKvmStats
      ? { perSecond: ratio(counts[r], seconds), perIoOp: ratio(counts[r], ioOps) }
      : { perSecond: null, perIoOp: null };
  }
  return {
    start: first?.time ?? null,
    end: last?.time ?? null,
    seconds,
    ioOps,
    ioOpsPerSecond: ratio(ioOps, seconds),
    vcpus: last?.vcpus ?? 0,
    hasKvmStats,
    skippedSteps,
    skippedSeconds,
    byReason,
  };
}
