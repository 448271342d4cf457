import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';

import { isEs2Error } from '../../src/errors/index.js';
import { captureSamples, parseCapture } from '../../src/stats/index.js';
import { fixture } from '../helpers/paths.js';

const SMALL = [
  '@ 100',
  "Domain: 'a'",
  '  vcpu.current=1',
  '  vcpu.0.exits.sum=10',
  '  net.0.rx.pkts=5',
  '',
  "Domain: 'b'",
  '  state.state=1',
  '',
  '@ 110',
  "Domain: 'a'",
  '  net.0.rx.pkts=9',
  '  vcpu.0.exits.sum=30',
  '  vcpu.current=1',
  '',
].join('\n');

function assertRefused(text: string, path: string, message: RegExp): void {
  assert.throws(
    () => parseCapture(text, 'cap.txt'),
    (err: unknown) => {
      assert.ok(isEs2Error(err, 'VALIDATION_FAILED'), String(err));
      assert.equal(err.details.length, 1);
      assert.equal(err.details[0]?.path, path);
      assert.match(err.details[0]?.message ?? '', message);
      assert.match(err.message, /cap\.txt/);
      return true;
    },
  );
}

describe('parseCapture', () => {
  it('reads blocks, domains and stats with their lines', () => {
    const c = parseCapture(SMALL, 'small');
    assert.equal(c.file, 'small');
    assert.deepEqual(
      c.blocks.map((b) => ({ time: b.time, line: b.line, domains: b.records.map((r) => [r.name, r.line]) })),
      [
        { time: 100, line: 1, domains: [['a', 2], ['b', 7]] },
        { time: 110, line: 10, domains: [['a', 11]] },
      ],
    );
    assert.deepEqual({ ...c.blocks[1]?.records[0]?.stats }, { 'net.0.rx.pkts': '9', 'vcpu.0.exits.sum': '30', 'vcpu.current': '1' });
  });

  it('tolerates CRLF, trailing whitespace and no final blank line', () => {
    const messy = SMALL.trimEnd().split('\n').map((l) => `${l}  \t`).join('\r\n');
    const c = parseCapture(messy, 'crlf');
    assert.deepEqual(c.blocks.map((b) => b.records.length), [2, 1]);
    assert.equal(c.blocks[0]?.records[0]?.stats['vcpu.0.exits.sum'], '10');
    assert.equal(c.blocks[1]?.records[0]?.stats['vcpu.current'], '1');
  });

  it('accepts fractional seconds and equal times', () => {
    const c = parseCapture('@ 100.5\n@ 100.5\n', 'f');
    assert.deepEqual(c.blocks.map((b) => b.time), [100.5, 100.5]);
  });

  it('turns blocks into per-domain samples keyed by name', () => {
    const byName = captureSamples(parseCapture(SMALL, 'small'));
    assert.deepEqual([...byName.keys()], ['a', 'b']);
    const a = byName.get('a') ?? [];
    assert.deepEqual(a.map((s) => [s.time, s.exits.exits, s.ioOps, s.vcpus]), [
      [100, 10n, 5n, 1],
      [110, 30n, 9n, 1],
    ]);
    assert.equal(byName.get('b')?.length, 1);
  });

  it('reads the fixture captures (real virsh domstats --raw layout)', () => {
    const base = captureSamples(parseCapture(readFileSync(fixture('captures', 'baseline.cap'), 'utf8'), 'baseline.cap'));
    const cur = captureSamples(parseCapture(readFileSync(fixture('captures', 'current.cap'), 'utf8'), 'current.cap'));
    assert.deepEqual([...base.keys()], ['web', 'quiet', 'tcg', 'only-base']);
    assert.deepEqual([...cur.keys()], ['web', 'quiet', 'tcg', 'only-cur']);
    // web at the first baseline block: vCPU 0 has 50000 exits, vCPU 1 40000; NIC 10000 + 8000
    // packets, disk 5000 + 3000 requests.
    const web0 = base.get('web')?.[0];
    assert.equal(web0?.exits.exits, 90000n);
    assert.equal(web0?.ioOps, 26000n);
    assert.equal(web0?.hasKvmStats, true);
    // tcg's keys come in reverse order in one block: same reading.
    assert.deepEqual(cur.get('tcg')?.map((s) => [s.vcpus, s.ioOps, s.hasKvmStats]), [
      [1, 180000n, false],
      [1, 182000n, false],
      [1, 184000n, false],
      [1, 186000n, false],
    ]);
  });

  describe('refuses malformed input, naming file and line', () => {
    it('a stats line before any @', () => {
      assertRefused("\nDomain: 'a'\n  vcpu.current=1\n", 'cap.txt:2', /before the first/);
      assertRefused('  vcpu.current=1\n', 'cap.txt:1', /before the first/);
    });
    it('a non-numeric timestamp', () => {
      assertRefused('@ 100\n@ yesterday\n', 'cap.txt:2', /"yesterday" is not unix seconds/);
      assertRefused('@ -5\n', 'cap.txt:1', /not unix seconds/);
    });
    it('time going backwards', () => {
      assertRefused("@ 100\nDomain: 'a'\n  vcpu.current=1\n\n@ 99\n", 'cap.txt:5', /backwards: 99 after 100 \(line 1\)/);
    });
    it('a key=value line before any Domain: in its block', () => {
      assertRefused('@ 100\n  vcpu.current=1\n', 'cap.txt:2', /vcpu\.current= before any "Domain/);
      // The previous block's domain does not carry over into the next block.
      assertRefused("@ 100\nDomain: 'a'\n  vcpu.current=1\n@ 110\n  vcpu.current=1\n", 'cap.txt:5', /before any "Domain/);
    });
    it('a counter that is not an integer', () => {
      assertRefused("@ 100\nDomain: 'a'\n  vcpu.0.exits.sum=lots\n", 'cap.txt:3', /vcpu\.0\.exits\.sum must be a non-negative integer/);
      assertRefused("@ 100\nDomain: 'a'\n  net.0.rx.pkts=-1\n", 'cap.txt:3', /net\.0\.rx\.pkts/);
    });
    it('a domain twice in one block', () => {
      assertRefused("@ 100\nDomain: 'a'\n\nDomain: 'a'\n", 'cap.txt:4', /twice .* line 1 \(first at line 2\)/);
    });
    it('a line that is neither time, domain nor stat', () => {
      assertRefused("@ 100\nDomain: 'a'\nerror: failed to get domain stats\n", 'cap.txt:3', /not a stats line/);
    });
    it('an empty file', () => {
      assertRefused('\n\n', 'cap.txt:1', /no `@ <unix seconds>` block/);
    });
  });

  it('ignores values of keys that are not counters', () => {
    const c = parseCapture("@ 1\nDomain: 'a'\n  block.0.path=/var/lib/a b=c.qcow2\n  vcpu.0.guest_mode.cur=no\n", 'x');
    assert.equal(c.blocks[0]?.records[0]?.stats['block.0.path'], '/var/lib/a b=c.qcow2');
  });
});
