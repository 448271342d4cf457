// Capture files for offline analysis (DESIGN.md, "Savings"): blocks of `@ <unix seconds>` followed
// by the verbatim output of `virsh domstats --raw`, i.e. `Domain: 'NAME'` and indented
// `key=value` lines. Captures carry names but no UUIDs, so domains are keyed by name.

import { validationFailed, type Es2Error } from '../errors/index.js';
import { isCounterKey, sampleFromStats, type DomainSample } from './counters.js';

export interface CaptureRecord {
  name: string;
  /** 1-based line of the `Domain:` header. */
  line: number;
  /** Values as printed; counters are checked to be integers. */
  stats: Record<string, string>;
}

export interface CaptureBlock {
  /** Unix seconds from the `@` line. */
  time: number;
  /** 1-based line of the `@` line. */
  line: number;
  records: CaptureRecord[];
}

export interface Capture {
  file: string;
  blocks: CaptureBlock[];
}

const TIME_LINE = /^@\s*(.*)$/;
const TIME_VALUE = /^\d+(?:\.\d+)?$/;
const DOMAIN_LINE = /^Domain:\s*'(.*)'$/;
const STAT_LINE = /^\s*([^\s=]+)=(.*)$/;
const COUNTER_VALUE = /^\d+$/;

/**
 * Parses a capture. Tolerates CRLF, trailing whitespace, a missing final blank line, any stats
 * groups in any order and domains that come and go. Throws VALIDATION_FAILED with a detail whose
 * path is `FILE:LINE` for anything else.
 */
export function parseCapture(text: string, file: string): Capture {
  const bad = (line: number, message: string): Es2Error =>
    validationFailed(`malformed capture ${file}: ${message}`, [{ path: `${file}:${line}`, message }]);
  const blocks: CaptureBlock[] = [];
  let block: CaptureBlock | undefined;
  let record: CaptureRecord | undefined;
  // Domains of the current block by name, with their header line.
  const seen = new Map<string, number>();
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const lineNo = i + 1;
    const line = (lines[i] as string).trimEnd();
    if (line === '') continue;

    const time = TIME_LINE.exec(line);
    if (time !== null) {
      const value = time[1] as string;
      if (!TIME_VALUE.test(value)) throw bad(lineNo, `timestamp ${JSON.stringify(value)} is not unix seconds`);
      const t = Number(value);
      if (block !== undefined && t < block.time) {
        throw bad(lineNo, `time goes backwards: ${value} after ${block.time} (line ${block.line})`);
      }
      block = { time: t, line: lineNo, records: [] };
      blocks.push(block);
      record = undefined;
      seen.clear();
      continue;
    }
    if (block === undefined) throw bad(lineNo, 'stats before the first `@ <unix seconds>` line');

    const domain = DOMAIN_LINE.exec(line);
    if (domain !== null) {
      const name = domain[1] as string;
      const earlier = seen.get(name);
      if (earlier !== undefined) {
        throw bad(lineNo, `domain '${name}' appears twice in the block of line ${block.line} (first at line ${earlier})`);
      }
      seen.set(name, lineNo);
      record = { name, line: lineNo, stats: Object.create(null) as Record<string, string> };
      block.records.push(record);
      continue;
    }

    const stat = STAT_LINE.exec(line);
    if (stat === null) throw bad(lineNo, `not a stats line: ${JSON.stringify(line)}`);
    const key = stat[1] as string;
    const value = stat[2] as string;
    if (record === undefined) throw bad(lineNo, `${key}= before any "Domain: 'NAME'" line in this block`);
    if (isCounterKey(key) && !COUNTER_VALUE.test(value)) {
      throw bad(lineNo, `${key} must be a non-negative integer, got ${JSON.stringify(value)}`);
    }
    record.stats[key] = value;
  }
  if (blocks.length === 0) throw bad(1, 'no `@ <unix seconds>` block');
  return { file, blocks };
}

/** Every domain's samples in time order, keyed by name in order of first appearance. */
export function captureSamples(capture: Capture): Map<string, DomainSample[]> {
  const byName = new Map<string, DomainSample[]>();
  for (const block of capture.blocks) {
    for (const r of block.records) {
      const sample = sampleFromStats(r.name, undefined, r.stats, block.time);
      const list = byName.get(r.name);
      if (list === undefined) byName.set(r.name, [sample]);
      else list.push(sample);
    }
  }
  return byName;
}
