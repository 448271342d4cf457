// The one place where errors become HTTP. Routes only throw.
import type { NextFunction, Request, Response } from 'express';

import { Es2Error } from '../errors/index.js';
import { isConnectionLost, LibvirtError } from '../libvirt/index.js';
import type { Logger } from '../daemon/logger.js';

export function toEs2Error(err: unknown): Es2Error {
  if (err instanceof Es2Error) return err;
  if (err instanceof LibvirtError) {
    return isConnectionLost(err)
      ? new Es2Error('LIBVIRT_UNAVAILABLE', `libvirt: ${err.message}`, { cause: err })
      : new Es2Error('INTERNAL', `libvirt call failed: ${err.message}`, { cause: err });
  }
  const e = err as { type?: string; status?: number; message?: string };
  // body-parser's errors: malformed JSON and oversized bodies are the client's.
  if (e?.type === 'entity.parse.failed') {
    return new Es2Error('VALIDATION_FAILED', 'request body is not valid JSON', {
      details: [{ path: '/', message: e.message ?? 'malformed JSON' }],
    });
  }
  if (e?.type === 'entity.too.large') {
    return new Es2Error('VALIDATION_FAILED', 'request body is too large', {
      details: [{ path: '/', message: e.message ?? 'too large' }],
    });
  }
  if (e?.type === 'charset.unsupported' || e?.type === 'encoding.unsupported') {
    return new Es2Error('VALIDATION_FAILED', e.message ?? 'unsupported encoding', { details: [{ path: '/', message: 'unsupported encoding' }] });
  }
  return new Es2Error('INTERNAL', 'internal error', { cause: err });
}

export function errorHandler(logger: Logger) {
  return (err: unknown, req: Request, res: Response, _next: NextFunction): void => {
    const e = toEs2Error(err);
    if (e.code === 'INTERNAL') {
      logger.error('request failed', { method: req.method, path: req.path, error: String((e.cause as Error)?.stack ?? e.cause) });
    }
    res.status(e.status).json(e.toJSON());
  };
}
