// Savings: baseline against the current window per exit reason, and the EHT estimate. Pure.
export * from './costs.js';
export * from './report.js';
export * from './window.js';
