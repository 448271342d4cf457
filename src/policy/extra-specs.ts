// Nova flavor extra specs `es2:*` as a policy layer. Each spec maps to one place in the policy;
// values are converted from Nova's strings and then checked by the same schema as every policy, its
// errors reported against the spec that produced the value.
import { type ErrorDetail, isEs2Error } from '../errors/index.js';
import { failValidation, validatePolicyLayer } from './validate.js';
import type { PolicyLayer } from './types.js';

type Convert = (value: string, spec: string) => unknown;

const integer: Convert = (value) => (/^-?[0-9]+$/.test(value) ? Number(value) : value);
const text: Convert = (value) => value;

// oslo.utils strutils.bool_from_string(strict=True), which Nova uses for its own boolean specs.
const TRUE = new Set(['1', 't', 'true', 'on', 'y', 'yes']);
const FALSE = new Set(['0', 'f', 'false', 'off', 'n', 'no']);
const boolean: Convert = (value) => {
  const lower = value.trim().toLowerCase();
  return TRUE.has(lower) ? true : FALSE.has(lower) ? false : value;
};

/** `0:io,1:compute`: vCPU index and label pairs. */
const vcpuLabels: Convert = (value, spec) =>
  value.split(',').map((pair) => {
    const match = /^([^:]*):(.*)$/.exec(pair);
    if (match === null) {
      failValidation('flavor extra specs', [{ path: specPath(spec), message: `${spec}: "${pair}" is not VCPU:LABEL` }]);
    }
    return { vcpu: integer(match[1] as string, spec), label: match[2] };
  });

/** Spec name → JSON pointer in the policy layer, and how its string value converts. */
export const EXTRA_SPECS: Readonly<Record<string, { pointer: string; convert: Convert }>> = {
  'es2:enabled': { pointer: '/enabled', convert: boolean },
  'es2:vcpu_labels': { pointer: '/vcpus', convert: vcpuLabels },
  'es2:iothreads': { pointer: '/hybridIo/iothreads', convert: integer },
  'es2:poll_max_ns': { pointer: '/hybridIo/pollMaxNs', convert: integer },
  'es2:poll_grow': { pointer: '/hybridIo/pollGrow', convert: integer },
  'es2:poll_shrink': { pointer: '/hybridIo/pollShrink', convert: integer },
  'es2:kick_rate_threshold': { pointer: '/hybridIo/kickRateThreshold', convert: integer },
  'es2:idle_timeout_us': { pointer: '/hybridIo/idleTimeoutUs', convert: integer },
  'es2:redirect': { pointer: '/interruptRedirection/mode', convert: text },
  'es2:redirect_label': { pointer: '/interruptRedirection/targetLabel', convert: text },
  'es2:posted_interrupts': { pointer: '/postedInterrupts', convert: text },
  'es2:halt_poll_ns': { pointer: '/haltPollNs', convert: integer },
};

/** Where a spec sits in the domain XML Nova writes, for error details. */
export function specPath(spec: string): string {
  return `/domain/metadata/nova:instance/nova:flavor/nova:extraSpecs/nova:extraSpec[@name='${spec}']`;
}

function setAt(target: Record<string, unknown>, pointer: string, value: unknown): void {
  const keys = pointer.split('/').slice(1);
  let node = target;
  for (const key of keys.slice(0, -1)) {
    node[key] ??= {};
    node = node[key] as Record<string, unknown>;
  }
  node[keys[keys.length - 1] as string] = value;
}

function specOf(pointer: string): string | undefined {
  return Object.keys(EXTRA_SPECS).find((spec) => {
    const own = (EXTRA_SPECS[spec] as { pointer: string }).pointer;
    return pointer === own || pointer.startsWith(own + '/');
  });
}

/**
 * The policy layer that a flavor's `es2:*` extra specs describe; null when it has none. Other
 * specs (`hw:*`, ...) are ignored.
 * @throws Es2Error VALIDATION_FAILED naming the spec: unknown `es2:` spec, or a bad value.
 */
export function policyFromExtraSpecs(extraSpecs: Readonly<Record<string, string>>): PolicyLayer | null {
  const layer: Record<string, unknown> = {};
  const unknown: ErrorDetail[] = [];
  let any = false;
  for (const [spec, value] of Object.entries(extraSpecs)) {
    if (!spec.startsWith('es2:')) continue;
    any = true;
    const known = EXTRA_SPECS[spec];
    if (known === undefined) {
      unknown.push({ path: specPath(spec), message: `${spec}: unknown es2 extra spec` });
      continue;
    }
    setAt(layer, known.pointer, known.convert(value, spec));
  }
  if (unknown.length > 0) failValidation('flavor extra specs', unknown);
  if (!any) return null;
  try {
    return validatePolicyLayer(layer);
  } catch (err) {
    if (!isEs2Error(err, 'VALIDATION_FAILED')) throw err;
    failValidation('flavor extra specs', err.details.map((d) => {
      const spec = specOf(d.path) ?? 'es2';
      return { path: specPath(spec), message: `${spec}: ${d.message} (at ${d.path})` };
    }));
  }
}
