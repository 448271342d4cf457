/**
 * The one error type of es2. Every failure that reaches a caller (API, CLI, hook) carries one of
 * these stable codes; `src/api/` maps them to HTTP in exactly one place.
 */
export const ErrorCodes = {
  /** Input does not match the contract: API bodies, policy files, domain XML, CLI flags, config. */
  VALIDATION_FAILED: 400,
  /** A `/v1` request over TCP without the right bearer token. */
  UNAUTHORIZED: 401,
  /** No domain with that UUID or name, and nothing stored for it. */
  DOMAIN_NOT_FOUND: 404,
  /** The request clashes with the current state (another es2d on the socket, no samples yet). */
  CONFLICT: 409,
  /** A write whose `If-Match` does not match the current ETag. */
  PRECONDITION_FAILED: 412,
  /** The host cannot do what the policy requires (for example posted interrupts). */
  HOST_UNSUPPORTED: 422,
  /** libvirt is not connected, or a libvirt call failed in a way the caller cannot fix. */
  LIBVIRT_UNAVAILABLE: 503,
  INTERNAL: 500,
} as const;

export type ErrorCode = keyof typeof ErrorCodes;

export interface ErrorDetail {
  /** JSON pointer (API bodies, policies) or XPath-like location (XML) of the offending input. */
  path: string;
  message: string;
}

export class Es2Error extends Error {
  readonly code: ErrorCode;
  readonly details: ErrorDetail[];

  constructor(code: ErrorCode, message: string, options: { details?: ErrorDetail[]; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'Es2Error';
    this.code = code;
    this.details = options.details ?? [];
  }

  get status(): number {
    return ErrorCodes[this.code];
  }

  toJSON(): { code: ErrorCode; message: string; details?: ErrorDetail[] } {
    return this.details.length > 0
      ? { code: this.code, message: this.message, details: this.details }
      : { code: this.code, message: this.message };
  }
}

export function isEs2Error(err: unknown, code?: ErrorCode): err is Es2Error {
  return err instanceof Es2Error && (code === undefined || err.code === code);
}

export function validationFailed(message: string, details: ErrorDetail[] = []): Es2Error {
  return new Es2Error('VALIDATION_FAILED', message, { details });
}
