// Stats: the bulk stats cycle, exit and I/O op counters, and capture files.
export * from './capture.js';
export * from './collector.js';
export * from './counters.js';
