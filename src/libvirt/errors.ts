import { ErrorNumber } from './constants.js';

/**
 * A failed libvirt call: libvirt's own error code (virErrorNumber), error domain (virErrorDomain)
 * and message, copied on the thread that made the call.
 */
export class LibvirtError extends Error {
  readonly code: number;
  readonly domain: number;
  readonly level: number;

  constructor(message: string, code: number, domain = 0, level = 2, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'LibvirtError';
    this.code = code;
    this.domain = domain;
    this.level = level;
  }

  /** The addon rejects with a plain Error that carries numeric code/domain/level. */
  static from(err: unknown): unknown {
    if (err instanceof LibvirtError) return err;
    if (err instanceof Error && typeof (err as { code?: unknown }).code === 'number') {
      const e = err as Error & { code: number; domain?: number; level?: number };
      return new LibvirtError(e.message, e.code, e.domain ?? 0, e.level ?? 2);
    }
    return err;
  }
}

function hasCode(err: unknown, ...codes: number[]): boolean {
  return err instanceof LibvirtError && codes.includes(err.code);
}

export const isNoDomain = (err: unknown): boolean => hasCode(err, ErrorNumber.NO_DOMAIN);
export const isNoMetadata = (err: unknown): boolean => hasCode(err, ErrorNumber.NO_DOMAIN_METADATA);
export const isUnsupported = (err: unknown): boolean =>
  hasCode(err, ErrorNumber.NO_SUPPORT, ErrorNumber.OPERATION_UNSUPPORTED, ErrorNumber.CONFIG_UNSUPPORTED);
export const isOperationInvalid = (err: unknown): boolean => hasCode(err, ErrorNumber.OPERATION_INVALID);
/** The connection is gone (closed, daemon died, socket dropped): reconnecting may help. */
export const isConnectionLost = (err: unknown): boolean =>
  hasCode(err, ErrorNumber.INVALID_CONN, ErrorNumber.NO_CONNECT, ErrorNumber.RPC, ErrorNumber.SYSTEM_ERROR);
