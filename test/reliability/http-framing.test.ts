// What Node's HTTP server would answer by itself, outside the app, gets the one Error body too (or
// is served): requests the parser refuses, HTTP/1.1 without Host, an unknown Expect, and a body
// whose framing breaks after the app has begun its answer (exactly one answer, never two).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { startEs2d, type Es2dProcess } from '../helpers/es2d.js';
import { assertAlive, assertWellFormed, parseResponses, send, wireExchange, type WireResponse } from './support.js';

describe('HTTP framing errors of es2d', () => {
  let es2d: Es2dProcess;

  before(async () => {
    es2d = await startEs2d();
  });

  after(async () => {
    await es2d?.stop();
  });

  const raw = async (text: string): Promise<WireResponse[]> => parseResponses(await wireExchange(es2d.socket, Buffer.from(text, 'latin1')));
  const wellFormed = (what: string, r: WireResponse): void =>
    assertWellFormed(what, { status: r.status, headers: r.headers, text: r.body, json: JSON.parse(r.body) as unknown }, 'GET');

  it('serves a request whose Expect is not 100-continue instead of a bodiless 417', async () => {
    const r = await send(`unix:${es2d.socket}`, { method: 'GET', path: '/v1/host', headers: { expect: 'nonsense' } });
    assert.equal(r.status, 200, r.text);
  });

  it('answers HTTP/1.1 without Host with VALIDATION_FAILED, and serves HTTP/1.0 without it', async () => {
    const [r11, ...more] = await raw('GET /v1/host HTTP/1.1\r\n\r\n');
    assert.equal(more.length, 0);
    assert.equal(r11!.status, 400);
    wellFormed('HTTP/1.1 without Host', r11!);
    assert.match(r11!.body, /Host header/);
    const [r10] = await raw('GET /healthz HTTP/1.0\r\n\r\n');
    assert.equal(r10!.status, 200, r10!.body);
  });

  it('answers what the parser refuses with VALIDATION_FAILED: a bad request line, oversized headers', async () => {
    for (const [what, text] of [
      ['no method', ' /v1/host HTTP/1.1\r\nHost: x\r\n\r\n'],
      ['a bad version', 'GET /v1/host HTTP/9.9\r\nHost: x\r\n\r\n'],
      ['a header without a name', 'GET /v1/host HTTP/1.1\r\nHost: x\r\n: x\r\n\r\n'],
      ['a control character in a header', 'GET /v1/host HTTP/1.1\r\nHost: x\r\nX: \u0001\r\n\r\n'],
      ['20 kB of headers', `GET /v1/host HTTP/1.1\r\nHost: x\r\nX-Long: ${'a'.repeat(20_000)}\r\n\r\n`],
      ['two Content-Length values', 'PUT /v1/domains/test/policy HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n{}'],
    ] as const) {
      const answers = await raw(text);
      assert.equal(answers.length, 1, what);
      assert.equal(answers[0]!.status, 400, what);
      wellFormed(what, answers[0]!);
    }
    assertAlive(es2d, 'malformed requests');
  });

  it('gives one answer when the body framing breaks after the app has answered', async () => {
    const answers = await raw('GET /v1/host HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: *\r\n\r\n');
    assert.equal(answers.length, 1, JSON.stringify(answers));
    wellFormed('Transfer-Encoding: *', answers[0]!);
  });
});
