// A test client for es2d that holds both sides of every exchange to openapi/es2.yaml, so the spec
// and the server cannot drift apart unnoticed:
// - a request must match an operation of the spec (path, method, parameters, body, size limit) or
//   the client refuses to send it; a test that means to send an invalid request says so with
//   `unchecked: true`, and still learns what the spec finds wrong with it (`requestErrors`);
// - every response is validated: its status must be declared by the operation or fall under
//   `default`, its media type must be a declared one, required headers must be present, a JSON body
//   must match the schema declared for that status, an error must be the one Error schema with the
//   HTTP status its code maps to, and a bearer-secured operation reached over TCP without a token
//   must have answered UNAUTHORIZED (and an open one must not have).
import assert from 'node:assert/strict';
import { request, type IncomingHttpHeaders, type RequestOptions } from 'node:http';
import { join } from 'node:path';
import { parse as parseQuery } from 'node:querystring';

import { loadSpec, missingBodyMessage, type Operation, type Spec } from '../../src/api/spec.js';
import { resolveConfig, type Config } from '../../src/daemon/config.js';
import { Daemon } from '../../src/daemon/daemon.js';
import { silentLogger, type Logger } from '../../src/daemon/logger.js';
import { ErrorCodes, type ErrorCode, type ErrorDetail } from '../../src/errors/index.js';
import { Connection } from '../../src/libvirt/index.js';
import { hostTree, STOCK_HOST, tempDir } from './temp.js';

export interface ApiRequestOptions {
  /** A JSON body, serialised by the client. */
  body?: unknown;
  /** A body sent byte for byte (malformed JSON, oversized bodies); implies nothing about validity. */
  raw?: string | Buffer;
  headers?: Record<string, string>;
  /** Send even though the request does not match the spec (deliberately invalid requests). */
  unchecked?: boolean;
  /** This request's bearer token instead of the client's; null sends none. */
  token?: string | null;
}

export interface ApiResult<T = unknown> {
  status: number;
  headers: IncomingHttpHeaders;
  /** Parsed JSON for JSON responses, else the text. */
  body: T;
  text: string;
  /** The operation the request addressed; undefined for a path or method the spec lacks. */
  operation: Operation | undefined;
  /** What the spec finds wrong with the request as sent (empty: it conforms). */
  requestErrors: ErrorDetail[];
}

export interface ErrorBody {
  code: ErrorCode;
  message: string;
  details?: ErrorDetail[];
}

export interface ApiClientOptions {
  /** `unix:PATH` or `http://HOST:PORT`. */
  endpoint: string;
  token?: string;
  timeoutMs?: number;
}

const TEST_URI = 'test:///default';

let sharedSpec: Spec | undefined;

/** operationId → the statuses it answered (validated) in this test process. */
const exercised = new Map<string, Set<number>>();

/** Operations of the spec that have not answered a 2xx status to any ApiClient of this process. */
export function operationsWithoutSuccess(): string[] {
  return apiSpec().operations
    .filter((op) => ![...(exercised.get(op.operationId) ?? [])].some((s) => s >= 200 && s < 300))
    .map((op) => op.operationId);
}

/** The spec, loaded once per test process (compiling its validators takes a moment). */
export function apiSpec(): Spec {
  sharedSpec ??= loadSpec();
  return sharedSpec;
}

function formatAjv(errors: unknown): string {
  return JSON.stringify(errors, null, 1);
}

/** The raw (percent-encoded) path parameters decoded; an undecodable one is a request error. */
function decodeParams(raw: Record<string, string>): { params: Record<string, string>; errors: ErrorDetail[] } {
  const params: Record<string, string> = {};
  const errors: ErrorDetail[] = [];
  for (const [name, value] of Object.entries(raw)) {
    try {
      params[name] = decodeURIComponent(value);
    } catch {
      errors.push({ path: `/path/${name}`, message: 'not valid percent-encoded UTF-8' });
    }
  }
  return { params, errors };
}

/** The operation's response for `status` is the shared error response (BadRequest or Error). */
function errorResponse(spec: Spec, op: Operation, status: string): boolean {
  const doc = spec.document as { paths: Record<string, Record<string, { responses: Record<string, { $ref?: string }> }>> };
  const ref = doc.paths[op.path]?.[op.method]?.responses[status]?.$ref;
  return ref === '#/components/responses/BadRequest' || ref === '#/components/responses/Error';
}

function securedByBearer(spec: Spec, op: Operation): boolean {
  const doc = spec.document as { security?: object[]; paths: Record<string, Record<string, { security?: object[] }>> };
  const security = doc.paths[op.path]?.[op.method]?.security ?? doc.security ?? [];
  return security.length > 0 && security.every((req) => 'bearerToken' in req);
}

export class ApiClient {
  readonly spec: Spec;
  private readonly base: RequestOptions;
  readonly tcp: boolean;

  constructor(readonly options: ApiClientOptions) {
    this.spec = apiSpec();
    const ep = options.endpoint;
    if (ep.startsWith('unix:')) {
      this.base = { socketPath: ep.slice(5) };
      this.tcp = false;
    } else {
      const u = new URL(ep);
      this.base = { host: u.hostname.replace(/^\[|\]$/g, ''), port: Number(u.port) };
      this.tcp = true;
    }
  }

  /** The operation of the spec that `method` `path` (no query string, still percent-encoded) addresses. */
  operationFor(method: string, path: string): { op: Operation; raw: Record<string, string> } | undefined {
    // Literal paths win over templated ones, as in any OpenAPI router.
    const candidates = this.spec.operations
      .filter((op) => op.method === method.toLowerCase())
      .sort((a, b) => Number(a.path.includes('{')) - Number(b.path.includes('{')));
    for (const op of candidates) {
      const raw = op.matchPath(path);
      if (raw !== null) return { op, raw };
    }
    return undefined;
  }

  /** What the spec finds wrong with a request; the operation is undefined when the spec lacks it. */
  check(method: string, target: string, headers: Record<string, string>, body: { json?: unknown; text?: string; bytes?: number }): {
    operation: Operation | undefined;
    errors: ErrorDetail[];
  } {
    const url = new URL(target, 'http://es2d');
    const found = this.operationFor(method, url.pathname);
    if (found === undefined) return { operation: undefined, errors: [{ path: '/path', message: `the spec has no ${method} ${url.pathname}` }] };
    const { op, raw } = found;
    const { params, errors } = decodeParams(raw);
    const query = parseQuery(url.search.replace(/^\?/, ''));
    const header = Object.fromEntries(Object.entries(headers).map(([k, v]) => [k.toLowerCase(), v]));
    if (errors.length === 0) errors.push(...op.validateParams({ path: params, query: { ...query }, header }));
    const sent = body.bytes !== undefined && body.bytes > 0;
    if (op.bodyLimit === undefined) {
      if (sent) errors.push({ path: '', message: 'this operation takes no request body' });
    } else if (!sent) {
      if (op.bodyRequired) errors.push({ path: '', message: missingBodyMessage(op) });
    } else if (body.bytes! > op.bodyLimit) {
      errors.push({ path: '', message: `larger than ${op.bodyLimit} bytes` });
    } else if (op.bodyType === 'application/xml') {
      // Handed to the operation as text: the schema bounds the string.
      if (op.validateBody !== undefined) errors.push(...op.validateBody(body.text ?? ''));
    } else if (body.json === undefined) {
      errors.push({ path: '', message: 'not JSON' });
    } else if (op.validateBody !== undefined) {
      errors.push(...op.validateBody(body.json));
    }
    return { operation: op, errors };
  }

  async request<T = unknown>(method: string, target: string, options: ApiRequestOptions = {}): Promise<ApiResult<T>> {
    let payload: Buffer | undefined;
    let json: unknown;
    if (options.raw !== undefined) {
      payload = Buffer.isBuffer(options.raw) ? options.raw : Buffer.from(options.raw);
      try {
        json = JSON.parse(payload.toString('utf8'));
      } catch {
        json = undefined;
      }
    } else if (options.body !== undefined) {
      payload = Buffer.from(JSON.stringify(options.body));
      json = options.body;
    }
    const headers: Record<string, string> = { accept: 'application/json', ...options.headers };
    if (payload !== undefined) {
      headers['content-type'] ??= 'application/json';
      headers['content-length'] = String(payload.length);
    }
    const token = options.token === undefined ? this.options.token : options.token;
    if (token !== null && token !== undefined) headers.authorization = `Bearer ${token}`;

    const { operation, errors } = this.check(method, target, headers, { json, text: payload?.toString('utf8'), bytes: payload?.length ?? 0 });
    if (!options.unchecked && errors.length > 0) {
      assert.fail(`the test sent ${method} ${target}, which the spec refuses (pass unchecked: true if that is the point):\n${JSON.stringify(errors, null, 1)}`);
    }
    const res = await this.send(method, target, headers, payload);
    const result: ApiResult<T> = { ...res, body: res.body as T, operation, requestErrors: errors };
    this.validateResponse(method, target, result, token !== null && token !== undefined);
    if (operation !== undefined) {
      const statuses = exercised.get(operation.operationId) ?? new Set<number>();
      statuses.add(result.status);
      exercised.set(operation.operationId, statuses);
    }
    return result;
  }

  get<T = unknown>(target: string, options?: ApiRequestOptions): Promise<ApiResult<T>> {
    return this.request<T>('GET', target, options);
  }

  put<T = unknown>(target: string, body: unknown, options: ApiRequestOptions = {}): Promise<ApiResult<T>> {
    return this.request<T>('PUT', target, { ...options, body });
  }

  post<T = unknown>(target: string, body?: unknown, options: ApiRequestOptions = {}): Promise<ApiResult<T>> {
    return this.request<T>('POST', target, body === undefined ? options : { ...options, body });
  }

  delete<T = unknown>(target: string, options?: ApiRequestOptions): Promise<ApiResult<T>> {
    return this.request<T>('DELETE', target, options);
  }

  private validateResponse(method: string, target: string, r: ApiResult, withToken: boolean): void {
    const what = `${method} ${target} → ${r.status}`;
    const op = r.operation;
    const type = String(r.headers['content-type'] ?? '').split(';')[0]!.trim();
    if (op === undefined) {
      this.validateError(what, r);
      // A path or method the spec lacks: refused as input, with the one error body.
      if (this.tcp && !withToken && new URL(target, 'http://es2d').pathname.startsWith('/v1') && r.status === 401) return;
      assert.equal(r.status, 400, `${what}: a path the spec lacks must be VALIDATION_FAILED\n${r.text}`);
      assert.equal((r.body as ErrorBody).code, 'VALIDATION_FAILED', what);
      return;
    }
    if (this.tcp && securedByBearer(this.spec, op) && !withToken) {
      assert.equal(r.status, 401, `${what}: ${op.operationId} is bearer-secured, yet answered over TCP without a token`);
    }
    if (!securedByBearer(this.spec, op)) {
      assert.notEqual(r.status, 401, `${what}: ${op.operationId} is open on every listener, yet asked for a token`);
    }
    const declared = op.responses.get(String(r.status));
    // Failures are the one Error body, unless the operation declares that status otherwise
    // (/readyz answers 503 with its Health body).
    if (r.status >= 400 && (declared === undefined || errorResponse(this.spec, op, String(r.status)))) this.validateError(what, r);
    // `default` covers failures only: a success status must be declared by name.
    const response = declared ?? (r.status >= 400 ? op.responses.get('default') : undefined);
    assert.ok(response !== undefined, `${what}: ${op.operationId} does not declare status ${r.status} (declared: ${[...op.responses.keys()].join(', ')})`);
    for (const name of response.requiredHeaders) {
      assert.ok(r.headers[name] !== undefined, `${what}: the spec requires header ${name}`);
    }
    if (response.mediaTypes.length === 0) {
      assert.equal(r.text, '', `${what}: the spec declares no body`);
      return;
    }
    assert.ok(response.mediaTypes.includes(type), `${what}: content type ${JSON.stringify(type)} is not among ${response.mediaTypes.join(', ')}`);
    if (response.validate !== null) {
      assert.ok(response.validate(r.body), `${what}: the body does not match the spec of ${op.operationId} ${r.status}:\n${formatAjv(response.validate.errors)}\n${r.text.slice(0, 2000)}`);
    }
  }

  private validateError(what: string, r: ApiResult): void {
    const validate = this.spec.schema('Error');
    assert.ok(validate(r.body), `${what}: not the Error schema:\n${formatAjv(validate.errors)}\n${r.text.slice(0, 2000)}`);
    const code = (r.body as ErrorBody).code;
    assert.equal(ErrorCodes[code], r.status, `${what}: code ${code} maps to HTTP ${ErrorCodes[code]}, not ${r.status}`);
  }

  private send(method: string, target: string, headers: Record<string, string>, payload: Buffer | undefined): Promise<{
    status: number;
    headers: IncomingHttpHeaders;
    body: unknown;
    text: string;
  }> {
    return new Promise((resolve, reject) => {
      const req = request({ ...this.base, method, path: target, headers, timeout: this.options.timeoutMs ?? 30_000 }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let body: unknown = text;
          if (/[/+]json\b/.test(String(res.headers['content-type'] ?? ''))) {
            try {
              body = JSON.parse(text);
            } catch {
              reject(new Error(`${method} ${target}: es2d answered ${res.statusCode} with malformed JSON: ${text.slice(0, 500)}`));
              return;
            }
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body, text });
        });
      });
      req.on('timeout', () => req.destroy(new Error(`${method} ${target}: no answer within ${this.options.timeoutMs ?? 30_000} ms`)));
      req.on('error', reject);
      req.end(payload);
    });
  }
}

/** Asserts an error response: its code and, when given, the path of one of its details. */
export function assertError(r: ApiResult, code: ErrorCode, detailPath?: string): ErrorBody {
  const body = r.body as ErrorBody;
  assert.equal(body.code, code, `expected ${code}, got ${r.status} ${r.text.slice(0, 1000)}`);
  if (detailPath !== undefined) {
    const paths = (body.details ?? []).map((d) => d.path);
    assert.ok(paths.includes(detailPath), `expected a detail at ${JSON.stringify(detailPath)}, got ${JSON.stringify(body.details)}`);
  }
  return body;
}

/** es2d started in this process on test:///default and a temp socket, with an ApiClient on it. */
export interface ApiDaemon {
  daemon: Daemon;
  api: ApiClient;
  /** The test's own connection: in one process it shares test:///default's state with es2d. */
  conn: Connection;
  /** The UUID of test:///default's domain `test`. */
  uuid: string;
  socket: string;
  stateDir: string;
  hostRoot: string;
  /** Stops es2d and closes the test's connection. */
  stop(): Promise<void>;
}

/** Starts es2d in-process (faster than a child process) and waits until it is ready. */
export async function startApiDaemon(options: { hostRoot?: string; config?: Partial<Config>; logger?: Logger } = {}): Promise<ApiDaemon> {
  const socket = join(tempDir('es2-sock-'), 'es2d.sock');
  const stateDir = tempDir('es2-state-');
  const hostRoot = options.hostRoot ?? hostTree(STOCK_HOST);
  const config = resolveConfig({ uri: TEST_URI, listen: [`unix:${socket}`], stateDir, hostRoot, statsInterval: 1 });
  const daemon = await Daemon.start({ ...config, ...options.config }, options.logger ?? silentLogger());
  await daemon.waitReady();
  const conn = await Connection.open(TEST_URI);
  const uuid = (await conn.lookupDomainByName('test')).uuid;
  return {
    daemon, api: new ApiClient({ endpoint: `unix:${socket}` }), conn, uuid, socket, stateDir, hostRoot,
    stop: async () => {
      await daemon.stop();
      await conn.close();
    },
  };
}

/** Polls `probe` until it returns something other than undefined. */
export async function until<T>(what: string, probe: () => Promise<T | undefined> | T | undefined, ms = 15_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
