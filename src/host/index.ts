export * from './es2-kernel.js';
export * from './files.js';
export * from './knobs.js';
export * from './paths.js';
export * from './probe.js';
export * from './provider-config.js';
