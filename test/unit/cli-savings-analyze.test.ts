import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';

import type { SavingsReport } from '../../src/savings/index.js';
import { bin, fixture } from '../helpers/paths.js';

const BASELINE = fixture('captures', 'baseline.cap');
const CURRENT = fixture('captures', 'current.cap');

function es2ctl(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [bin.es2ctl, ...args], { encoding: 'utf8' });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function analyzeJson(...extra: string[]): SavingsReport[] {
  const r = es2ctl('-o', 'json', 'savings', 'analyze', '--baseline', BASELINE, '--current', CURRENT, ...extra);
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout) as SavingsReport[];
}

describe('es2ctl savings analyze', () => {
  const dir = mkdtempSync(join(tmpdir(), 'es2-analyze-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('prints one JSON report per domain found in both captures', () => {
    const r = es2ctl('-o', 'json', 'savings', 'analyze', '--baseline', BASELINE, '--current', CURRENT);
    assert.equal(r.status, 0, r.stderr);
    const reports = JSON.parse(r.stdout) as SavingsReport[];
    assert.deepEqual(
      reports.map((x) => [x.name, x.uuid, x.confidence]),
      [
        ['web', null, 'ok'],
        ['quiet', null, 'insufficient-data'],
        ['tcg', null, 'no-kvm-stats'],
      ],
    );
    assert.match(r.stderr, /only-cur is only in --current, not reported/);
    assert.match(r.stderr, /only-base is only in --baseline, not reported/);
    const web = reports[0] as SavingsReport;
    assert.deepEqual(Object.keys(web), ['uuid', 'name', 'nova', 'baseline', 'current', 'savings', 'confidence']);
    // 6 exits per I/O op before, 0.6 after (see savings.test.ts for the derivation)
    assert.ok(Math.abs((web.savings.byReason.exits.reduction ?? 0) - 0.9) < 1e-9);
    assert.ok(Math.abs((web.savings.byReason.exits.avoidedPerSecond ?? 0) - 2160) < 1e-9);
    assert.equal(web.current.seconds, 20);
    assert.doesNotMatch(r.stdout, /NaN|Infinity/);
  });

  it('prints an aligned table by default', () => {
    const r = es2ctl('savings', 'analyze', '--baseline', BASELINE, '--current', CURRENT);
    assert.equal(r.status, 0, r.stderr);
    const lines = r.stdout.trimEnd().split('\n');
    assert.equal(lines.length, 4);
    assert.match(lines[0] ?? '', /^DOMAIN\s+CONFIDENCE\s+IO OPS\/S\s+EXITS\/IO OP\s+REDUCTION\s+AVOIDED\/S\s+EHT$/);
    assert.match(lines[1] ?? '', /^web\s+ok\s+200\.0 -> 400\.0\s+6\.000 -> 0\.600\s+90\.0%\s+2160\.0\s+0\.111% -> 0\.011%$/);
    assert.match(lines[3] ?? '', /^tcg\s+no-kvm-stats\s+/);
    // columns line up: CONFIDENCE starts at the same offset on every line
    const offsets = lines.map((l) => l.search(/ok|insufficient-data|no-kvm-stats|CONFIDENCE/));
    assert.equal(new Set(offsets).size, 1);
  });

  it('takes --min-io-ops and --cost', () => {
    const [, quiet] = analyzeJson('--min-io-ops', '200');
    assert.equal(quiet?.confidence, 'ok');
    // io_exits 10000 ns dearer: +40 io_exits/s × 10000 ns = +400000 ns/s over 2 vCPUs
    const [web] = analyzeJson('--cost', 'io_exits=13000', '--cost', 'halt_exits=0');
    assert.ok(Math.abs((web?.savings.ehtAfter ?? 0) - (222_000 + 400_000) * 1e-9 / 2) < 1e-15);
  });

  it('reads CRLF captures', () => {
    const crlf = join(dir, 'crlf.cap');
    writeFileSync(crlf, readFileSync(CURRENT, 'utf8').replace(/\n/g, '\r\n'));
    const r = es2ctl('-o', 'json', 'savings', 'analyze', '--baseline', BASELINE, '--current', crlf);
    assert.equal(r.status, 0, r.stderr);
    assert.equal((JSON.parse(r.stdout) as SavingsReport[]).length, 3);
  });

  it('prints an empty array when no domain is in both', () => {
    const other = join(dir, 'other.cap');
    writeFileSync(other, "@ 1\nDomain: 'nobody'\n  vcpu.current=1\n");
    const r = es2ctl('-o', 'json', 'savings', 'analyze', '--baseline', BASELINE, '--current', other);
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), []);
  });

  it('fails with VALIDATION_FAILED and FILE:LINE on a malformed capture (exit 1)', () => {
    const bad = join(dir, 'bad.cap');
    writeFileSync(bad, "@ 100\nDomain: 'a'\n  vcpu.current=1\n@ 90\n");
    const r = es2ctl('savings', 'analyze', '--baseline', bad, '--current', CURRENT);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /VALIDATION_FAILED/);
    assert.ok(r.stderr.includes(`${bad}:4`), r.stderr);
    assert.equal(r.stdout, '');
  });

  it('exits 2 on usage problems', () => {
    const cases: [string[], RegExp][] = [
      [['savings', 'analyze', '--baseline', BASELINE], /--current/],
      [['savings', 'analyze', '--baseline', BASELINE, '--current', CURRENT, '--cost', 'io_exits'], /REASON=NANOSECONDS/],
      [['savings', 'analyze', '--baseline', BASELINE, '--current', CURRENT, '--cost', 'bogus_exits=5'], /unknown exit reason/],
      [['savings', 'analyze', '--baseline', BASELINE, '--current', CURRENT, '--min-io-ops', 'many'], /--min-io-ops/],
      [['savings', 'analyze', '--baseline', join(dir, 'missing.cap'), '--current', CURRENT], /cannot read/],
      [['-o', 'yaml', 'savings', 'analyze', '--baseline', BASELINE, '--current', CURRENT], /table or json/],
    ];
    for (const [args, message] of cases) {
      const r = es2ctl(...args);
      assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, message);
    }
  });
});
