// Policy validation: the schema from openapi/es2.yaml first (types, ranges, unknown fields, label
// syntax), then what a schema cannot say (cpuset syntax, duplicate vCPUs, a redirection target
// label that no vCPU carries). Checks against a particular domain and host live in decide.ts.
import { type ErrorDetail, isEs2Error, validationFailed } from '../errors/index.js';
import { parseCpuset } from './cpuset.js';
import { schemaErrorDetails, schemaValidator } from './schema.js';
import type { Policy, PolicyLayer } from './types.js';

/** Throws VALIDATION_FAILED carrying every detail, the first one named in the message. */
export function failValidation(what: string, details: ErrorDetail[]): never {
  const first = details[0];
  const where = first === undefined || first.path === '' ? '' : ` at ${first.path}`;
  throw validationFailed(`invalid ${what}${where}: ${first?.message ?? 'invalid'}`, details);
}

function cpusetDetails(layer: PolicyLayer, prefix: string): ErrorDetail[] {
  const found: { cpuset: string; path: string }[] = [];
  layer.vcpus?.forEach((entry, i) => {
    if (entry.cpuset !== undefined) found.push({ cpuset: entry.cpuset, path: `${prefix}/vcpus/${i}/cpuset` });
  });
  if (layer.hybridIo?.iothreadCpuset !== undefined) {
    found.push({ cpuset: layer.hybridIo.iothreadCpuset, path: `${prefix}/hybridIo/iothreadCpuset` });
  }
  const details: ErrorDetail[] = [];
  for (const { cpuset, path } of found) {
    try {
      parseCpuset(cpuset, path);
    } catch (err) {
      if (!isEs2Error(err)) throw err;
      details.push(...err.details);
    }
  }
  return details;
}

function duplicateVcpuDetails(layer: PolicyLayer, prefix: string): ErrorDetail[] {
  const seen = new Set<number>();
  const details: ErrorDetail[] = [];
  layer.vcpus?.forEach((entry, i) => {
    if (seen.has(entry.vcpu)) {
      details.push({ path: `${prefix}/vcpus/${i}/vcpu`, message: `vCPU ${entry.vcpu} is named more than once` });
    }
    seen.add(entry.vcpu);
  });
  return details;
}

function targetLabelDetails(policy: PolicyLayer, prefix: string): ErrorDetail[] {
  const target = policy.interruptRedirection?.targetLabel;
  if (target === undefined || policy.interruptRedirection?.mode !== 'labeled') return [];
  if (policy.vcpus?.some((entry) => entry.label === target)) return [];
  return [{ path: `${prefix}/interruptRedirection/targetLabel`, message: `no vCPU carries the label "${target}"` }];
}

function validate(schema: 'Policy' | 'PolicyLayer', input: unknown, prefix: string): PolicyLayer {
  const check = schemaValidator(schema);
  if (!check(input)) failValidation('policy', schemaErrorDetails(check.errors, prefix));
  const layer = structuredClone(input) as PolicyLayer;
  const details = [...cpusetDetails(layer, prefix), ...duplicateVcpuDetails(layer, prefix)];
  if (schema === 'Policy') details.push(...targetLabelDetails(layer, prefix));
  if (details.length > 0) failValidation('policy', details);
  return layer;
}

/**
 * Validates a complete policy (API body, policy file, recorded metadata).
 * @param prefix JSON pointer of the policy inside a larger document, for error paths.
 * @throws Es2Error VALIDATION_FAILED with one detail per problem, paths as JSON pointers.
 */
export function validatePolicy(input: unknown, prefix = ''): Policy {
  return validate('Policy', input, prefix) as Policy;
}

/**
 * Validates what one source contributes (config rule, translated flavor extra specs): every field
 * optional. Whether a redirection target label is carried is checked on the merged policy.
 * @throws Es2Error VALIDATION_FAILED.
 */
export function validatePolicyLayer(input: unknown, prefix = ''): PolicyLayer {
  return validate('PolicyLayer', input, prefix);
}
