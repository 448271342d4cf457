// src/policy: the ES2 policy model and every decision about it (the XML engine only writes them).
export { MAX_CPU, formatCpuset, parseCpuset, sameCpus } from './cpuset.js';
export { NEEDS_ES2_KERNEL, QEMU_IOTHREAD_POLL_DEFAULTS, checkPolicyFits, decideLayout, type DomainShape, type Layout, type PollParams } from './decide.js';
export { EXTRA_SPECS, policyFromExtraSpecs } from './extra-specs.js';
export type { HostFacts } from './host-facts.js';
export { LIBVIRT_IOTHREAD_POLL_XML } from './host-facts.js';
export { matchFlavorRule, mergePolicy, type FlavorRule, type PolicyInputs } from './merge.js';
export type { Es2KernelSettings, KnobChange, LiveOp, NotApplicable, Plan, XmlChange } from './plan.js';
export { openApiDocument, schemaErrorDetails, schemaValidator } from './schema.js';
export type { EffectivePolicy, HybridIo, InterruptRedirection, Policy, PolicyLayer, PolicySource, VcpuPolicy } from './types.js';
export { validatePolicy, validatePolicyLayer } from './validate.js';
export { fitPolicyToHost, type FittedPolicy } from './fit.js';
