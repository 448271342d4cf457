// The express app, built from the OpenAPI document: a route exists only where the spec declares
// an operation, its parameters and body are validated from the spec before the handler runs (the
// body bounded by the operation's `x-max-bytes`), and every operationId must have a handler.
import { createHash, timingSafeEqual } from 'node:crypto';

import express, { type NextFunction, type Request, type Response } from 'express';

import { Es2Error } from '../errors/index.js';
import type { Logger } from '../daemon/logger.js';
import { errorHandler } from './http-errors.js';
import { missingBodyMessage, type Spec } from './spec.js';

export interface ApiRequest {
  params: Record<string, string>;
  /** Query parameters after validation and type coercion (`dryRun=true` is a boolean). */
  query: Record<string, unknown>;
  headers: Request['headers'];
  body: unknown;
}

export interface ApiResponse {
  status?: number;
  /** JSON unless `contentType` says otherwise (then a string). */
  body?: unknown;
  contentType?: string;
  headers?: Record<string, string>;
}

export type Handler = (req: ApiRequest) => Promise<ApiResponse> | ApiResponse;

export interface AppOptions {
  spec: Spec;
  handlers: Record<string, Handler>;
  logger: Logger;
  /** Bearer token required on `/v1` over TCP; UNIX-socket clients are trusted by file mode. */
  token?: string;
}

function digest(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}

/** Constant-time comparison of the presented bearer token with the configured one. */
function tokenMatches(header: string | undefined, expected: Buffer): boolean {
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header ?? '');
  return m !== null && timingSafeEqual(digest(m[1]!), expected);
}

function viaTcp(req: Request): boolean {
  return typeof req.socket.localPort === 'number';
}

function hasBody(req: Request): boolean {
  return Number(req.headers['content-length'] ?? 0) > 0 || req.headers['transfer-encoding'] !== undefined;
}

/**
 * Express decodes path parameters while it matches routes and fails with a bare URIError; this
 * names the parameter instead, before routing.
 */
function undecodableParam(spec: Spec, req: Request): Es2Error | undefined {
  for (const op of spec.operations) {
    if (op.method !== req.method.toLowerCase() && !(op.method === 'get' && req.method === 'HEAD')) continue;
    for (const [name, raw] of Object.entries(op.matchPath(req.path) ?? {})) {
      try {
        decodeURIComponent(raw);
      } catch {
        return new Es2Error('VALIDATION_FAILED', `path parameter ${name} is not valid percent-encoded UTF-8`, {
          details: [{ path: `/path/${name}`, message: `"${name}" is not valid percent-encoded UTF-8` }],
        });
      }
    }
  }
  return undefined;
}

export function createApp(options: AppOptions): express.Express {
  const { spec, handlers, logger } = options;
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.set('query parser', 'simple');
  const expected = options.token === undefined ? undefined : digest(options.token);

  app.use((req, res, next) => {
    const start = process.hrtime.bigint();
    res.on('finish', () => {
      const ms = Number(process.hrtime.bigint() - start) / 1e6;
      logger.info('request', { method: req.method, path: req.path, status: res.statusCode, ms: Math.round(ms * 100) / 100 });
      if (logger.isDebugEnabled() && hasBody(req) && req.body !== undefined) logger.debug('request body', { method: req.method, path: req.path, body: req.body as unknown });
    });
    next();
  });

  app.use('/v1', (req, _res, next) => {
    if (viaTcp(req) && (expected === undefined || !tokenMatches(req.headers.authorization, expected))) {
      next(new Es2Error('UNAUTHORIZED', 'a valid bearer token is required on this listener'));
      return;
    }
    next();
  });

  app.use((req, _res, next) => next(undecodableParam(spec, req)));

  const missing = spec.operations.filter((op) => handlers[op.operationId] === undefined).map((op) => op.operationId);
  if (missing.length > 0) throw new Error(`no handler for operations: ${missing.join(', ')}`);

  for (const op of spec.operations) {
    const handler = handlers[op.operationId]!;
    // Bodies are read only for operations that take one, and only up to their declared size.
    const readBody = op.bodyLimit === undefined
      ? (req: Request, _res: Response, next: NextFunction) => {
          next(hasBody(req)
            ? new Es2Error('VALIDATION_FAILED', `${op.method.toUpperCase()} ${op.path} takes no request body`, {
                details: [{ path: '', message: 'this operation takes no request body' }],
              })
            : undefined);
        }
      : op.bodyType === 'application/xml'
        ? express.text({ limit: op.bodyLimit, type: () => true })
        : express.json({ limit: op.bodyLimit, strict: false, type: () => true });
    app[op.method](op.expressPath, readBody, (req: Request, res: Response, next: NextFunction) => {
      const query = { ...(req.query as Record<string, unknown>) };
      const params = { ...req.params };
      const errors = op.validateParams({ path: params, query, header: { ...req.headers } });
      const body: unknown = hasBody(req) ? req.body : undefined;
      if (op.validateBody !== undefined) {
        if (body === undefined) {
          if (op.bodyRequired) errors.push({ path: '', message: missingBodyMessage(op) });
        } else {
          errors.push(...op.validateBody(body));
        }
      }
      if (errors.length > 0) {
        next(new Es2Error('VALIDATION_FAILED', errors.map((e) => `${e.path || '(body)'}: ${e.message}`).join('; '), { details: errors }));
        return;
      }
      Promise.resolve()
        .then(() => handler({ params, query, headers: req.headers, body }))
        .then((out) => {
          for (const [k, v] of Object.entries(out.headers ?? {})) res.setHeader(k, v);
          res.status(out.status ?? 200);
          if (out.body === undefined) res.end();
          else if (out.contentType !== undefined) res.type(out.contentType).send(out.body);
          else res.json(out.body);
        })
        .catch(next);
    });
  }

  app.use((req, _res, next) => {
    next(new Es2Error('VALIDATION_FAILED', `no operation ${req.method} ${req.path}`, { details: [{ path: '/path', message: 'unknown path or method' }] }));
  });
  app.use(errorHandler(logger));
  return app;
}
