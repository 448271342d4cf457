// Timing helpers for the benchmarks. The machine is shared (2 cores, other engineers' tests), so no
// figure is an absolute time: each benchmark times its subject and its anchor in alternating rounds
// and reports ratios of medians. Alternating means the two sides see the same background load
// within a round; flipping the order every round keeps a warm-cache or "second one runs faster"
// effect from favouring either side.

import { performance } from 'node:perf_hooks';

export function median(xs: readonly number[]): number {
  return quantile(xs, 0.5);
}

/** Linear interpolation between order statistics (the R-7 / Excel definition). */
export function quantile(xs: readonly number[], q: number): number {
  if (xs.length === 0) throw new RangeError('quantile of no samples');
  const s = [...xs].sort((a, b) => a - b);
  const pos = (s.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return (s[lo] as number) + ((s[hi] as number) - (s[lo] as number)) * (pos - lo);
}

/** Milliseconds one call of `fn` takes, averaged over `times` back-to-back calls. */
export async function msPerCall(fn: () => unknown, times = 1): Promise<number> {
  const t0 = performance.now();
  for (let i = 0; i < times; i++) await fn();
  return (performance.now() - t0) / times;
}

export interface Side {
  /** One measurement (a time in ms, or a rate): the larger-is-worse or larger-is-better is the caller's. */
  run(): Promise<number>;
  /** Runs after each measurement, untimed: puts the system back where the next round expects it. */
  reset?(): Promise<void>;
}

export interface Alternation {
  subject: number[];
  anchor: number[];
  /** subject / anchor, one per round. */
  roundRatios: number[];
}

export interface AlternateOptions {
  rounds: number;
  /** Untimed rounds first (JIT, libvirt caches, page cache). */
  warmup?: number;
}

/** Measures `subject` and `anchor` in alternating order, `rounds` times each. */
export async function alternate(subject: Side, anchor: Side, options: AlternateOptions): Promise<Alternation> {
  const out: Alternation = { subject: [], anchor: [], roundRatios: [] };
  const once = async (side: Side): Promise<number> => {
    const v = await side.run();
    await side.reset?.();
    return v;
  };
  for (let i = 0; i < (options.warmup ?? 1); i++) {
    await once(subject);
    await once(anchor);
  }
  for (let i = 0; i < options.rounds; i++) {
    let s: number;
    let a: number;
    if (i % 2 === 0) {
      s = await once(subject);
      a = await once(anchor);
    } else {
      a = await once(anchor);
      s = await once(subject);
    }
    out.subject.push(s);
    out.anchor.push(a);
    out.roundRatios.push(s / a);
  }
  return out;
}

/** The reported ratio: median subject over median anchor. */
export function ratioOfMedians(a: Alternation): number {
  return median(a.subject) / median(a.anchor);
}

/** "round ratios IQR 1.02–1.15, 40 rounds": how far the per-round ratios spread. */
export function spread(a: Alternation): string {
  return `round ratios IQR ${fmt(quantile(a.roundRatios, 0.25))}–${fmt(quantile(a.roundRatios, 0.75))}, ${a.roundRatios.length} rounds`;
}

export function fmt(x: number, digits = 2): string {
  if (!Number.isFinite(x)) return String(x);
  return x.toFixed(digits);
}

export function ms(x: number): string {
  return x >= 100 ? `${x.toFixed(0)} ms` : x >= 10 ? `${x.toFixed(1)} ms` : `${x.toFixed(2)} ms`;
}

export function sleep(msec: number): Promise<void> {
  return new Promise((r) => setTimeout(r, msec));
}
