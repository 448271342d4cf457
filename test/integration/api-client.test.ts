// The ApiClient's guard is only worth something if it fails: a stand-in server answers each case
// with a response that breaks the spec in one way, and the client must refuse every one of them
// (and refuse to send a request the spec refuses, unless told it is deliberate).
import assert from 'node:assert/strict';
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';

import { ApiClient } from '../helpers/api-client.js';
import { tempDir } from '../helpers/temp.js';

type Answer = (res: ServerResponse) => void;

const json = (status: number, body: unknown, headers: Record<string, string> = {}): Answer => (res) => {
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', ...headers });
  res.end(JSON.stringify(body));
};

const DOMAIN = {
  uuid: '6695eb01-f6a4-8304-79aa-97f2502e193f', name: 'test', state: 'running', active: true, persistent: true,
  nova: null, storedPolicy: null, effective: null, recorded: null, applied: null, drift: null, etag: 'none',
};

describe('the ApiClient refuses what the spec does not allow', () => {
  let answer: Answer = json(200, {});
  let received = 0;
  const servers: Server[] = [];
  let unix: ApiClient;
  let tcp: ApiClient;

  const listen = (server: Server, where: string | number): Promise<void> =>
    new Promise((resolve) => (typeof where === 'string' ? server.listen(where, resolve) : server.listen(where, '127.0.0.1', resolve)));

  before(async () => {
    const handler = (_req: unknown, res: ServerResponse): void => {
      received += 1;
      answer(res);
    };
    const socket = join(tempDir('es2-fake-'), 'fake.sock');
    servers.push(createServer(handler), createServer(handler));
    await listen(servers[0]!, socket);
    await listen(servers[1]!, 0);
    unix = new ApiClient({ endpoint: `unix:${socket}` });
    tcp = new ApiClient({ endpoint: `http://127.0.0.1:${(servers[1]!.address() as AddressInfo).port}` });
  });

  after(async () => {
    await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  });

  const refuses = async (answerWith: Answer, send: () => Promise<unknown>, message: RegExp): Promise<void> => {
    answer = answerWith;
    await assert.rejects(send, (err: Error) => {
      assert.match(err.message, message);
      return true;
    });
  };

  it('accepts a response that matches', async () => {
    answer = json(200, DOMAIN, { etag: '"none"' });
    assert.equal((await unix.get('/v1/domains/test')).status, 200);
  });

  it('a body that does not match the schema of its status', () =>
    refuses(json(200, { status: 'ok' }), () => unix.get('/healthz'), /does not match the spec of getHealth 200/));

  it('a status the operation does not declare', () =>
    refuses(json(201, { domains: [] }), () => unix.get('/v1/domains'), /does not declare status 201/));

  it('a missing required header', () =>
    refuses(json(200, DOMAIN), () => unix.get('/v1/domains/test'), /requires header etag/));

  it('an error whose code maps to another HTTP status', () =>
    refuses(json(404, { code: 'CONFLICT', message: 'x' }), () => unix.get('/v1/domains'), /code CONFLICT maps to HTTP 409, not 404/));

  it('an error that is not the Error schema', () =>
    refuses(json(500, { error: 'boom' }), () => unix.get('/v1/domains'), /not the Error schema/));

  it('a media type the response does not declare', () =>
    refuses(json(200, 'es2_up 1'), () => unix.get('/metrics'), /content type "application\/json" is not among text\/plain/));

  it('a secured operation served over TCP without a token', () =>
    refuses(json(200, { domains: [] }), () => tcp.get('/v1/domains'), /bearer-secured/));

  it('an open operation that asks for a token', () =>
    refuses(json(401, { code: 'UNAUTHORIZED', message: 'token' }), () => tcp.get('/healthz'), /open on every listener/));

  it('a path the spec lacks that is not answered with VALIDATION_FAILED', () =>
    refuses(json(404, { code: 'DOMAIN_NOT_FOUND', message: 'x' }), () => unix.request('GET', '/v1/nope', { unchecked: true }), /must be VALIDATION_FAILED/));

  it('does not send a request the spec refuses unless it is marked unchecked', async () => {
    const before = received;
    await assert.rejects(() => unix.put('/v1/domains/test/policy', { enabled: true, turbo: 1 }), /which the spec refuses/);
    await assert.rejects(() => unix.put('/v1/domains/test/policy?dryRun=maybe', { enabled: true }), /which the spec refuses/);
    await assert.rejects(() => unix.post('/v1/domains/test/baseline', {}), /which the spec refuses/);
    assert.equal(received, before, 'nothing reached the server');
    answer = json(400, { code: 'VALIDATION_FAILED', message: 'x', details: [{ path: '/turbo', message: 'unknown field' }] });
    const sent = await unix.put('/v1/domains/test/policy', { enabled: true, turbo: 1 }, { unchecked: true });
    assert.deepEqual(sent.requestErrors, [{ path: '/turbo', message: 'unknown field "turbo"' }]);
    assert.equal(received, before + 1);
  });
});
