// Fuzzing es2d's HTTP API with fast-check, against the real binary on test:///default (UNIX socket
// and a TCP listener with a token): request bodies of every operation that reads one, headers,
// and paths with methods and query strings. Every answer must be below 500, every error the one
// Error schema with the status its code maps to, every 2xx of a spec operation its declared schema,
// and es2d must still be running after each request.
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';

import fc from 'fast-check';

import { startEs2d, type Es2dProcess } from '../helpers/es2d.js';
import { tally } from './figures.js';
import { fuzz, replayRegressions } from './fuzz.js';
import {
  assertAlive, assertWellFormed, parseResponses, send, tcpUrl, TOKEN, tokenFile, wireExchange, type RawRequest,
} from './support.js';

const figures = tally('fuzz-api');
const RUNS = 500;
const TIME_LIMIT_MS = 60_000;

// --- arbitraries ---------------------------------------------------------------------------------

const ascii = (max: number): fc.Arbitrary<string> => fc.string({ unit: fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)), maxLength: max });
const cpusetText = fc.oneof(
  fc.constantFrom('0', '1', '0-1', '0-15,^3', '15', '16', '99', '1-0', '^1', '', ' 0', '0,,1', '-1', '0-4294967296', '1e3'),
  ascii(12),
);
const label = fc.oneof(fc.stringMatching(/^[a-z][a-z0-9-]{0,31}$/), ascii(40));
const num = fc.oneof(fc.integer({ min: -5, max: 70_000 }), fc.constantFrom(4_294_967_295, 4_294_967_296, 2 ** 53, -0, 0.5, 1e308), fc.jsonValue());

/** Bodies close to a policy (so validation goes deep) with every field sometimes wrong. */
const policyish = fc.record({
  enabled: fc.oneof(fc.boolean(), fc.jsonValue()),
  vcpus: fc.oneof(
    fc.array(fc.record({ vcpu: num, cpuset: cpusetText, label }, { requiredKeys: [] }), { maxLength: 4 }),
    fc.jsonValue(),
  ),
  hybridIo: fc.oneof(fc.record({
    iothreads: num, iothreadCpuset: cpusetText, pollMaxNs: num, pollGrow: num, pollShrink: num,
    kickRateThreshold: num, idleTimeoutUs: num,
  }, { requiredKeys: [] }), fc.jsonValue()),
  interruptRedirection: fc.oneof(
    fc.record({ mode: fc.oneof(fc.constantFrom('off', 'running', 'labeled'), ascii(10)), targetLabel: label }, { requiredKeys: [] }),
    fc.jsonValue(),
  ),
  postedInterrupts: fc.oneof(fc.constantFrom('required', 'preferred'), fc.jsonValue()),
  haltPollNs: num,
}, { requiredKeys: [] }).chain((policy) => fc.option(fc.tuple(ascii(8), fc.jsonValue()), { freq: 4 })
  // Sometimes one field the schema does not know.
  .map((extra) => (extra === null ? policy : { ...policy, [extra[0]]: extra[1] })));

const knobsish = fc.oneof(
  fc.dictionary(fc.oneof(fc.constantFrom('halt_poll_ns', 'halt_poll_ns_grow', 'halt_poll_ns_grow_start', 'halt_poll_ns_shrink',
    '../../../etc/passwd', 'halt_poll_ns/../../x', '__proto__', 'constructor', 'toString'), ascii(20)), num, { maxKeys: 4 }),
  fc.jsonValue(),
);

const hookish = fc.record({
  name: fc.oneof(fc.constantFrom('test', 'instance-00000031', '../../x', '$(touch /tmp/es2rel-x)', ''), ascii(40)),
  op: fc.oneof(fc.constantFrom('prepare', 'start', 'started', 'stopped', 'release', 'migrate', 'restore', 'reconnect', 'attach'), ascii(10)),
  subop: fc.oneof(fc.constantFrom('begin', 'end', '-'), ascii(10)),
  extra: fc.oneof(fc.constant('-'), ascii(20)),
  xml: fc.oneof(
    fc.constant(''),
    fc.constantFrom("<domain type='test'><name>test</name><uuid>6695eb01-f6a4-8304-79aa-97f2502e193f</uuid></domain>", '<domain', '<?xml version="1.0"?><!DOCTYPE d [<!ENTITY e "x">]><domain>&e;</domain>'),
    ascii(80),
  ),
}, { requiredKeys: [] });

/** JSON text with a few characters replaced, inserted or cut: mostly not JSON any more. */
const mangled = fc.tuple(fc.jsonValue().map((v) => JSON.stringify(v) ?? 'null'), fc.array(fc.tuple(fc.nat(), fc.nat({ max: 3 }), ascii(3)), { maxLength: 4 }))
  .map(([text, edits]) => edits.reduce((t, [at, cut, ins]) => {
    const i = t.length === 0 ? 0 : at % t.length;
    return t.slice(0, i) + ins + t.slice(i + cut);
  }, text));

const protoBodies = fc.constantFrom(
  '{"enabled":true,"__proto__":{"polluted":1}}',
  '{"enabled":true,"constructor":{"prototype":{"polluted":1}}}',
  '{"__proto__":{"halt_poll_ns":1}}',
  '{"enabled":true,"vcpus":[{"vcpu":0,"__proto__":{"cpuset":"0"}}]}',
  '[]', 'null', '"x"', '1e999', '{"enabled":true}'.repeat(2), '\uFEFF{"enabled":true}', '{"enabled":true}\u0000',
);

type Body = { json: unknown } | { raw: string };
const body = (shape: fc.Arbitrary<unknown>): fc.Arbitrary<Body> => fc.oneof(
  { weight: 4, arbitrary: shape.map((json) => ({ json })) },
  { weight: 1, arbitrary: fc.jsonValue().map((json) => ({ json })) },
  { weight: 1, arbitrary: mangled.map((raw) => ({ raw })) },
  { weight: 1, arbitrary: protoBodies.map((raw) => ({ raw })) },
);

const contentType = fc.oneof(
  { weight: 6, arbitrary: fc.constant('application/json') },
  { weight: 1, arbitrary: fc.constantFrom('text/plain', 'application/x-www-form-urlencoded', 'application/json; charset=utf-16',
    'application/json; charset=latin1', 'application/json; charset=nope', 'multipart/form-data; boundary=x', '') },
  { weight: 1, arbitrary: ascii(30) },
);


interface BodyCase { target: string; method: string; body: Body; contentType: string }

// --- the checks --------------------------------------------------------------------------------

describe('fuzzing the API of a running es2d', () => {
  let es2d: Es2dProcess;
  let tcp: string;
  let unix: string;

  before(async () => {
    es2d = await startEs2d({ args: ['--listen', '127.0.0.1:0', '--token-file', tokenFile()] });
    tcp = await tcpUrl(es2d);
    unix = `unix:${es2d.socket}`;
  });

  after(async () => {
    await es2d?.stop();
  });

  async function exchange(endpoint: string, r: RawRequest, allow503 = false): Promise<void> {
    const res = await send(endpoint, r);
    assertWellFormed(`${r.method} ${r.path}`, res, r.method, { allow503 });
    assertAlive(es2d, `${r.method} ${r.path}`);
  }

  const checkBody = async (c: BodyCase): Promise<void> => {
    const text = 'json' in c.body ? JSON.stringify(c.body.json) ?? 'null' : c.body.raw;
    const headers: Record<string, string> = {};
    if (c.contentType !== '') headers['content-type'] = c.contentType;
    await exchange(unix, { method: c.method, path: c.target, headers, body: text });
  };

  const bodyCases: fc.Arbitrary<BodyCase> = fc.oneof(
    fc.record({ target: fc.constantFrom('/v1/domains/test/policy', '/v1/domains/test/policy?dryRun=true'), method: fc.constant('PUT'), body: body(policyish), contentType }),
    fc.record({ target: fc.uuid().map((u) => `/v1/domains/${u}/policy`), method: fc.constant('PUT'), body: body(policyish), contentType }),
    fc.record({ target: fc.constant('/v1/host/knobs'), method: fc.constant('PUT'), body: body(knobsish), contentType }),
    fc.record({ target: fc.constant('/v1/hooks/libvirt'), method: fc.constant('POST'), body: body(hookish), contentType }),
    fc.record({
      target: fc.constantFrom('/v1/domains/test/baseline', '/v1/domains/test/policy', '/v1/host/knobs', '/v1/domains', '/healthz'),
      method: fc.constantFrom('POST', 'DELETE', 'GET'), body: body(fc.jsonValue()), contentType,
    }),
  );

  describe('request bodies', () => {
    replayRegressions('api-body', checkBody);
    it(`every body of every operation is answered below 500 with a schema-valid answer (${RUNS} runs)`, async () => {
      await fuzz('api-body', bodyCases, checkBody, { numRuns: RUNS, timeLimitMs: TIME_LIMIT_MS, tally: figures });
    });
  });

  interface HeaderCase { method: string; path: string; headers: [string, string][]; body: string | null; tcp: boolean; token: boolean }
  const headerName = fc.oneof(
    fc.constantFrom('if-match', 'content-type', 'accept', 'accept-encoding', 'content-encoding', 'authorization', 'expect',
      'transfer-encoding', 'x-http-method-override', 'x-forwarded-for', 'range', 'if-none-match', 'cookie', 'origin', 'connection', 'upgrade'),
    fc.stringMatching(/^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,24}$/),
  );
  const headerValue = fc.oneof(
    fc.constantFrom('*', '"none"', 'W/"x"', '"a", "b"', '"', '""', 'gzip', 'deflate', 'br', 'identity', 'chunked', '100-continue', 'nonsense',
      'application/json', 'text/html', 'Bearer', `Bearer ${TOKEN}`, `bearer ${TOKEN.toUpperCase()}`, 'Basic Zm9vOmJhcg==', 'close', 'websocket'),
    ascii(60),
  );
  const headerCases: fc.Arbitrary<HeaderCase> = fc.record({
    method: fc.constantFrom('GET', 'PUT', 'DELETE', 'POST'),
    path: fc.constantFrom('/v1/host', '/v1/domains', '/v1/domains/test', '/v1/domains/test/policy', '/v1/domains/test/savings',
      '/v1/host/knobs', '/v1/savings', '/metrics', '/readyz', '/healthz', '/openapi.json', '/v1/hooks/libvirt'),
    headers: fc.array(fc.tuple(headerName, headerValue), { maxLength: 5 }),
    body: fc.option(fc.constantFrom('{"enabled":true}', '{"enabled":false}', '{"halt_poll_ns":200000}', '{}', '{'), { nil: null }),
    tcp: fc.boolean(),
    token: fc.boolean(),
  });

  const checkHeaders = async (c: HeaderCase): Promise<void> => {
    const headers: Record<string, string> = {};
    for (const [k, v] of c.headers) {
      // Framing headers would make a well-behaved server wait for bytes that never come.
      if (/^(content-length|host)$/i.test(k)) continue;
      headers[k.toLowerCase()] = v;
    }
    if (c.body !== null && /^chunked$/i.test(headers['transfer-encoding'] ?? '')) delete headers['transfer-encoding'];
    if (c.tcp && c.token) headers.authorization = `Bearer ${TOKEN}`;
    await exchange(c.tcp ? tcp : unix, { method: c.method, path: c.path, headers, ...(c.body === null ? {} : { body: c.body }) });
  };

  describe('headers', () => {
    replayRegressions('api-headers', checkHeaders);
    it(`any headers on any operation are answered below 500 with a schema-valid answer (${RUNS} runs)`, async () => {
      await fuzz('api-headers', headerCases, checkHeaders, { numRuns: RUNS, timeLimitMs: TIME_LIMIT_MS, tally: figures });
    });
  });

  interface PathCase { method: string; segments: string[]; query: string; tcp: boolean }
  const segment = fc.oneof(
    { weight: 4, arbitrary: fc.constantFrom('v1', 'domains', 'host', 'knobs', 'policy', 'savings', 'baseline', 'hooks', 'libvirt', 'metrics',
      'readyz', 'healthz', 'openapi.json', 'test', '6695eb01-f6a4-8304-79aa-97f2502e193f', '6695EB01F6A4830479AA97F2502E193F') },
    { weight: 2, arbitrary: fc.constantFrom('..', '.', '%2e%2e', '%2E%2E%2F', '%2F', '%00', '%ZZ', '%', '%C0%AF', '%E2%80%AE', '%F0%9F%92%A9',
      '~', '%20', ';', '%3B', '$(touch%20x)', '%60id%60', 'x'.repeat(300), '', '%25', '%u002e', '\\') },
    { weight: 1, arbitrary: fc.uuid() },
    { weight: 2, arbitrary: fc.string({ maxLength: 20 }).map((s) => encodeURIComponent(s)) },
  );
  const pathCases: fc.Arbitrary<PathCase> = fc.record({
    method: fc.constantFrom('GET', 'PUT', 'POST', 'DELETE', 'PATCH', 'HEAD', 'OPTIONS', 'TRACE'),
    segments: fc.array(segment, { minLength: 0, maxLength: 5 }),
    query: fc.oneof(
      fc.constant(''),
      fc.constantFrom('?dryRun=true', '?dryRun=1', '?dryRun=yes', '?dryRun=true&dryRun=false', '?x=1', '?dryRun', '?%ZZ=1', '?__proto__=1', '?constructor[prototype]=1'),
      fc.string({ maxLength: 20 }).map((s) => `?${encodeURIComponent(s)}=${encodeURIComponent(s)}`),
    ),
    tcp: fc.boolean(),
  });

  const checkPath = async (c: PathCase): Promise<void> => {
    const path = `/${c.segments.join('/')}${c.query}`;
    const endpoint = c.tcp ? tcp : unix;
    const headers: Record<string, string> = c.tcp ? { authorization: `Bearer ${TOKEN}` } : {};
    await exchange(endpoint, { method: c.method, path, headers });
    if (c.tcp) {
      // The same request without the token: /v1 is refused whatever follows.
      const res = await send(endpoint, { method: c.method, path });
      assertWellFormed(`${c.method} ${path} (no token)`, res, c.method);
      if (/^\/v1(\/|$|\?)/.test(path) && res.status !== 401) throw new Error(`${c.method} ${path} over TCP without a token answered ${res.status}`);
    }
  };

  describe('paths, methods and query strings', () => {
    replayRegressions('api-paths', checkPath);
    it(`any path and method is answered below 500 with a schema-valid answer (${RUNS} runs)`, async () => {
      await fuzz('api-paths', pathCases, checkPath, { numRuns: RUNS, timeLimitMs: TIME_LIMIT_MS, tally: figures });
    });
  });

  interface WireCase { method: string; target: string; version: string; headers: string[]; body: string; eol: string }
  const wireCases: fc.Arbitrary<WireCase> = fc.record({
    method: fc.oneof(fc.constantFrom('GET', 'PUT', 'POST', 'DELETE', 'HEAD', 'PATCH', 'CONNECT'), fc.stringMatching(/^[A-Z]{1,8}$/), ascii(8)),
    target: fc.oneof(fc.constantFrom('/v1/host', '/v1/domains/test', '/v1/domains/test/policy', '/healthz', '*', 'http://x/v1/host', '//v1/host'), ascii(30)),
    version: fc.constantFrom('HTTP/1.1', 'HTTP/1.0', 'HTTP/2.0', 'HTTP/1.1 x', '', 'HTTP/9.9', 'http/1.1'),
    headers: fc.array(fc.oneof(
      fc.constantFrom('Host: x', 'Content-Type: application/json', 'Transfer-Encoding: chunked', 'Content-Length: 2', 'Content-Length: -1',
        'Content-Length: 1, 2', 'Content-Length: abc', 'Expect: nothing', 'X: \u0001', 'Bad Header: x', ':x', 'Connection: close',
        `X-Long: ${'a'.repeat(20_000)}`, 'Transfer-Encoding: gzip, chunked', 'Content-Length: 2\r\nContent-Length: 3'),
      ascii(40),
    ), { maxLength: 5 }),
    body: fc.oneof(fc.constant(''), fc.constantFrom('{}', '{"enabled":true}', '0\r\n\r\n', '2\r\n{}\r\n0\r\n\r\n', 'zz\r\n'), ascii(40)),
    eol: fc.constantFrom('\r\n', '\n'),
  });

  const checkWire = async (c: WireCase): Promise<void> => {
    const head = [`${c.method} ${c.target} ${c.version}`.trimEnd(), ...c.headers].join(c.eol);
    const bytes = Buffer.from(`${head}${c.eol}${c.eol}${c.body}`, 'latin1');
    const answers = parseResponses(await wireExchange(es2d.socket, bytes));
    for (const a of answers) {
      const json = (() => {
        try {
          return JSON.parse(a.body) as unknown;
        } catch {
          return undefined;
        }
      })();
      const method = c.method === 'HEAD' ? 'HEAD' : 'GET';
      const raw = { status: a.status, headers: a.headers, text: a.body, json: /json/.test(a.headers['content-type'] ?? '') ? json : undefined };
      // 2xx bodies were checked by the other properties; here the framing and the errors matter.
      if (a.status >= 300) assertWellFormed(`${c.method} ${c.target.slice(0, 40)} (raw)`, raw, method);
      else if (a.status >= 200 && a.status < 300) continue;
      else throw new Error(`status ${a.status} for ${JSON.stringify(head.slice(0, 200))}`);
    }
    assertAlive(es2d, 'a raw request');
  };

  describe('raw HTTP/1.1 on the socket (framing, request lines, header syntax)', () => {
    replayRegressions('api-wire', checkWire);
    it(`malformed requests are answered with the Error schema or not at all (${RUNS} runs)`, async () => {
      await fuzz('api-wire', wireCases, checkWire, { numRuns: RUNS, timeLimitMs: TIME_LIMIT_MS, tally: figures });
    });
  });

  it('es2d is still up and ready after all of it', async () => {
    assertAlive(es2d, 'the fuzz runs');
    const ready = await send(unix, { method: 'GET', path: '/readyz' });
    if (ready.status !== 200) throw new Error(`/readyz answered ${ready.status}: ${ready.text}`);
    const uuid = randomUUID();
    const put = await send(unix, { method: 'PUT', path: `/v1/domains/${uuid}/policy`, headers: { 'content-type': 'application/json' }, body: '{"enabled":true}' });
    assertWellFormed(`PUT /v1/domains/${uuid}/policy`, put, 'PUT');
  });
});
