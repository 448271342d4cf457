// Small tools the reliability scenarios share: raw HTTP to es2d (any method, path and header the
// client library lets through, bounded by a timeout), the checks every answer must pass (no 5xx,
// errors in the one Error schema with the status their code maps to), es2d's listeners and token.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { request, type IncomingHttpHeaders } from 'node:http';
import { connect } from 'node:net';
import { join } from 'node:path';

import { loadSpec, type Operation, type Spec } from '../../src/api/spec.js';
import { ErrorCodes, type ErrorCode } from '../../src/errors/index.js';
import type { Es2dProcess } from '../helpers/es2d.js';
import { tempDir } from '../helpers/temp.js';
import { until } from '../helpers/wait.js';

export const TOKEN = 'es2rel-token-6c1d9a2f8e4b7035';

export function tokenFile(token = TOKEN): string {
  const file = join(tempDir('es2rel-token-'), 'token');
  writeFileSync(file, `${token}\n`, { mode: 0o600 });
  return file;
}

let spec: Spec | undefined;
export function apiSpec(): Spec {
  spec ??= loadSpec();
  return spec;
}

export interface RawRequest {
  method: string;
  path: string;
  headers?: Record<string, string>;
  body?: string | Buffer;
  timeoutMs?: number;
}

export interface RawResponse {
  status: number;
  headers: IncomingHttpHeaders;
  text: string;
  /** The body parsed when it is JSON; undefined otherwise. */
  json: unknown;
}

/** `unix:PATH` or `http://HOST:PORT`. */
export function send(endpoint: string, r: RawRequest): Promise<RawResponse> {
  const base = endpoint.startsWith('unix:')
    ? { socketPath: endpoint.slice(5) }
    : { host: new URL(endpoint).hostname, port: Number(new URL(endpoint).port) };
  return new Promise((resolve, reject) => {
    const headers = { ...r.headers };
    if (r.body !== undefined) headers['content-length'] = String(Buffer.byteLength(r.body));
    const req = request({ ...base, method: r.method, path: r.path, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json: unknown;
        if (/[/+]json\b/.test(String(res.headers['content-type'] ?? ''))) {
          try {
            json = JSON.parse(text);
          } catch {
            json = undefined;
          }
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json });
      });
    });
    const ms = r.timeoutMs ?? 15_000;
    req.setTimeout(ms, () => req.destroy(new Error(`${r.method} ${r.path}: no answer within ${ms} ms`)));
    req.on('error', reject);
    req.end(r.body);
  });
}

/** The operation of the spec that `method` `path` (no query) addresses, literal paths first. */
export function operationFor(method: string, path: string): Operation | undefined {
  const candidates = apiSpec().operations
    .filter((op) => op.method === method.toLowerCase())
    .sort((a, b) => Number(a.path.includes('{')) - Number(b.path.includes('{')));
  return candidates.find((op) => op.matchPath(path) !== null);
}

/**
 * What every answer of es2d must be: no 5xx, and a failure is the one Error body with the status
 * its code maps to. A 2xx answer of a spec operation matches the schema declared for it.
 */
export function assertWellFormed(what: string, r: RawResponse, method: string, options: { allow503?: boolean } = {}): void {
  const tail = `${what} → ${r.status} ${r.text.slice(0, 600)}`;
  assert.ok(r.status >= 200 && r.status < 600, tail);
  if (r.status >= 500) assert.ok(options.allow503 === true && r.status === 503, `a 5xx answer: ${tail}`);
  if (method === 'HEAD') return;
  if (r.status >= 400) {
    const validate = apiSpec().schema('Error');
    assert.ok(r.json !== undefined, `an error that is not JSON: ${tail}`);
    assert.ok(validate(r.json), `an error outside the Error schema (${JSON.stringify(validate.errors)}): ${tail}`);
    const code = (r.json as { code: ErrorCode }).code;
    assert.equal(ErrorCodes[code], r.status, `code ${code} maps to ${ErrorCodes[code]}: ${tail}`);
    return;
  }
  const path = (what.split(' ')[1] ?? '').split('?')[0]!;
  const op = operationFor(method, path);
  const declared = op?.responses.get(String(r.status));
  if (op !== undefined && declared?.validate) {
    assert.ok(declared.validate(r.json), `${op.operationId} ${r.status} does not match its schema (${JSON.stringify(declared.validate.errors)}): ${tail}`);
  }
}

export function assertAlive(proc: Es2dProcess, what: string): void {
  assert.ok(proc.child.exitCode === null && proc.child.signalCode === null,
    `es2d died (${proc.child.exitCode ?? proc.child.signalCode}) after ${what}:\n${proc.logs().slice(-3000)}`);
}

interface LogLine { message: string; [key: string]: unknown }

export function logLines(proc: Es2dProcess): LogLine[] {
  return proc.logs().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as LogLine);
}

/** The TCP URL es2d logged at start (port 0 became a real port). */
export async function tcpUrl(proc: Es2dProcess): Promise<string> {
  return until('es2d to log its listeners', () => {
    const started = logLines(proc).find((l) => l.message === 'es2d started');
    return (started?.listen as string[] | undefined)?.find((u) => u.startsWith('http://'));
  }, 15_000);
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Milliseconds `fn` took. */
export async function timed<T>(fn: () => Promise<T>): Promise<{ value: T; ms: number }> {
  const start = performance.now();
  const value = await fn();
  return { value, ms: performance.now() - start };
}

export interface WireResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** The HTTP/1.1 responses in `bytes`, in order (Content-Length or chunked bodies). */
export function parseResponses(bytes: Buffer): WireResponse[] {
  const out: WireResponse[] = [];
  let rest: Buffer = bytes;
  while (rest.length > 0) {
    const end = rest.indexOf('\r\n\r\n');
    if (end < 0) throw new Error(`a truncated response head: ${JSON.stringify(rest.toString('latin1').slice(0, 300))}`);
    const [statusLine, ...lines] = rest.subarray(0, end).toString('latin1').split('\r\n');
    const m = /^HTTP\/1\.[01] (\d{3})/.exec(statusLine ?? '');
    if (m === null) throw new Error(`not a status line: ${JSON.stringify(statusLine)}`);
    const headers: Record<string, string> = {};
    for (const line of lines) {
      const i = line.indexOf(':');
      headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
    }
    rest = rest.subarray(end + 4);
    let body: Buffer = Buffer.alloc(0);
    if (headers['transfer-encoding'] === 'chunked') {
      const parts: Buffer[] = [];
      for (;;) {
        const eol = rest.indexOf('\r\n');
        const size = parseInt(rest.subarray(0, eol).toString('latin1'), 16);
        rest = rest.subarray(eol + 2);
        if (size === 0) {
          rest = rest.subarray(rest.indexOf('\r\n') + 2);
          break;
        }
        parts.push(rest.subarray(0, size));
        rest = rest.subarray(size + 2);
      }
      body = Buffer.concat(parts);
    } else {
      const length = Number(headers['content-length'] ?? 0);
      body = rest.subarray(0, length);
      rest = rest.subarray(length);
    }
    out.push({ status: Number(m[1]), headers, body: body.toString('utf8') });
  }
  return out;
}

/** Writes `bytes` to a UNIX socket, half-closes, and collects what comes back until close or `ms`. */
export function wireExchange(socketPath: string, bytes: Buffer, ms = 5000): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const s = connect(socketPath);
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      s.destroy();
      resolve(Buffer.concat(chunks));
    }, ms);
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('error', (err: NodeJS.ErrnoException) => {
      // The server may reset a connection it refused; what it said before still counts.
      if (err.code === 'ECONNRESET' || err.code === 'EPIPE') return;
      clearTimeout(timer);
      reject(err);
    });
    s.on('close', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks));
    });
    s.end(bytes);
  });
}

export { HOOK_SCRIPT, runHook, type HookRun } from '../helpers/hook.js';
