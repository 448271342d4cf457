// The policy types, named. They are generated from openapi/es2.yaml (schema.gen.ts), never
// written by hand, so the validator and the types cannot drift apart.
import type { components } from './schema.gen.js';

type Schemas = components['schemas'];

/** A complete policy (`enabled` required): what the API stores and the domain metadata records. */
export type Policy = Schemas['Policy'];
/** The fields one source contributes before merging, each optional. */
export type PolicyLayer = Schemas['PolicyLayer'];
export type VcpuPolicy = Schemas['VcpuPolicy'];
export type HybridIo = Schemas['HybridIo'];
export type InterruptRedirection = Schemas['InterruptRedirection'];
export type PolicySource = Schemas['PolicySource'];
/** The merged policy and, per top-level field and per vCPU entry, where it came from. */
export type EffectivePolicy = Schemas['EffectivePolicy'];
