// CPU sets in libvirt syntax (`0-3,^2,8`). Inside es2 a CPU set is a sorted array of unique CPU
// numbers; strings exist only at the edges, read by one strict parser that names the bad part.
import { validationFailed } from '../errors/index.js';

/** libvirt's cpuset bitmaps hold CPUs 0..4095 (VIR_DOMAIN_CPUMASK_LEN). */
export const MAX_CPU = 4095;

const NUMBER = /^(0|[1-9][0-9]*)$/;

function cpuNumber(text: string, part: string, whole: string, path: string): number {
  if (!NUMBER.test(text)) {
    throw cpusetError(whole, `"${part}" is not a CPU number or range`, path);
  }
  const cpu = Number(text);
  if (cpu > MAX_CPU) throw cpusetError(whole, `CPU ${cpu} in "${part}" is above ${MAX_CPU}`, path);
  return cpu;
}

function cpusetError(whole: string, why: string, path: string): Error {
  const message = `invalid cpuset "${whole}": ${why}`;
  return validationFailed(message, [{ path, message }]);
}

/**
 * Parses libvirt cpuset syntax: comma-separated CPUs (`3`), ranges (`1-4`) and exclusions (`^2`).
 * Strict: no spaces, no empty parts, no reversed ranges, no set of exclusions only, no empty result.
 * @param path where the string came from (JSON pointer or XML location), for the error details.
 * @throws Es2Error VALIDATION_FAILED naming the offending part.
 */
export function parseCpuset(text: string, path = ''): number[] {
  if (text.length === 0) throw cpusetError(text, 'it is empty', path);
  const included = new Set<number>();
  const excluded = new Set<number>();
  let inclusions = 0;
  for (const part of text.split(',')) {
    if (part.length === 0) throw cpusetError(text, 'it has an empty part (two commas, or one at an end)', path);
    if (part.startsWith('^')) {
      excluded.add(cpuNumber(part.slice(1), part, text, path));
      continue;
    }
    inclusions++;
    const dash = part.indexOf('-');
    if (dash < 0) {
      included.add(cpuNumber(part, part, text, path));
      continue;
    }
    const first = cpuNumber(part.slice(0, dash), part, text, path);
    const last = cpuNumber(part.slice(dash + 1), part, text, path);
    if (first > last) throw cpusetError(text, `range "${part}" is reversed`, path);
    for (let cpu = first; cpu <= last; cpu++) included.add(cpu);
  }
  if (inclusions === 0) throw cpusetError(text, 'it only excludes CPUs', path);
  const cpus = [...included].filter((cpu) => !excluded.has(cpu)).sort((a, b) => a - b);
  if (cpus.length === 0) throw cpusetError(text, 'it selects no CPU', path);
  return cpus;
}

/** CPUs for a message: their cpuset form, or `none` (a cpuPool can leave es2 no CPU at all). */
export function describeCpus(cpus: Iterable<number>): string {
  const list = [...cpus];
  return list.length === 0 ? 'none' : formatCpuset(list);
}

/** Formats CPUs as libvirt does: ascending, runs of two or more as ranges (`0-3,5,7-8`). */
export function formatCpuset(cpus: Iterable<number>): string {
  const sorted = [...new Set(cpus)].sort((a, b) => a - b);
  if (sorted.length === 0) throw new RangeError('an empty CPU set has no cpuset form');
  const parts: string[] = [];
  let start = sorted[0] as number;
  let prev = start;
  for (const cpu of [...sorted.slice(1), Number.NaN]) {
    if (cpu === prev + 1) {
      prev = cpu;
      continue;
    }
    parts.push(start === prev ? `${start}` : `${start}-${prev}`);
    start = cpu;
    prev = cpu;
  }
  return parts.join(',');
}

/** True when both sets hold the same CPUs. */
export function sameCpus(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((cpu, i) => cpu === b[i]);
}
