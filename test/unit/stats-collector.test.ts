import assert from 'node:assert/strict';
import { once } from 'node:events';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';

import { isEs2Error } from '../../src/errors/index.js';
import { DomainStatsTypes, GetAllDomainStatsFlags, type DomainStatsRecord, type TypedParamValue } from '../../src/libvirt/index.js';
import { windowRates } from '../../src/savings/index.js';
import {
  CaptureReplaySource,
  StatsCollector,
  parseCapture,
  type CycleResult,
  type StatsSource,
} from '../../src/stats/index.js';

const UUID_A = 'aaaaaaaa-0000-0000-0000-000000000001';
const UUID_B = 'bbbbbbbb-0000-0000-0000-000000000002';

/** A stats source answering from a queue of replies; records how it was called. */
class QueueSource implements StatsSource {
  readonly calls: { stats: number; flags: number }[] = [];
  readonly replies: (() => Promise<DomainStatsRecord[]>)[] = [];
  concurrent = 0;
  maxConcurrent = 0;

  reply(records: DomainStatsRecord[]): this {
    this.replies.push(() => Promise.resolve(records));
    return this;
  }

  async getAllDomainStats(stats: number, flags: number): Promise<DomainStatsRecord[]> {
    this.calls.push({ stats, flags });
    const next = this.replies.shift();
    if (next === undefined) throw new Error('no reply queued');
    this.concurrent++;
    this.maxConcurrent = Math.max(this.maxConcurrent, this.concurrent);
    try {
      return await next();
    } finally {
      this.concurrent--;
    }
  }
}

function kvmRecord(uuid: string, name: string, exits: bigint, pkts: bigint): DomainStatsRecord {
  const stats: Record<string, TypedParamValue> = {
    'state.state': 1,
    'vcpu.current': 1,
    'vcpu.0.state': 1,
    'vcpu.0.exits.sum': exits,
    'vcpu.0.io_exits.sum': exits / 2n,
    'net.count': 1,
    'net.0.rx.pkts': pkts,
    'net.0.tx.pkts': pkts,
  };
  return { name, uuid, id: 1, stats };
}

function clockAt(start: number): { now: () => number; advance: (s: number) => void } {
  let t = start;
  return { now: () => t, advance: (s) => (t += s) };
}

describe('StatsCollector', () => {
  it('makes one bulk call per cycle for all active domains, with NOWAIT', async () => {
    const source = new QueueSource().reply([kvmRecord(UUID_A, 'a', 10n, 5n), kvmRecord(UUID_B, 'b', 20n, 6n)]);
    const collector = new StatsCollector(source, { clock: () => 1000 });
    const result = await collector.collect();
    assert.deepEqual(source.calls, [
      {
        stats: DomainStatsTypes.VCPU | DomainStatsTypes.INTERFACE | DomainStatsTypes.BLOCK | DomainStatsTypes.STATE,
        flags: GetAllDomainStatsFlags.ACTIVE | GetAllDomainStatsFlags.NOWAIT,
      },
    ]);
    assert.equal(result.time, 1000);
    assert.equal(result.domains, 2);
    assert.equal(result.skipped, 0);
    assert.deepEqual(collector.keys(), [UUID_A, UUID_B]);
    const a = collector.latest(UUID_A);
    assert.deepEqual([a?.name, a?.uuid, a?.exits.exits, a?.exits.io_exits, a?.ioOps, a?.time], ['a', UUID_A, 10n, 5n, 10n, 1000]);
  });

  it('keys a domain by name when the source has no UUID', async () => {
    const collector = new StatsCollector(new QueueSource().reply([kvmRecord('', 'nameless', 1n, 1n)]));
    await collector.collect();
    assert.deepEqual(collector.keys(), ['nameless']);
    assert.equal(collector.samples('nameless')[0]?.uuid, undefined);
  });

  it('keeps the shortest tail of samples that spans the window', async () => {
    const clock = clockAt(0);
    const source = new QueueSource();
    const collector = new StatsCollector(source, { clock: clock.now, intervalSeconds: 10, windowSeconds: 30 });
    for (let i = 0; i < 6; i++) {
      source.reply([kvmRecord(UUID_A, 'a', BigInt(100 * i), BigInt(10 * i))]);
      await collector.collect();
      clock.advance(10);
    }
    // newest at 50: the window starts at 20
    assert.deepEqual(collector.samples(UUID_A).map((s) => s.time), [20, 30, 40, 50]);
    // the copy is the caller's
    collector.samples(UUID_A).pop();
    assert.equal(collector.samples(UUID_A).length, 4);
    assert.deepEqual(collector.samples('unknown'), []);
  });

  it('forgets a domain not seen for a whole window', async () => {
    const clock = clockAt(0);
    const source = new QueueSource();
    const collector = new StatsCollector(source, { clock: clock.now, windowSeconds: 30 });
    source.reply([kvmRecord(UUID_A, 'a', 1n, 1n), kvmRecord(UUID_B, 'b', 1n, 1n)]);
    await collector.collect();
    for (const step of [20, 10]) {
      clock.advance(step);
      source.reply([kvmRecord(UUID_B, 'b', 1n, 1n)]);
      await collector.collect();
    }
    // a was last seen at 0: still kept at 30 (exactly one window), gone after
    assert.deepEqual(collector.keys(), [UUID_A, UUID_B]);
    clock.advance(1);
    source.reply([kvmRecord(UUID_B, 'b', 1n, 1n)]);
    await collector.collect();
    assert.deepEqual(collector.keys(), [UUID_B]);
  });

  it('skips a record that lost stats under NOWAIT, and recovers on the next', async () => {
    const clock = clockAt(0);
    const source = new QueueSource();
    const collector = new StatsCollector(source, { clock: clock.now });
    const busy = kvmRecord(UUID_A, 'a', 0n, 0n);
    for (const key of Object.keys(busy.stats)) if (key.includes('exits')) delete busy.stats[key];
    source
      .reply([kvmRecord(UUID_A, 'a', 100n, 10n)])
      .reply([busy])
      .reply([kvmRecord(UUID_A, 'a', 300n, 30n)]);
    await collector.collect();
    clock.advance(10);
    const skippedCycle = await collector.collect();
    assert.deepEqual([skippedCycle.domains, skippedCycle.skipped], [0, 1]);
    clock.advance(10);
    await collector.collect();
    assert.deepEqual(collector.samples(UUID_A).map((s) => [s.time, s.exits.exits]), [
      [0, 100n],
      [20, 300n],
    ]);
    assert.equal(collector.metrics.skippedDomains, 1);
  });

  it('after a NIC unplug skips one record, then compares with the smaller set', async () => {
    const clock = clockAt(0);
    const source = new QueueSource();
    const collector = new StatsCollector(source, { clock: clock.now });
    const twoNics = (exits: bigint): DomainStatsRecord => {
      const r = kvmRecord(UUID_A, 'a', exits, 10n);
      r.stats['net.1.rx.pkts'] = 10n;
      r.stats['net.1.tx.pkts'] = 10n;
      return r;
    };
    source.reply([twoNics(100n)]).reply([kvmRecord(UUID_A, 'a', 200n, 20n)]).reply([kvmRecord(UUID_A, 'a', 300n, 30n)]);
    for (let i = 0; i < 3; i++) {
      await collector.collect();
      clock.advance(10);
    }
    assert.deepEqual(collector.samples(UUID_A).map((s) => s.time), [0, 20]);
    assert.equal(collector.metrics.skippedDomains, 1);
  });

  it('fails a cycle that takes longer than the timeout and never overlaps calls', async () => {
    const source = new QueueSource();
    let release: (records: DomainStatsRecord[]) => void = () => undefined;
    source.replies.push(() => new Promise((resolve) => (release = resolve)));
    const collector = new StatsCollector(source, { timeoutSeconds: 0.05 });
    const failures: Error[] = [];
    collector.on('failed', (err) => failures.push(err));

    await assert.rejects(collector.collect(), (err: unknown) => isEs2Error(err, 'LIBVIRT_UNAVAILABLE') && /longer than 0.05 s/.test(err.message));
    assert.ok(collector.metrics.lastCycleSeconds >= 0.04);
    // the slow call is still running: the next cycle refuses instead of piling up a second call
    await assert.rejects(collector.collect(), /has not returned yet/);
    assert.equal(source.calls.length, 1);
    assert.equal(collector.metrics.errors, 2);
    assert.equal(failures.length, 2);

    release([]);
    await sleep(0);
    source.reply([kvmRecord(UUID_A, 'a', 1n, 1n)]);
    await collector.collect();
    assert.equal(source.maxConcurrent, 1);
    assert.equal(collector.metrics.cycles, 1);
  });

  it('counts and passes on an error of the bulk call', async () => {
    const source = new QueueSource();
    source.replies.push(() => Promise.reject(new Error('libvirt: connection lost')));
    const collector = new StatsCollector(source);
    await assert.rejects(collector.collect(), /connection lost/);
    assert.equal(collector.metrics.errors, 1);
    // the failed call does not block the next one
    source.reply([]);
    await collector.collect();
  });

  it('emits each cycle and reports its duration', async () => {
    const collector = new StatsCollector(new QueueSource().reply([kvmRecord(UUID_A, 'a', 1n, 1n)]), { clock: () => 7 });
    const seen: CycleResult[] = [];
    collector.on('cycle', (r) => seen.push(r));
    await collector.collect();
    assert.equal(seen.length, 1);
    assert.deepEqual([seen[0]?.time, seen[0]?.domains, seen[0]?.skipped], [7, 1, 0]);
    assert.ok((seen[0]?.seconds ?? -1) >= 0);
    assert.equal(collector.metrics.lastCycleSeconds, seen[0]?.seconds);
  });

  it('runs on a schedule one cycle at a time until stopped', async () => {
    const source = new QueueSource();
    for (let i = 0; i < 100; i++) {
      source.replies.push(async () => {
        await sleep(5);
        return [kvmRecord(UUID_A, 'a', BigInt(i), BigInt(i))];
      });
    }
    const collector = new StatsCollector(source, { intervalSeconds: 0.01 });
    collector.start();
    collector.start(); // a second start changes nothing
    for (let i = 0; i < 3; i++) await once(collector, 'cycle');
    await collector.stop();
    const calls = source.calls.length;
    assert.ok(calls >= 3);
    assert.equal(source.maxConcurrent, 1);
    await sleep(50);
    assert.equal(source.calls.length, calls, 'no cycle after stop');
  });

  it('refuses a window or interval that is not a positive number', () => {
    assert.throws(() => new StatsCollector(new QueueSource(), { windowSeconds: 0 }), /windowSeconds must be a positive/);
    assert.throws(() => new StatsCollector(new QueueSource(), { intervalSeconds: Number.NaN }), /intervalSeconds/);
  });
});

describe('CaptureReplaySource', () => {
  const capture = parseCapture(
    [
      '@ 100',
      "Domain: 'a'",
      '  vcpu.current=1',
      '  vcpu.0.exits.sum=1000',
      '  net.0.rx.pkts=100',
      '@ 110',
      "Domain: 'a'",
      '  vcpu.current=1',
      '  vcpu.0.exits.sum=3000',
      '  net.0.rx.pkts=600',
      "Domain: 'b'",
      '  vcpu.current=1',
      '@ 130',
      "Domain: 'a'",
      '  vcpu.current=1',
      '  vcpu.0.exits.sum=5000',
      '  net.0.rx.pkts=1100',
    ].join('\n'),
    'replay',
  );

  it('returns one block per call, rebased to now, and loops one mean step after the end', async () => {
    const replay = new CaptureReplaySource(capture, { clock: () => 5000, uuids: { a: UUID_A } });
    const times: (number | undefined)[] = [];
    const names: string[][] = [];
    for (let i = 0; i < 5; i++) {
      const records = await replay.getAllDomainStats(0, 0);
      times.push(replay.lastSampleTime);
      names.push(records.map((r) => `${r.name}:${r.uuid}`));
    }
    // capture span 30 s over 2 steps: the loop restarts 15 s after the last block
    assert.deepEqual(times, [5000, 5010, 5030, 5045, 5055]);
    assert.deepEqual(names[1], [`a:${UUID_A}`, 'b:']);
  });

  it('feeds the collector, and the loop reads as a restart', async () => {
    const collector = new StatsCollector(new CaptureReplaySource(capture, { clock: () => 5000 }), { windowSeconds: 600 });
    for (let i = 0; i < 6; i++) await collector.collect();
    const samples = collector.samples('a');
    assert.deepEqual(samples.map((s) => s.time), [5000, 5010, 5030, 5045, 5055, 5075]);
    // Per pass: 4000 exits and 1000 I/O ops over 30 s; the loop step (5030 -> 5045) is skipped.
    const w = windowRates(samples);
    assert.equal(w.seconds, 60);
    assert.equal(w.skippedSteps, 1);
    assert.equal(w.byReason.exits.perSecond, 8000 / 60);
    assert.equal(w.byReason.exits.perIoOp, 4);
  });
});
