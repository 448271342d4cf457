// The one place where errors become HTTP. Routes only throw.
import type { NextFunction, Request, Response } from 'express';

import { Es2Error } from '../errors/index.js';
import { isConnectionLost, LibvirtError } from '../libvirt/index.js';
import type { Logger } from '../daemon/logger.js';

/** body-parser's errors that describe the request, not es2d. */
const BODY_ERRORS: Record<string, (e: { message?: string; limit?: number }) => { message: string; detail: string }> = {
  'entity.parse.failed': (e) => ({ message: 'request body is not valid JSON', detail: e.message ?? 'malformed JSON' }),
  'entity.too.large': (e) => ({
    message: `request body is larger than ${e.limit ?? 'the'} bytes this operation accepts`,
    detail: `larger than ${e.limit ?? 'the limit of'} bytes`,
  }),
  'request.size.invalid': () => ({ message: 'request body size does not match its Content-Length', detail: 'size differs from Content-Length' }),
  'charset.unsupported': (e) => ({ message: e.message ?? 'unsupported charset', detail: 'unsupported charset' }),
  'encoding.unsupported': (e) => ({ message: e.message ?? 'unsupported content encoding', detail: 'unsupported content encoding' }),
};

export function toEs2Error(err: unknown): Es2Error {
  if (err instanceof Es2Error) return err;
  if (err instanceof LibvirtError) {
    return isConnectionLost(err)
      ? new Es2Error('LIBVIRT_UNAVAILABLE', `libvirt: ${err.message}`, { cause: err })
      : new Es2Error('INTERNAL', `libvirt call failed: ${err.message}`, { cause: err });
  }
  const e = err as { type?: string; message?: string; limit?: number };
  const body = typeof e?.type === 'string' ? BODY_ERRORS[e.type] : undefined;
  if (body !== undefined) {
    const { message, detail } = body(e);
    return new Es2Error('VALIDATION_FAILED', message, { details: [{ path: '', message: detail }], cause: err });
  }
  // Express's own decoding of path parameters (app.ts names the parameter before routing).
  if (err instanceof URIError) {
    return new Es2Error('VALIDATION_FAILED', 'the request path is not valid percent-encoded UTF-8', {
      details: [{ path: '/path', message: 'not valid percent-encoded UTF-8' }], cause: err,
    });
  }
  return new Es2Error('INTERNAL', 'internal error', { cause: err });
}

export function errorHandler(logger: Logger) {
  return (err: unknown, req: Request, res: Response, _next: NextFunction): void => {
    const e = toEs2Error(err);
    if (e.code === 'INTERNAL') {
      logger.error('request failed', { method: req.method, path: req.path, error: e.message, cause: String((e.cause as Error)?.stack ?? e.cause) });
    }
    if (res.headersSent) {
      // Part of another answer is on the wire: the client learns of the failure by the cut.
      res.destroy();
      return;
    }
    // RFC 9110 15.5.2: a 401 names the scheme that would be accepted.
    if (e.code === 'UNAUTHORIZED') res.setHeader('WWW-Authenticate', 'Bearer realm="es2"');
    res.status(e.status).json(e.toJSON());
  };
}
