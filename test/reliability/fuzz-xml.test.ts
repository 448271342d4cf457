// Fuzzing domain XML into the XML engine and the hook. Inputs are the domain fixtures (with and
// without es2 metadata) mutated structurally (elements removed or duplicated, attributes and text
// replaced, the es2 record's JSON and its undo entries corrupted) and byte by byte, with policies
// that are mostly valid. The engine may refuse (an Es2Error) but never fails otherwise; what it
// produces it can read back (applying again changes nothing, removal equals removal of the input);
// the hook's rewrite never throws; es2d answers hook calls carrying such XML and stays up; the hook
// script itself exits 0 and prints a domain (XML that parses, root <domain>) or nothing.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';

import { DOMParser } from '@xmldom/xmldom';
import fc from 'fast-check';

import { Es2Error } from '../../src/errors/index.js';
import type { HostFacts, Policy } from '../../src/policy/index.js';
import { rewriteForHost } from '../../src/reconcile/hook.js';
import { apply, plan, remove } from '../../src/xml/index.js';
import { startEs2d, type Es2dProcess } from '../helpers/es2d.js';
import { fixture } from '../helpers/paths.js';
import { xmlDifference } from '../helpers/xml-match.js';
import { tally } from './figures.js';
import { fuzz, replayRegressions } from './fuzz.js';
import { assertAlive, assertWellFormed, runHook, send } from './support.js';
import { mutate, mutation, type Mutation } from './xml-mutate.js';

const figures = tally('fuzz-xml');
const RUNS = 500;
const TIME_LIMIT_MS = 60_000;

const FIXTURES = readdirSync(fixture('domains')).filter((f) => f.endsWith('.xml')).sort();
const texts = new Map(FIXTURES.map((f) => [f, readFileSync(fixture('domains', f), 'utf8')]));

const HOSTS: HostFacts[] = [
  { cpus: [...Array(16).keys()], libvirtVersion: 9_000_000, es2Kernel: false, postedInterrupts: true, haltPollKnob: true },
  { cpus: [0, 1], libvirtVersion: 9_004_000, es2Kernel: true, postedInterrupts: null, haltPollKnob: false, cpuPool: [1] },
  // A cpuPool naming none of the host's CPUs (es2d warns and goes on with an empty pool).
  { cpus: [0, 1, 2, 3], libvirtVersion: 9_000_000, es2Kernel: false, postedInterrupts: true, haltPollKnob: true, cpuPool: [] },
];

const cpuset = fc.oneof({ weight: 4, arbitrary: fc.constantFrom('0', '1', '0-1', '2-5,^3', '15', '1,3') }, { weight: 1, arbitrary: fc.integer({ min: 0, max: 17 }).map(String) });
const policy: fc.Arbitrary<Policy | unknown> = fc.oneof(
  { weight: 5, arbitrary: fc.record({
    enabled: fc.boolean(),
    vcpus: fc.uniqueArray(fc.record({ vcpu: fc.integer({ min: 0, max: 2 }), cpuset, label: fc.constantFrom('io', 'compute') }, { requiredKeys: ['vcpu'] }), { selector: (v) => v.vcpu, maxLength: 4 }),
    hybridIo: fc.record({ iothreads: fc.integer({ min: 1, max: 3 }), iothreadCpuset: cpuset, pollMaxNs: fc.nat(), pollGrow: fc.nat({ max: 8 }), pollShrink: fc.nat({ max: 8 }) }, { requiredKeys: [] }),
    postedInterrupts: fc.constantFrom('required', 'preferred'),
    haltPollNs: fc.nat(),
  }, { requiredKeys: ['enabled'] }) },
  { weight: 1, arbitrary: fc.jsonValue() },
);

interface XmlCase { fixture: string; mutations: Mutation[]; policy: unknown; host: number }
const xmlCases: fc.Arbitrary<XmlCase> = fc.record({
  fixture: fc.constantFrom(...FIXTURES),
  mutations: fc.array(mutation, { maxLength: 5 }),
  policy,
  // Mostly the plain host; the odd ones (tiny, ES2 kernel, empty pool) refuse more.
  host: fc.oneof({ weight: 4, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.nat({ max: HOSTS.length - 1 }) }),
});

/** Runs `fn`; an Es2Error is a refusal (returns undefined), anything else fails the property. */
function refusalOr<T>(what: string, fn: () => T): T | undefined {
  try {
    return fn();
  } catch (err) {
    if (err instanceof Es2Error) return undefined;
    throw new Error(`${what} failed with ${(err as Error)?.name}: ${(err as Error)?.message}\n${(err as Error)?.stack ?? ''}`);
  }
}

const outcomes = { applied: 0, refused: 0 };

/**
 * What libvirt's formatter never writes, and the engine relies on: `<iothreadids>` without the
 * `<iothreads>` count (es2 reads a missing count as no IOThreads, which is true of libvirt's XML).
 */
function libvirtWouldNotWrite(xml: string): boolean {
  return /<iothreadids\b/.test(xml) && !/<iothreads\b/.test(xml);
}

function checkEngine(c: XmlCase): void {
  const xml = mutate(texts.get(c.fixture)!, c.mutations);
  if (libvirtWouldNotWrite(xml)) return;
  const host = HOSTS[c.host]!;
  refusalOr('plan', () => plan(xml, c.policy, host));
  const removed = refusalOr('remove', () => remove(xml, host));
  const applied = refusalOr('apply', () => apply(xml, c.policy, host));
  outcomes[applied === undefined ? 'refused' : 'applied']++;
  figures.note('engineOutcomes', outcomes);
  if (applied === undefined) return;
  // What the engine wrote it must read back: no refusal here.
  const again = apply(applied.xml, c.policy, host);
  const diff = xmlDifference(again.xml, applied.xml);
  assert.equal(diff, null, `applying twice differs from applying once: ${diff}`);
  const undone = remove(applied.xml, host);
  if (removed !== undefined) {
    const back = xmlDifference(undone.xml, removed.xml);
    assert.equal(back, null, `remove(apply(x)) differs from remove(x): ${back}`);
  }
}

function checkRewrite(c: XmlCase): void {
  const xml = mutate(texts.get(c.fixture)!, c.mutations);
  try {
    rewriteForHost(xml, HOSTS[c.host]!);
  } catch (err) {
    throw new Error(`rewriteForHost threw ${(err as Error)?.name}: ${(err as Error)?.message}`);
  }
}

describe('fuzzing domain XML', () => {
  describe('into the XML engine', () => {
    replayRegressions('xml-engine', checkEngine);
    it(`refuses or transforms, and reads back what it wrote (${RUNS} runs)`, async () => {
      await fuzz('xml-engine', xmlCases, checkEngine, { numRuns: RUNS, timeLimitMs: TIME_LIMIT_MS, tally: figures });
    });
  });

  describe("into the hook's rewrite for migrate/restore", () => {
    replayRegressions('hook-rewrite', checkRewrite);
    it(`never throws (${RUNS} runs)`, async () => {
      await fuzz('hook-rewrite', xmlCases, checkRewrite, { numRuns: RUNS, timeLimitMs: TIME_LIMIT_MS, tally: figures });
    });
  });

  describe('into es2d through the hook endpoint and the hook script', () => {
    let es2d: Es2dProcess;
    before(async () => {
      es2d = await startEs2d();
    });
    after(async () => {
      await es2d?.stop();
    });

    interface HookCase extends XmlCase { op: string; name: string }
    const hookCases: fc.Arbitrary<HookCase> = fc.record({
      fixture: fc.constantFrom(...FIXTURES),
      mutations: fc.array(mutation, { maxLength: 5 }),
      policy: fc.constant(null),
      host: fc.constant(0),
      op: fc.constantFrom('prepare', 'start', 'started', 'migrate', 'restore', 'stopped', 'release'),
      name: fc.constantFrom('test', 'instance-00000031', 'x'.repeat(255), '..', 'a b', '$(touch /tmp/es2rel-hook-marker)'),
    });

    const checkEndpoint = async (c: HookCase): Promise<void> => {
      const xml = mutate(texts.get(c.fixture)!, c.mutations);
      const body = JSON.stringify({ name: c.name, op: c.op, subop: 'begin', extra: '-', xml });
      const r = await send(`unix:${es2d.socket}`, { method: 'POST', path: '/v1/hooks/libvirt', headers: { 'content-type': 'application/json' }, body });
      assertWellFormed('POST /v1/hooks/libvirt', r, 'POST');
      assert.equal(r.status, 200, `hook ${c.op} answered ${r.status}: ${r.text.slice(0, 300)}`);
      assertAlive(es2d, `hook ${c.op}`);
    };

    replayRegressions('hook-endpoint', checkEndpoint);
    it(`POST /v1/hooks/libvirt answers 200 for any XML and es2d stays up (${RUNS} runs)`, async () => {
      await fuzz('hook-endpoint', hookCases, checkEndpoint, { numRuns: RUNS, timeLimitMs: TIME_LIMIT_MS, tally: figures });
    });

    const checkXmlEndpoint = async (c: HookCase): Promise<void> => {
      const xml = mutate(texts.get(c.fixture)!, c.mutations);
      const path = `/v1/hooks/libvirt/${c.op}?subop=begin&extra=-`;
      const r = await send(`unix:${es2d.socket}`, { method: 'POST', path, headers: { 'content-type': 'application/xml' }, body: xml });
      assertWellFormed(`POST ${path}`, r, 'POST');
      assert.ok(r.status === 200 || r.status === 204, `hook ${c.op} (XML form) answered ${r.status}: ${r.text.slice(0, 300)}`);
      if (r.status === 200) {
        const doc = new DOMParser({ onError: (level, message) => assert.fail(`es2d answered XML that does not parse (${level}: ${message})`) })
          .parseFromString(r.text, 'text/xml');
        assert.equal(doc.documentElement?.localName, 'domain');
      }
      assertAlive(es2d, `hook ${c.op} (XML form)`);
    };

    replayRegressions('hook-xml-endpoint', checkXmlEndpoint);
    it(`POST /v1/hooks/libvirt/{op} answers 200 or 204 for any XML and es2d stays up (${RUNS} runs)`, async () => {
      await fuzz('hook-xml-endpoint', hookCases, checkXmlEndpoint, { numRuns: RUNS, timeLimitMs: TIME_LIMIT_MS, tally: figures });
    });

    const checkScript = async (c: HookCase): Promise<void> => {
      const xml = mutate(texts.get(c.fixture)!, c.mutations);
      const r = await runHook([c.name, c.op, 'begin', '-'], xml, { ES2_SOCKET: es2d.socket });
      assert.equal(r.code, 0, r.stderr);
      if (r.stdout !== '') {
        // libvirt reads what the hook prints as the domain's new XML.
        const doc = new DOMParser({ onError: (level, message) => assert.fail(`the hook printed XML that does not parse (${level}: ${message})`) })
          .parseFromString(r.stdout, 'text/xml');
        assert.equal(doc.documentElement?.localName, 'domain', `the hook printed ${JSON.stringify(r.stdout.slice(0, 200))}`);
      }
      assertAlive(es2d, `hook script ${c.op}`);
    };

    replayRegressions('hook-script', checkScript);
    it('the hook script exits 0 and prints a domain or nothing (40 runs: each is a process)', async () => {
      await fuzz('hook-script', hookCases, checkScript, { numRuns: 40, timeLimitMs: TIME_LIMIT_MS, tally: figures });
    });
  });
});
