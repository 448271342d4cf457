// Exit handling time (EHT): the share of vCPU time spent handling exits, estimated from exit rates
// and a cost per exit reason. docs/SAVINGS.md explains the defaults and how to measure your own.

import { validationFailed } from '../errors/index.js';
import { REASONS, type Reason } from '../stats/counters.js';
import type { RatesByReason } from './window.js';

export type ExitCosts = Record<Reason, number>;

/**
 * Default handling cost per exit in nanoseconds: order-of-magnitude figures for a recent x86 host
 * (see docs/SAVINGS.md), meant to be replaced by measurements of the host at hand. For `exits`
 * the figure is the cost of an exit that no specific reason accounts for (see `eht`).
 */
export const DEFAULT_EXIT_COSTS_NS: Readonly<ExitCosts> = Object.freeze({
  exits: 1500,
  io_exits: 3000,
  mmio_exits: 5000,
  irq_exits: 1000,
  // Waiting for the next interrupt is not handling.
  halt_exits: 0,
  irq_window_exits: 500,
  request_irq_exits: 3000,
  signal_exits: 3000,
  nmi_window_exits: 500,
});

/**
 * Reasons that each label a subset of the hardware exits counted in `exits`. The others
 * (`request_irq_exits`, `signal_exits`) count extra returns to userspace between guest entries,
 * on top of the hardware exit that preceded them.
 */
const HARDWARE_REASONS: readonly Reason[] = [
  'io_exits',
  'mmio_exits',
  'irq_exits',
  'halt_exits',
  'irq_window_exits',
  'nmi_window_exits',
];
const USERSPACE_REASONS: readonly Reason[] = ['request_irq_exits', 'signal_exits'];

/** The defaults with `overrides` applied; a cost must be a finite number of nanoseconds ≥ 0. */
export function exitCosts(overrides: Partial<Record<string, number>> = {}): ExitCosts {
  const costs: ExitCosts = { ...DEFAULT_EXIT_COSTS_NS };
  for (const [reason, ns] of Object.entries(overrides)) {
    if (!(REASONS as readonly string[]).includes(reason)) {
      throw validationFailed(`unknown exit reason ${JSON.stringify(reason)}`, [
        { path: `/costs/${reason}`, message: `expected one of ${REASONS.join(', ')}` },
      ]);
    }
    if (ns === undefined || !Number.isFinite(ns) || ns < 0) {
      throw validationFailed(`cost of ${reason} must be a number of nanoseconds >= 0`, [
        { path: `/costs/${reason}`, message: `got ${String(ns)}` },
      ]);
    }
    costs[reason as Reason] = ns;
  }
  return costs;
}

/**
 * EHT as a fraction of vCPU time: Σ perSecond × costNs × 1e-9 / vcpus. `exits` is the total and
 * already contains every hardware exit the specific reasons label, so it is not charged as such:
 * only its remainder (exits − Σ hardware reasons, never below 0) is, at the `exits` cost. That
 * remainder holds the exits handled inside KVM without a reason counter of their own, among them
 * virtqueue kicks through ioeventfd and APIC MSR writes, which are what ES2 removes.
 * null when the rates or the vCPU count are unknown.
 */
export function eht(rates: { vcpus: number; byReason: RatesByReason }, costs: Readonly<ExitCosts>): number | null {
  if (rates.vcpus <= 0) return null;
  const total = rates.byReason.exits.perSecond;
  if (total === null) return null;
  let ns = 0;
  let labelled = 0;
  for (const r of HARDWARE_REASONS) {
    const perSecond = rates.byReason[r].perSecond ?? 0;
    labelled += perSecond;
    ns += perSecond * costs[r];
  }
  for (const r of USERSPACE_REASONS) ns += (rates.byReason[r].perSecond ?? 0) * costs[r];
  ns += Math.max(0, total - labelled) * costs.exits;
  return (ns * 1e-9) / rates.vcpus;
}
