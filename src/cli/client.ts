// es2ctl's HTTP client for es2d: UNIX socket or TCP with a bearer token. Error bodies come back as
// the same Es2Error (same code) the API raised.
import { readFileSync } from 'node:fs';
import { request, type RequestOptions } from 'node:http';

import { Es2Error, ErrorCodes, type ErrorCode, type ErrorDetail } from '../errors/index.js';
import { UsageError } from './usage.js';

export interface ClientOptions {
  endpoint: string;
  tokenFile?: string;
  timeoutMs?: number;
}

export interface ClientResponse<T = unknown> {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: T;
}

function isErrorBody(b: unknown): b is { code: ErrorCode; message: string; details?: ErrorDetail[] } {
  return typeof b === 'object' && b !== null && typeof (b as { code?: unknown }).code === 'string'
    && (b as { code: string }).code in ErrorCodes && typeof (b as { message?: unknown }).message === 'string';
}

export class Client {
  private readonly base: RequestOptions;
  private readonly token: string | undefined;
  private readonly timeoutMs: number;

  constructor(readonly options: ClientOptions) {
    const ep = options.endpoint;
    if (ep.startsWith('unix:')) {
      this.base = { socketPath: ep.slice(5) };
    } else if (/^https?:\/\//.test(ep)) {
      const u = new URL(ep);
      if (u.protocol !== 'http:') throw new UsageError(`unsupported endpoint scheme ${u.protocol} (es2d serves http)`);
      this.base = { host: u.hostname.replace(/^\[|\]$/g, ''), port: Number(u.port || 80) };
    } else {
      throw new UsageError(`bad --endpoint ${JSON.stringify(ep)}: expected unix:PATH or http://HOST:PORT`);
    }
    if (options.tokenFile !== undefined) {
      try {
        this.token = readFileSync(options.tokenFile, 'utf8').trim();
      } catch (err) {
        throw new UsageError(`cannot read --token-file: ${(err as Error).message}`);
      }
    }
    this.timeoutMs = options.timeoutMs ?? 30_000;
  }

  /** Sends one request; resolves for 2xx, throws Es2Error (with the API's code) otherwise. */
  send<T = unknown>(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<ClientResponse<T>> {
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const h: Record<string, string> = { accept: 'application/json', ...headers };
    if (payload !== undefined) {
      h['content-type'] = 'application/json';
      h['content-length'] = String(payload.length);
    }
    if (this.token !== undefined) h.authorization = `Bearer ${this.token}`;
    return new Promise((resolve, reject) => {
      const req = request({ ...this.base, method, path, headers: h, timeout: this.timeoutMs }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          const type = String(res.headers['content-type'] ?? '');
          let parsed: unknown = text;
          if (type.includes('json') && text.length > 0) {
            try {
              parsed = JSON.parse(text);
            } catch {
              reject(new Es2Error('INTERNAL', `es2d sent malformed JSON (${res.statusCode})`));
              return;
            }
          }
          const status = res.statusCode ?? 0;
          if (status >= 200 && status < 300) {
            resolve({ status, headers: res.headers, body: parsed as T });
          } else if (isErrorBody(parsed)) {
            reject(new Es2Error(parsed.code, parsed.message, { details: parsed.details ?? [] }));
          } else {
            reject(new Es2Error('INTERNAL', `es2d answered ${status} without an error body`));
          }
        });
        res.on('error', reject);
      });
      req.on('timeout', () => req.destroy(new Error(`no answer from ${this.options.endpoint} within ${this.timeoutMs} ms`)));
      req.on('error', (err: NodeJS.ErrnoException) => {
        reject(new Es2Error('INTERNAL', `cannot reach es2d at ${this.options.endpoint}: ${err.code ?? ''} ${err.message}`.replace(/\s+/g, ' '), { cause: err }));
      });
      req.end(payload);
    });
  }
}
