import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { REASONS, isCounterKey, sampleFromStats } from '../../src/stats/index.js';

describe('sampleFromStats', () => {
  // Shaped like a record from the binding for a 2-vCPU KVM domain: ULLONG counters as bigint,
  // INT as number, booleans as boolean, strings as strings.
  const typed = {
    'state.state': 1,
    'state.reason': 1,
    'vcpu.current': 2,
    'vcpu.maximum': 4,
    'vcpu.0.state': 1,
    'vcpu.0.time': 5_000_000_000n,
    'vcpu.0.guest_mode.cur': false,
    'vcpu.0.exits.sum': 1000n,
    'vcpu.0.io_exits.sum': 100n,
    'vcpu.0.halt_exits.sum': 400n,
    'vcpu.0.halt_poll_success_ns.sum': 777n,
    'vcpu.1.state': 1,
    'vcpu.1.exits.sum': 2000n,
    'vcpu.1.io_exits.sum': 300n,
    'vcpu.1.nmi_window_exits.sum': 7n,
    'net.count': 2,
    'net.0.name': 'vnet0',
    'net.0.rx.pkts': 10n,
    'net.0.tx.pkts': 20n,
    'net.0.rx.bytes': 99999n,
    'net.1.rx.pkts': 1n,
    'net.1.tx.pkts': 2n,
    'block.count': 1,
    'block.0.name': 'vda',
    'block.0.backingIndex': 1,
    'block.0.rd.reqs': 300n,
    'block.0.wr.reqs': 400n,
    'block.0.fl.reqs': 50n,
  };

  it('sums exit counters over vCPUs and I/O ops over NICs and disks', () => {
    const s = sampleFromStats('web', 'c7a5fdbd-cdaf-9455-926a-d65c16db1809', typed, 1700000000);
    assert.equal(s.name, 'web');
    assert.equal(s.uuid, 'c7a5fdbd-cdaf-9455-926a-d65c16db1809');
    assert.equal(s.time, 1700000000);
    assert.equal(s.vcpus, 2);
    assert.equal(s.hasKvmStats, true);
    assert.deepEqual(s.exits, {
      exits: 3000n,
      io_exits: 400n,
      mmio_exits: 0n,
      irq_exits: 0n,
      halt_exits: 400n,
      irq_window_exits: 0n,
      request_irq_exits: 0n,
      signal_exits: 0n,
      nmi_window_exits: 7n,
    });
    // 10 + 20 + 1 + 2 packets, 300 + 400 requests; flushes are not I/O ops.
    assert.equal(s.ioOps, 733n);
    // 6 exit keys + 6 I/O keys.
    assert.equal(s.counterKeys, 12);
  });

  it('reads the strings of a capture the same way', () => {
    const strings = Object.fromEntries(
      Object.entries(typed).map(([k, v]) => [k, typeof v === 'boolean' ? (v ? 'yes' : 'no') : String(v)]),
    );
    const s = sampleFromStats('web', undefined, strings, 1700000000);
    assert.equal(s.uuid, undefined);
    assert.equal(s.exits.exits, 3000n);
    assert.equal(s.ioOps, 733n);
    assert.equal(s.vcpus, 2);
  });

  it('keeps 64-bit counters exact beyond 2^53', () => {
    const big = 2n ** 60n + 1n;
    const s = sampleFromStats('x', undefined, { 'vcpu.0.exits.sum': big, 'vcpu.1.exits.sum': big }, 0);
    assert.equal(s.exits.exits, 2n * big);
  });

  it('counts distinct vCPU indices when vcpu.current is absent', () => {
    const s = sampleFromStats('x', undefined, { 'vcpu.0.state': 1, 'vcpu.0.time': 1n, 'vcpu.3.state': 1 }, 0);
    assert.equal(s.vcpus, 2);
    assert.equal(s.hasKvmStats, false);
  });

  it('gives a domain without vCPU, NIC or disk stats zero counters (the test driver)', () => {
    const s = sampleFromStats('test', '6695eb01-f6a4-8304-79aa-97f2502e193f', { 'state.state': 1, 'iothread.count': 0 }, 5);
    assert.equal(s.vcpus, 0);
    assert.equal(s.ioOps, 0n);
    assert.equal(s.hasKvmStats, false);
    assert.equal(s.counterKeys, 0);
    for (const r of REASONS) assert.equal(s.exits[r], 0n);
  });

  it('treats an empty UUID as none', () => {
    assert.equal(sampleFromStats('x', '', {}, 0).uuid, undefined);
  });

  it('knows which keys are counters', () => {
    for (const key of ['vcpu.current', 'vcpu.12.exits.sum', 'vcpu.0.signal_exits.sum', 'net.3.tx.pkts', 'block.0.wr.reqs']) {
      assert.equal(isCounterKey(key), true, key);
    }
    for (const key of ['vcpu.0.state', 'vcpu.0.guest_mode.cur', 'vcpu.0.exits', 'net.0.name', 'block.0.fl.reqs', 'net.count', 'vcpu.x.exits.sum']) {
      assert.equal(isCounterKey(key), false, key);
    }
  });
});
