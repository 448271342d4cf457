import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';

import fc from 'fast-check';

import {
  DEFAULT_EXIT_COSTS_NS,
  baselineFromWindow,
  buildReport,
  eht,
  exitCosts,
  windowRates,
  type RatesByReason,
  type SavingsReport,
} from '../../src/savings/index.js';
import { captureSamples, parseCapture, REASONS, zeroExits, type DomainSample, type Reason } from '../../src/stats/index.js';
import { fixture } from '../helpers/paths.js';

function approx(actual: number | null | undefined, expected: number, label = ''): void {
  assert.ok(typeof actual === 'number', `${label}: expected ${expected}, got ${String(actual)}`);
  assert.ok(Math.abs(actual - expected) <= 1e-9 * Math.max(1, Math.abs(expected)), `${label}: expected ${expected}, got ${actual}`);
}

/** `expected[reason]` is [perSecond, perIoOp]. */
function assertRates(actual: RatesByReason, expected: Record<Reason, [number, number]>, label: string): void {
  for (const reason of REASONS) {
    approx(actual[reason].perSecond, expected[reason][0], `${label} ${reason}/s`);
    approx(actual[reason].perIoOp, expected[reason][1], `${label} ${reason}/io`);
  }
}

function sample(time: number, exits: Partial<Record<Reason, number>>, ioOps: number, vcpus = 2, kvm = true): DomainSample {
  const counters = zeroExits();
  for (const [r, v] of Object.entries(exits)) counters[r as Reason] = BigInt(v);
  return { name: 'vm', time, vcpus, exits: counters, ioOps: BigInt(ioOps), hasKvmStats: kvm, counterKeys: 0 };
}

function loadFixture(name: string): Map<string, DomainSample[]> {
  return captureSamples(parseCapture(readFileSync(fixture('captures', name), 'utf8'), name));
}

describe('windowRates', () => {
  it('sums the deltas of consecutive samples', () => {
    const w = windowRates([
      sample(100, { exits: 1000, io_exits: 100 }, 500),
      sample(110, { exits: 3000, io_exits: 300 }, 1500),
      sample(130, { exits: 4000, io_exits: 500 }, 2500),
    ]);
    // 3000 exits and 400 io_exits over 30 s and 2000 I/O ops.
    assert.equal(w.seconds, 30);
    assert.equal(w.ioOps, 2000);
    approx(w.ioOpsPerSecond, 2000 / 30);
    approx(w.byReason.exits.perSecond, 100);
    approx(w.byReason.exits.perIoOp, 1.5);
    approx(w.byReason.io_exits.perSecond, 400 / 30);
    approx(w.byReason.io_exits.perIoOp, 0.2);
    assert.equal(w.byReason.mmio_exits.perSecond, 0);
    assert.deepEqual([w.start, w.end, w.vcpus, w.skippedSteps, w.skippedSeconds], [100, 130, 2, 0, 0]);
  });

  it('skips a restart step with its time', () => {
    const w = windowRates([
      sample(0, { exits: 5000 }, 1000),
      sample(10, { exits: 6000 }, 2000),
      // restart: counters start over; this step's 20 s and its counts are left out
      sample(30, { exits: 100 }, 50),
      sample(40, { exits: 600 }, 550),
    ]);
    // counted: (6000-5000) + (600-100) = 1500 exits over 10 + 10 s and 1000 + 500 I/O ops
    assert.equal(w.seconds, 20);
    assert.equal(w.ioOps, 1500);
    approx(w.byReason.exits.perSecond, 75);
    approx(w.byReason.exits.perIoOp, 1);
    assert.equal(w.skippedSteps, 1);
    assert.equal(w.skippedSeconds, 20);
  });

  it('treats any single counter going down as a restart', () => {
    const w = windowRates([sample(0, { exits: 10, halt_exits: 5 }, 100), sample(10, { exits: 20, halt_exits: 4 }, 200)]);
    assert.equal(w.seconds, 0);
    assert.equal(w.skippedSteps, 1);
    assert.equal(w.byReason.exits.perSecond, null);
    assert.equal(w.ioOpsPerSecond, null);
  });

  it('skips a step where the I/O op counter goes down', () => {
    const w = windowRates([sample(0, { exits: 10 }, 100), sample(10, { exits: 20 }, 50)]);
    assert.equal(w.skippedSteps, 1);
  });

  it('skips a step where the vCPU count or the presence of KVM counters changes', () => {
    const w = windowRates([
      sample(0, { exits: 100 }, 0, 2),
      sample(10, { exits: 200 }, 0, 4),
      sample(20, {}, 0, 4, false),
      sample(30, { exits: 300 }, 0, 4),
      sample(40, { exits: 350 }, 0, 4),
    ]);
    // only 30 -> 40 counts: 50 exits in 10 s
    assert.equal(w.seconds, 10);
    assert.equal(w.skippedSteps, 3);
    approx(w.byReason.exits.perSecond, 5);
    // no I/O op at all: per I/O op is not computable
    assert.equal(w.byReason.exits.perIoOp, null);
  });

  it('skips steps whose time does not move forward', () => {
    const w = windowRates([sample(10, { exits: 1 }, 1), sample(10, { exits: 5 }, 2), sample(20, { exits: 25 }, 12)]);
    assert.equal(w.seconds, 10);
    approx(w.byReason.exits.perSecond, 2);
  });

  it('gives nulls for an empty or one-sample window', () => {
    for (const samples of [[], [sample(5, { exits: 1 }, 1)]]) {
      const w = windowRates(samples);
      assert.equal(w.seconds, 0);
      assert.equal(w.ioOpsPerSecond, null);
      for (const r of REASONS) assert.deepEqual(w.byReason[r], { perSecond: null, perIoOp: null });
    }
    assert.deepEqual([windowRates([]).start, windowRates([]).vcpus, windowRates([]).hasKvmStats], [null, 0, false]);
  });

  it('has no exit rates for a domain without KVM counters', () => {
    const w = windowRates([sample(0, {}, 0, 1, false), sample(10, {}, 5000, 1, false)]);
    approx(w.ioOpsPerSecond, 500);
    for (const r of REASONS) assert.deepEqual(w.byReason[r], { perSecond: null, perIoOp: null });
  });

  it('never yields a negative or non-finite rate, whatever the samples (property)', () => {
    const counter = fc.bigInt({ min: 0n, max: 2n ** 64n - 1n });
    const arbSample = fc.record({
      dt: fc.integer({ min: 0, max: 100 }),
      exits: fc.array(counter, { minLength: REASONS.length, maxLength: REASONS.length }),
      ioOps: counter,
      vcpus: fc.integer({ min: 0, max: 4 }),
      kvm: fc.boolean(),
    });
    fc.assert(
      fc.property(fc.array(arbSample, { maxLength: 12 }), (steps) => {
        let time = 1_700_000_000;
        const samples = steps.map((s) => {
          time += s.dt;
          const exits = zeroExits();
          REASONS.forEach((r, i) => (exits[r] = s.exits[i] as bigint));
          return { name: 'p', time, vcpus: s.vcpus, exits, ioOps: s.ioOps, hasKvmStats: s.kvm, counterKeys: 0 };
        });
        const w = windowRates(samples);
        const values = [w.seconds, w.ioOps, w.ioOpsPerSecond, ...REASONS.flatMap((r) => [w.byReason[r].perSecond, w.byReason[r].perIoOp])];
        for (const v of values) {
          if (v === null) continue;
          assert.ok(Number.isFinite(v) && v >= 0, `bad value ${v}`);
        }
      }),
    );
  });
});

describe('eht', () => {
  it('charges the specific reasons and the unlabelled rest of exits, halts at 0', () => {
    const perSecond: Record<Reason, number> = {
      exits: 10_000,
      io_exits: 2000,
      mmio_exits: 500,
      irq_exits: 1000,
      halt_exits: 4000,
      irq_window_exits: 100,
      request_irq_exits: 50,
      signal_exits: 20,
      nmi_window_exits: 0,
    };
    const byReason = Object.fromEntries(REASONS.map((r) => [r, { perSecond: perSecond[r], perIoOp: null }])) as Parameters<typeof eht>[0]['byReason'];
    const costs = { exits: 1000, io_exits: 4000, mmio_exits: 6000, irq_exits: 2000, halt_exits: 0, irq_window_exits: 300, request_irq_exits: 5000, signal_exits: 7000, nmi_window_exits: 900 };
    // labelled hardware exits: 2000 + 500 + 1000 + 4000 + 100 + 0 = 7600, so 2400 unlabelled
    // ns per second: 2000×4000 + 500×6000 + 1000×2000 + 100×300 + 50×5000 + 20×7000 + 2400×1000
    //              = 8e6 + 3e6 + 2e6 + 30000 + 250000 + 140000 + 2.4e6 = 15_820_000
    approx(eht({ vcpus: 4, byReason }, costs), 15_820_000e-9 / 4);
    assert.equal(eht({ vcpus: 0, byReason }, costs), null);
  });

  it('never charges a negative rest when specific reasons exceed the total', () => {
    const byReason = Object.fromEntries(REASONS.map((r) => [r, { perSecond: 0, perIoOp: null }])) as Parameters<typeof eht>[0]['byReason'];
    byReason.exits = { perSecond: 100, perIoOp: null };
    byReason.io_exits = { perSecond: 150, perIoOp: null };
    approx(eht({ vcpus: 1, byReason }, DEFAULT_EXIT_COSTS_NS), (150 * DEFAULT_EXIT_COSTS_NS.io_exits) * 1e-9);
  });

  it('has overridable costs, checked', () => {
    assert.equal(exitCosts({ io_exits: 1234 }).io_exits, 1234);
    assert.equal(exitCosts().halt_exits, 0);
    assert.throws(() => exitCosts({ bogus_exits: 1 }), /unknown exit reason/);
    assert.throws(() => exitCosts({ io_exits: -1 }), /nanoseconds >= 0/);
    assert.throws(() => exitCosts({ io_exits: Number.NaN }), /nanoseconds >= 0/);
  });
});

describe('buildReport on the fixture captures', () => {
  const base = loadFixture('baseline.cap');
  const cur = loadFixture('current.cap');
  const report = (name: string, options: { minIoOps?: number } = {}): SavingsReport =>
    buildReport({ uuid: null, name, baseline: baselineFromWindow(base.get(name) ?? []), current: cur.get(name) ?? [], ...options });

  it('web: hand-computed rates across a restart, reductions, avoided exits and EHT', () => {
    const r = report('web');
    assert.equal(r.confidence, 'ok');
    assert.deepEqual(r.nova, { project: null, flavor: null });
    // Baseline: 3 blocks 10 s apart; per step (both vCPUs) 12000 exits, 4000 io_exits, 1000 mmio,
    // 2000 irq, 3000 halt, 200 irq_window, 100 signal, and 2000 I/O ops.
    const b = r.baseline;
    assert.ok(b !== null);
    assert.equal(b.capturedAt, '2023-11-14T22:13:40.000Z');
    assert.equal(b.seconds, 20);
    assert.equal(b.vcpus, 2);
    approx(b.ioOpsPerSecond, 200);
    const baseExpect: Record<Reason, [number, number]> = {
      exits: [1200, 6],
      io_exits: [400, 2],
      mmio_exits: [100, 0.5],
      irq_exits: [200, 1],
      halt_exits: [300, 1.5],
      irq_window_exits: [20, 0.1],
      request_irq_exits: [0, 0],
      signal_exits: [10, 0.05],
      nmi_window_exits: [0, 0],
    };
    assertRates(b.byReason, baseExpect, 'baseline');
    // Current: 4 blocks 10 s apart; the domain restarted between the 2nd and 3rd, so 2 steps count
    // (20 s). Per step 2400 exits, 400 io_exits, 400 irq, 1200 halt, 40 irq_window, 20 signal,
    // 4000 I/O ops.
    assert.equal(r.current.start, '2023-11-14T23:13:20.000Z');
    assert.equal(r.current.end, '2023-11-14T23:13:50.000Z');
    assert.equal(r.current.seconds, 20);
    assert.equal(r.current.vcpus, 2);
    approx(r.current.ioOpsPerSecond, 400);
    const curExpect: Record<Reason, [number, number]> = {
      exits: [240, 0.6],
      io_exits: [40, 0.1],
      mmio_exits: [0, 0],
      irq_exits: [40, 0.1],
      halt_exits: [120, 0.3],
      irq_window_exits: [4, 0.01],
      request_irq_exits: [0, 0],
      signal_exits: [2, 0.005],
      nmi_window_exits: [0, 0],
    };
    assertRates(r.current.byReason, curExpect, 'current');
    // reduction = 1 − cur/base per I/O op; avoided = base/io × 400 io/s − cur/s
    const savingsExpect: Partial<Record<Reason, [number, number]>> = {
      exits: [1 - 0.6 / 6, 6 * 400 - 240],
      io_exits: [1 - 0.1 / 2, 2 * 400 - 40],
      mmio_exits: [1, 0.5 * 400],
      irq_exits: [0.9, 400 - 40],
      halt_exits: [1 - 0.3 / 1.5, 1.5 * 400 - 120],
      irq_window_exits: [0.9, 0.1 * 400 - 4],
      signal_exits: [0.9, 0.05 * 400 - 2],
    };
    for (const [reason, [reduction, avoided]] of Object.entries(savingsExpect)) {
      approx(r.savings.byReason[reason as Reason].reduction, reduction, `${reason} reduction`);
      approx(r.savings.byReason[reason as Reason].avoidedPerSecond, avoided, `${reason} avoided`);
    }
    // No baseline exits of these reasons: nothing to reduce, nothing avoided.
    assert.deepEqual(r.savings.byReason.request_irq_exits, { reduction: null, avoidedPerSecond: 0 });
    assert.deepEqual(r.savings.byReason.nmi_window_exits, { reduction: null, avoidedPerSecond: 0 });
    // EHT with the default costs (ns): io 3000, mmio 5000, irq 1000, halt 0, irq_window 500,
    // signal 3000, unlabelled rest of exits 1500.
    // before: rest = 1200 − (400+100+200+300+20) = 180/s
    //   400×3000 + 100×5000 + 200×1000 + 20×500 + 10×3000 + 180×1500 = 2_210_000 ns/s over 2 vCPUs
    approx(r.savings.ehtBefore, 2_210_000e-9 / 2, 'ehtBefore');
    // after: rest = 240 − (40+0+40+120+4) = 36/s
    //   40×3000 + 40×1000 + 4×500 + 2×3000 + 36×1500 = 222_000 ns/s over 2 vCPUs
    approx(r.savings.ehtAfter, 222_000e-9 / 2, 'ehtAfter');
  });

  it('has exactly the report shape of DESIGN.md', () => {
    const r = report('web');
    assert.deepEqual(Object.keys(r), ['uuid', 'name', 'nova', 'baseline', 'current', 'savings', 'confidence']);
    assert.deepEqual(Object.keys(r.baseline ?? {}), ['capturedAt', 'seconds', 'ioOpsPerSecond', 'vcpus', 'byReason']);
    assert.deepEqual(Object.keys(r.current), ['start', 'end', 'seconds', 'ioOpsPerSecond', 'vcpus', 'byReason']);
    assert.deepEqual(Object.keys(r.savings), ['byReason', 'ehtBefore', 'ehtAfter']);
    assert.deepEqual(Object.keys(r.current.byReason), [...REASONS]);
    assert.deepEqual(Object.keys(r.savings.byReason.exits), ['reduction', 'avoidedPerSecond']);
    assert.deepEqual(Object.keys(r.current.byReason.exits), ['perSecond', 'perIoOp']);
  });

  it('quiet: fewer than minIoOps I/O ops is insufficient-data, with the numbers still there', () => {
    // 100 I/O ops per step: 200 in the baseline, 300 in the current window
    const r = report('quiet');
    assert.equal(r.confidence, 'insufficient-data');
    approx(r.current.ioOpsPerSecond, 10);
    // 600 exits per 100 I/O ops in both windows
    approx(r.savings.byReason.exits.reduction, 0);
    assert.equal(report('quiet', { minIoOps: 200 }).confidence, 'ok');
    assert.equal(report('quiet', { minIoOps: 201 }).confidence, 'insufficient-data');
  });

  it('tcg: a domain without KVM counters is no-kvm-stats, exit figures null', () => {
    const r = report('tcg');
    assert.equal(r.confidence, 'no-kvm-stats');
    approx(r.current.ioOpsPerSecond, 200);
    assert.deepEqual(r.current.byReason.exits, { perSecond: null, perIoOp: null });
    assert.deepEqual(r.savings.byReason.exits, { reduction: null, avoidedPerSecond: null });
    assert.equal(r.savings.ehtBefore, null);
    assert.equal(r.savings.ehtAfter, null);
  });

  it('without a baseline: no-baseline, current figures only', () => {
    const r = buildReport({
      uuid: '11111111-2222-3333-4444-555555555555',
      name: 'web',
      nova: { project: 'p1', flavor: 'm1.es2' },
      baseline: null,
      current: cur.get('web') ?? [],
    });
    assert.equal(r.confidence, 'no-baseline');
    assert.equal(r.baseline, null);
    assert.deepEqual(r.nova, { project: 'p1', flavor: 'm1.es2' });
    approx(r.current.byReason.exits.perSecond, 240);
    assert.deepEqual(r.savings.byReason.exits, { reduction: null, avoidedPerSecond: null });
    assert.equal(r.savings.ehtBefore, null);
    approx(r.savings.ehtAfter, 222_000e-9 / 2);
  });

  it('an empty current window is insufficient-data, with nulls and no NaN', () => {
    const r = buildReport({ uuid: null, name: 'web', baseline: baselineFromWindow(base.get('web') ?? []), current: [] });
    assert.equal(r.confidence, 'insufficient-data');
    assert.deepEqual([r.current.start, r.current.end, r.current.seconds, r.current.ioOpsPerSecond], [null, null, 0, null]);
    assert.doesNotMatch(JSON.stringify(r), /NaN|Infinity/);
  });

  it('uses the costs it is given', () => {
    const zero = Object.fromEntries(REASONS.map((r) => [r, 0]));
    const r = buildReport({ uuid: null, name: 'web', baseline: null, current: cur.get('web') ?? [], costs: exitCosts({ ...zero, io_exits: 1e9 }) });
    // 40 io_exits/s at 1 s each over 2 vCPUs
    approx(r.savings.ehtAfter, 20);
  });
});

describe('baselineFromWindow', () => {
  it('is plain JSON that survives a round trip', () => {
    const b = baselineFromWindow([sample(100, { exits: 0 }, 0), sample(160, { exits: 6000 }, 3000)]);
    assert.ok(b !== null);
    assert.deepEqual(JSON.parse(JSON.stringify(b)), b);
    assert.equal(b.start, '1970-01-01T00:01:40.000Z');
    assert.equal(b.capturedAt, '1970-01-01T00:02:40.000Z');
    assert.deepEqual([b.seconds, b.ioOps, b.ioOpsPerSecond, b.vcpus, b.hasKvmStats], [60, 3000, 50, 2, true]);
    approx(b.byReason.exits.perIoOp, 2);
  });

  it('is null without a countable step', () => {
    assert.equal(baselineFromWindow([]), null);
    assert.equal(baselineFromWindow([sample(0, {}, 0)]), null);
    assert.equal(baselineFromWindow([sample(0, { exits: 9 }, 0), sample(10, { exits: 1 }, 0)]), null);
  });
});
