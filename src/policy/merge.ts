// Merging of policy sources, strongest first: the API policy (stored by domain UUID), the Nova
// flavor extra specs `es2:*`, then the first es2d config rule whose flavor pattern matches. A
// top-level field comes whole from the strongest source that sets it; vCPU entries are merged one
// by one (by vCPU index). The result names the source of every part.
import { policyFromExtraSpecs } from './extra-specs.js';
import type { EffectivePolicy, Policy, PolicyLayer, PolicySource, VcpuPolicy } from './types.js';
import { validatePolicy, validatePolicyLayer } from './validate.js';

/** An es2d config rule: a flavor name, exact or a glob with `*`, and the policy for it. */
export interface FlavorRule {
  flavor: string;
  policy: unknown;
}

export interface PolicyInputs {
  /** The API policy of the domain, already validated when stored; null or absent when none. */
  api?: PolicyLayer | null;
  /** The domain's Nova flavor (see readNovaInstance in src/xml), if it has one. */
  flavor?: { name?: string; extraSpecs: Readonly<Record<string, string>> } | null;
  /** es2d config rules, in file order. */
  rules?: readonly FlavorRule[];
}

function globMatches(pattern: string, name: string): boolean {
  const escaped = pattern.split('*').map((part) => part.replace(/[.+?^${}()|[\]\\]/g, '\\$&'));
  return new RegExp(`^${escaped.join('.*')}$`).test(name);
}

/** The policy layer of the first rule that matches the flavor name, validated; null when none does. */
export function matchFlavorRule(rules: readonly FlavorRule[], flavorName: string | undefined): PolicyLayer | null {
  if (flavorName === undefined) return null;
  const index = rules.findIndex((rule) => globMatches(rule.flavor, flavorName));
  if (index < 0) return null;
  return validatePolicyLayer((rules[index] as FlavorRule).policy, `/rules/${index}/policy`);
}

const WHOLE_FIELDS = ['hybridIo', 'interruptRedirection', 'postedInterrupts', 'haltPollNs'] as const;

/**
 * The effective policy of a domain, or null when no source says anything about it. `enabled`
 * defaults to false (source `default`) when only other fields are set.
 * @throws Es2Error VALIDATION_FAILED: bad extra specs (naming the spec), a bad matched config rule
 * (path under `/rules/N/policy`), or a merged policy that does not hold together (for example a
 * redirection target label from one source that no vCPU of the merge carries).
 */
export function mergePolicy(inputs: PolicyInputs): EffectivePolicy | null {
  const layers: { source: PolicySource; layer: PolicyLayer }[] = [];
  if (inputs.api) layers.push({ source: 'api', layer: inputs.api });
  const fromFlavor = inputs.flavor ? policyFromExtraSpecs(inputs.flavor.extraSpecs) : null;
  if (fromFlavor) layers.push({ source: 'flavor', layer: fromFlavor });
  const fromRule = matchFlavorRule(inputs.rules ?? [], inputs.flavor?.name);
  if (fromRule) layers.push({ source: 'config', layer: fromRule });
  if (layers.length === 0) return null;

  const enabledFrom = layers.find(({ layer }) => layer.enabled !== undefined);
  const merged: Record<string, unknown> = { enabled: enabledFrom?.layer.enabled ?? false };
  const sources: EffectivePolicy['sources'] = { enabled: enabledFrom?.source ?? 'default' };

  const vcpus = new Map<number, { entry: VcpuPolicy; source: PolicySource }>();
  for (const { source, layer } of layers) {
    for (const entry of layer.vcpus ?? []) {
      if (!vcpus.has(entry.vcpu)) vcpus.set(entry.vcpu, { entry, source });
    }
  }
  if (vcpus.size > 0) {
    const ordered = [...vcpus.values()].sort((a, b) => a.entry.vcpu - b.entry.vcpu);
    merged.vcpus = ordered.map(({ entry }) => entry);
    sources.vcpus = ordered.map(({ source }) => source);
  }
  for (const field of WHOLE_FIELDS) {
    const from = layers.find(({ layer }) => layer[field] !== undefined);
    if (from === undefined) continue;
    merged[field] = from.layer[field];
    sources[field] = from.source;
  }
  const policy: Policy = validatePolicy(merged);
  return { policy, sources };
}
