// src/xml: the pure domain-XML engine (mechanism; the decisions come from src/policy).
export { apply, livePlan, plan, remove, type EngineResult } from './engine.js';
export { ES2_METADATA_KEY, ES2_NS, ES2_PREFIX, es2MetadataXml, readRecordedPolicy } from './metadata.js';
export { NOVA_NS, readNovaInstance, type NovaIdentity, type NovaInstance } from './nova.js';
export { hostCpusFromCapabilities } from './capabilities.js';
