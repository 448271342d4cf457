// Fuzzing the files es2 reads: stats captures (into the parser and on through the savings math,
// as `es2ctl savings analyze` does, and into es2ctl itself) and es2d config files (into the
// config reader, and into es2d itself). A bad file is refused with VALIDATION_FAILED and a path;
// a good one yields reports that match the spec with no negative or non-finite rates; neither
// program ever dies of anything but a refusal.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';

import fc from 'fast-check';
import { stringify as yamlStringify } from 'yaml';

import { readConfigFile, resolveConfig } from '../../src/daemon/config.js';
import { Es2Error } from '../../src/errors/index.js';
import { parseCpuset, validatePolicyLayer } from '../../src/policy/index.js';
import { baselineFromWindow, buildReport, exitCosts } from '../../src/savings/index.js';
import { captureSamples, parseCapture } from '../../src/stats/index.js';
import { startEs2d } from '../helpers/es2d.js';
import { bin, repoRoot } from '../helpers/paths.js';
import { tempDir } from '../helpers/temp.js';
import { tally } from './figures.js';
import { fuzz, replayRegressions } from './fuzz.js';
import { apiSpec, assertWellFormed, send, sleep } from './support.js';
import { captureFile } from './driver-file.js';

const figures = tally('fuzz-files');
const RUNS = 400;
const TIME_LIMIT_MS = 60_000;
const dir = tempDir('es2rel-files-');

function onlyRefusals<T>(what: string, fn: () => T): T | undefined {
  try {
    return fn();
  } catch (err) {
    if (err instanceof Es2Error && err.code === 'VALIDATION_FAILED') return undefined;
    throw new Error(`${what} failed with ${(err as Error)?.name} ${(err as Es2Error)?.code ?? ''}: ${(err as Error)?.message}`);
  }
}

// --- captures ------------------------------------------------------------------------------------

const BASES = [
  readFileSync(join(repoRoot, 'demo', 'test-before.cap'), 'utf8'),
  readFileSync(join(repoRoot, 'demo', 'test-after.cap'), 'utf8'),
  readFileSync(captureFile(['a', 'b'], 4), 'utf8'),
];

type LineEdit =
  | { op: 'drop' | 'duplicate' | 'swap'; at: number }
  | { op: 'value'; at: number; value: string }
  | { op: 'insert'; at: number; line: string }
  | { op: 'crlf' };

const weirdValue = fc.constantFrom('', '-1', '-0', '0', '1e3', '0x10', '99999999999999999999999', '18446744073709551616', '1.5', 'NaN', ' 7', 'yes');
const weirdLine = fc.constantFrom('@', '@ ', '@ -5', '@ 1e9', '@ 99999999999999999999', '@ 1764003600', "Domain: ''", "Domain: 'x'", "Domain: 'a'",
  'Domain: test', '  =1', '  vcpu.0.exits.sum', '  vcpu.0.exits.sum=', '  net.0.rx.pkts=5', '\u0000', '  vcpu.9999999.exits.sum=1', '  block.0.rd.reqs=3');
const lineEdit: fc.Arbitrary<LineEdit> = fc.oneof(
  fc.record({ op: fc.constantFrom('drop' as const, 'duplicate' as const, 'swap' as const), at: fc.nat() }),
  fc.record({ op: fc.constant('value' as const), at: fc.nat(), value: fc.oneof(weirdValue, fc.string({ maxLength: 6 })) }),
  fc.record({ op: fc.constant('insert' as const), at: fc.nat(), line: fc.oneof(weirdLine, fc.string({ maxLength: 20 })) }),
  fc.constant({ op: 'crlf' as const }),
);

export function editCapture(base: string, edits: readonly LineEdit[]): string {
  let lines = base.split('\n');
  let crlf = false;
  for (const e of edits) {
    const i = 'at' in e && lines.length > 0 ? e.at % lines.length : 0;
    switch (e.op) {
      case 'drop': lines.splice(i, 1); break;
      case 'duplicate': lines.splice(i, 0, lines[i] ?? ''); break;
      case 'swap': if (i + 1 < lines.length) [lines[i], lines[i + 1]] = [lines[i + 1]!, lines[i]!]; break;
      case 'value': lines[i] = (lines[i] ?? '').replace(/=.*$|(@\s*).*$/, (_m, at?: string) => (at !== undefined ? `${at}${e.value}` : `=${e.value}`)); break;
      case 'insert': lines.splice(i, 0, e.line); break;
      case 'crlf': crlf = true; break;
    }
  }
  if (crlf) lines = lines.map((l) => `${l}\r`);
  return lines.join('\n');
}

interface CaptureCase { base: number; edits: LineEdit[] }
const captureCases: fc.Arbitrary<CaptureCase> = fc.record({ base: fc.nat({ max: BASES.length - 1 }), edits: fc.array(lineEdit, { maxLength: 6 }) });

/** Numbers in a report: finite, and rates, counts and durations not negative (reductions may be). */
function checkNumbers(value: unknown, path: string): void {
  if (typeof value === 'number') {
    assert.ok(Number.isFinite(value), `${path} is ${value}`);
    if (!/reduction|avoidedPerSecond|eht/i.test(path)) assert.ok(value >= 0, `${path} is negative: ${value}`);
    return;
  }
  if (value !== null && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) checkNumbers(v, `${path}/${k}`);
  }
}

const outcomes = { captureParsed: 0, captureRefused: 0, configRead: 0, configRefused: 0, es2dRan: 0, es2dRefused: 0 };
figures.note('outcomes', outcomes);

function checkCapture(c: CaptureCase): void {
  const text = editCapture(BASES[c.base]!, c.edits);
  const capture = onlyRefusals('parseCapture', () => parseCapture(text, 'fuzz.cap'));
  outcomes[capture === undefined ? 'captureRefused' : 'captureParsed']++;
  if (capture === undefined) return;
  const validate = apiSpec().schema('SavingsReport');
  for (const [name, samples] of captureSamples(capture)) {
    const report = onlyRefusals('the savings math', () => buildReport({
      uuid: '00000000-0000-4000-8000-000000000000', name, nova: null, baseline: baselineFromWindow(samples), current: samples,
      costs: exitCosts({}), minIoOps: 0,
    }));
    if (report === undefined) continue;
    assert.ok(validate(JSON.parse(JSON.stringify(report))), `report of ${name} outside the spec: ${JSON.stringify(validate.errors)}`);
    checkNumbers(report, '');
  }
}

function checkAnalyze(c: CaptureCase): void {
  const baseline = join(dir, 'baseline.cap');
  const current = join(dir, 'current.cap');
  writeFileSync(baseline, BASES[0]!);
  writeFileSync(current, editCapture(BASES[c.base]!, c.edits));
  const r = spawnSync(process.execPath, [bin.es2ctl, 'savings', 'analyze', '--baseline', baseline, '--current', current, '-o', 'json'], { encoding: 'utf8', timeout: 30_000 });
  assert.ok(r.status === 0 || r.status === 1, `es2ctl exited ${r.status ?? r.signal}: ${r.stderr}`);
  assert.doesNotMatch(r.stderr, /^\s+at /m, `a stack trace: ${r.stderr}`);
  if (r.status === 1) assert.match(r.stderr, /VALIDATION_FAILED/, r.stderr);
  else JSON.parse(r.stdout);
}

// --- config files --------------------------------------------------------------------------------

const anyValue = fc.oneof(fc.jsonValue(), fc.constantFrom('', '0', '-1', '0777', '9999', 'unix:', 'unix:/tmp/x.sock', '127.0.0.1:0', '[::1]:0',
  'test:///default', 'x'.repeat(300), '$(touch /tmp/es2rel-config-marker)', '../../../../etc/passwd'));
const configKeys = ['uri', 'listen', 'stateDir', 'hostRoot', 'statsInterval', 'tokenFile', 'logLevel', 'socketMode', 'socketGroup', 'cpuPool',
  'drift', 'verifyInterval', 'rules', 'savings', 'orchestrator', 'providerConfig', 'statsReplay', 'unknownKey'] as const;
const configDoc = fc.dictionary(fc.constantFrom(...configKeys), fc.oneof(
  anyValue,
  fc.array(fc.record({ flavor: fc.oneof(fc.constantFrom('m1.*', '*', ''), fc.string({ maxLength: 6 })), policy: fc.oneof(fc.jsonValue(),
    fc.record({ enabled: fc.boolean(), haltPollNs: fc.integer() }, { requiredKeys: [] })) }, { requiredKeys: [] }), { maxLength: 3 }),
  fc.record({ windowSeconds: anyValue, minIoOps: anyValue, costsNs: fc.dictionary(fc.string({ maxLength: 10 }), anyValue, { maxKeys: 3 }) }, { requiredKeys: [] }),
  fc.record({ url: fc.constantFrom('http://127.0.0.1:1/x', 'ftp://x', 'http://', 'https://[::1]:9/'), timeoutMs: anyValue, outboxCapacity: anyValue,
    header: fc.record({ name: fc.string({ maxLength: 8 }), value: fc.string({ maxLength: 8 }) }) }, { requiredKeys: [] }),
), { maxKeys: 6 });
const rawYaml = fc.constantFrom(
  'a: &a [1]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c]\nrules: [*d,*d,*d,*d,*d,*d,*d,*d]\n',
  'uri: !!js/function "function(){}"\n', 'uri: a\nuri: b\n', '[1, 2]\n', '"just a string"\n', 'null\n', '', '---\n---\n', '\t- x\n',
  `rules:\n${'  - '.repeat(1)}{flavor: x, policy: ${'['.repeat(200)}${']'.repeat(200)}}\n`, 'socketMode: 0777\n', 'statsInterval: .inf\n',
  'verifyInterval: 1e400\n', 'cpuPool: "0-99999999"\n', 'listen: ["unix:/tmp/x", "0:0"]\n', 'savings: {windowSeconds: 0}\n', '\u0000: x\n',
);
type ConfigCase = { doc: Record<string, unknown> } | { raw: string };
const configCases: fc.Arbitrary<ConfigCase> = fc.oneof(
  { weight: 4, arbitrary: configDoc.map((doc) => ({ doc })) },
  { weight: 1, arbitrary: rawYaml.map((raw) => ({ raw })) },
);

function configText(c: ConfigCase): string {
  return 'raw' in c ? c.raw : yamlStringify(c.doc);
}

function checkConfig(c: ConfigCase): void {
  const file = join(dir, 'es2d.yaml');
  writeFileSync(file, configText(c));
  const read = onlyRefusals('readConfigFile', () => readConfigFile(file));
  const config = read === undefined ? undefined : onlyRefusals('resolveConfig', () => resolveConfig({ config: file }));
  outcomes[config === undefined ? 'configRefused' : 'configRead']++;
  if (config === undefined) return;
  // What es2d checks before it starts (src/daemon/daemon.ts): the rules' policies and the CPU pool.
  config.rules.forEach((rule, i) => onlyRefusals('a rule policy', () => validatePolicyLayer(rule.policy, `/rules/${i}/policy`)));
  if (config.cpuPool !== undefined) onlyRefusals('cpuPool', () => parseCpuset(config.cpuPool!, '/cpuPool'));
}

describe('fuzzing capture files', () => {
  replayRegressions('capture', checkCapture);
  it(`are parsed or refused with VALIDATION_FAILED, and good ones give reports within the spec (${RUNS} runs)`, async () => {
    await fuzz('capture', captureCases, checkCapture, { numRuns: RUNS, timeLimitMs: TIME_LIMIT_MS, tally: figures });
  });
  replayRegressions('capture-cli', checkAnalyze);
  it('es2ctl savings analyze exits 0 with JSON or 1 with VALIDATION_FAILED, never a crash (15 runs: each is a process)', async () => {
    await fuzz('capture-cli', captureCases, checkAnalyze, { numRuns: 15, timeLimitMs: TIME_LIMIT_MS, tally: figures });
  });
});

describe('fuzzing es2d config files', () => {
  replayRegressions('config', checkConfig);
  it(`are read or refused with VALIDATION_FAILED and a path (${RUNS} runs)`, async () => {
    await fuzz('config', configCases, checkConfig, { numRuns: RUNS, timeLimitMs: TIME_LIMIT_MS, tally: figures });
  });

  const checkDaemon = async (c: ConfigCase): Promise<void> => {
    const file = join(tempDir('es2rel-cfg-'), 'es2d.yaml');
    writeFileSync(file, configText(c));
    // The flags of startEs2d (URI, listener, state dir, host root) win over the file: es2d stays in temp dirs.
    const proc = await startEs2d({ args: ['--config', file], waitReady: false });
    const deadline = Date.now() + 15_000;
    let ready = false;
    while (proc.child.exitCode === null && proc.child.signalCode === null && Date.now() < deadline) {
      ready = await proc.client.send('GET', '/readyz').then(() => true, () => false);
      if (ready) break;
      await sleep(100);
    }
    const code = ready ? await proc.stop() : (proc.child.exitCode ?? proc.child.signalCode ?? (await proc.stop()));
    const logs = proc.logs();
    assert.doesNotMatch(logs, /^\s+at /m, `a stack trace:\n${logs.slice(-2000)}`);
    assert.ok(code === 0 || code === 1 || code === 2, `es2d ended with ${code}:\n${logs.slice(-2000)}`);
    outcomes[ready ? 'es2dRan' : 'es2dRefused']++;
    if (code === 2) assert.match(logs, /es2d: VALIDATION_FAILED: /, logs.slice(-2000));
    if (code === 1) assert.match(logs, /es2d: [A-Z_]+: /, logs.slice(-2000));
  };

  replayRegressions('config-es2d', checkDaemon);
  it('es2d given any of them refuses (exit 2, VALIDATION_FAILED) or runs, never crashes (15 runs: each is a process)', async () => {
    await fuzz('config-es2d', configCases, checkDaemon, { numRuns: 15, timeLimitMs: 120_000, tally: figures });
  });

  it('a cpuPool naming none of the host CPUs: a policy with a cpuset is refused (400 naming the path), not a 500', async () => {
    const file = join(tempDir('es2rel-cfg-'), 'es2d.yaml');
    writeFileSync(file, "cpuPool: '64-127'\n");
    const proc = await startEs2d({ args: ['--config', file] });
    try {
      const r = await send(`unix:${proc.socket}`, { method: 'PUT', path: '/v1/domains/test/policy', headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ enabled: true, vcpus: [{ vcpu: 0, cpuset: '1' }] }) });
      assertWellFormed('PUT /v1/domains/test/policy', r, 'PUT');
      assert.equal(r.status, 400, r.text);
      assert.match(r.text, /\/vcpus\/0\/cpuset/);
    } finally {
      await proc.stop();
    }
  });
});
