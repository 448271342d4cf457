// The policy flags of `es2ctl enable` and `es2ctl plan`, or `--policy FILE`. Flag structure
// (`VCPU=VALUE`, whole numbers, one source of policy) is checked while parsing and fails as a
// usage error; the values themselves go through validatePolicy, so a bad cpuset or label fails
// as VALIDATION_FAILED with the JSON path it would have in the API body, before any request.

import { InvalidArgumentError, Option, type Command } from 'commander';

import { validationFailed } from '../errors/index.js';
import type { HybridIo, InterruptRedirection, Policy, VcpuPolicy } from '../policy/types.js';
import { validatePolicy } from '../policy/validate.js';
import { readPolicyDocument } from './input.js';
import { UsageError } from './usage.js';

export interface PolicyFlags {
  policy?: string;
  pin?: Map<number, string>;
  label?: Map<number, string>;
  iothreads?: number;
  iothreadCpuset?: string;
  pollMaxNs?: number;
  pollGrow?: number;
  pollShrink?: number;
  kickRateThreshold?: number;
  idleTimeoutUs?: number;
  redirect?: InterruptRedirection['mode'];
  redirectLabel?: string;
  postedInterrupts?: Policy['postedInterrupts'];
  haltPollNs?: number;
}

/** Flag name → the option key commander stores it under; `--policy` conflicts with all of them. */
const POLICY_FLAGS: Record<string, keyof PolicyFlags> = {
  '--pin': 'pin', '--label': 'label', '--iothreads': 'iothreads', '--iothread-cpuset': 'iothreadCpuset',
  '--poll-max-ns': 'pollMaxNs', '--poll-grow': 'pollGrow', '--poll-shrink': 'pollShrink',
  '--kick-rate-threshold': 'kickRateThreshold', '--idle-timeout-us': 'idleTimeoutUs', '--redirect': 'redirect',
  '--redirect-label': 'redirectLabel', '--posted-interrupts': 'postedInterrupts', '--halt-poll-ns': 'haltPollNs',
};

const ENTRY = /^(0|[1-9][0-9]*)=(.+)$/;
/** A part after a comma that continues the previous cpuset (`0=1-4,^2`), not a new `VCPU=` entry. */
const CPUSET_PART = /^\^?\d+(-\d+)?$/;

function wholeNumber(value: string): number {
  if (!/^(0|[1-9][0-9]*)$/.test(value)) throw new InvalidArgumentError('expects a whole number.');
  return Number(value);
}

/**
 * Reads `VCPU=VALUE[,VCPU=VALUE...]`, adding to what earlier uses of the flag gave.
 * @param cpusets values are cpusets, whose own commas continue the value (`0=1-4,^2,1=5`).
 */
export function parseVcpuMap(text: string, previous: Map<number, string> | undefined, cpusets: boolean): Map<number, string> {
  const map = new Map(previous);
  const expected = cpusets ? 'VCPU=CPUSET[,VCPU=CPUSET...], e.g. 0=2,1=3-4' : 'VCPU=LABEL[,VCPU=LABEL...], e.g. 0=io,1=compute';
  let last: number | undefined;
  for (const part of text.split(',')) {
    const entry = ENTRY.exec(part);
    if (entry !== null) {
      last = Number(entry[1]);
      if (map.has(last)) throw new InvalidArgumentError(`vCPU ${last} is given twice.`);
      map.set(last, entry[2]!);
    } else if (cpusets && last !== undefined && CPUSET_PART.test(part)) {
      map.set(last, `${map.get(last)!},${part}`);
    } else {
      throw new InvalidArgumentError(`expects ${expected}; "${part}" is not VCPU=${cpusets ? 'CPUSET' : 'LABEL'}.`);
    }
  }
  return map;
}

/** Adds the policy flags (and `--policy FILE`) to `enable` or `plan`. */
export function addPolicyFlags(cmd: Command): Command {
  return cmd
    .addOption(new Option('--policy <file>', 'the whole policy from a JSON or YAML file (- for stdin); not with the flags below'))
    .addOption(new Option('--pin <vcpu=cpuset,...>', 'pin vCPUs to host CPUs, e.g. 0=2,1=3-4 (repeatable)')
      .argParser((v: string, prev?: Map<number, string>) => parseVcpuMap(v, prev, true)))
    .addOption(new Option('--label <vcpu=label,...>', 'label vCPUs, e.g. 0=io,1=compute (repeatable)')
      .argParser((v: string, prev?: Map<number, string>) => parseVcpuMap(v, prev, false)))
    .addOption(new Option('--iothreads <n>', 'IOThreads for the virtio disks').argParser(wholeNumber))
    .addOption(new Option('--iothread-cpuset <cpuset>', 'host CPUs for the IOThreads'))
    .addOption(new Option('--poll-max-ns <n>', 'IOThread adaptive polling ceiling (poll-max-ns)').argParser(wholeNumber))
    .addOption(new Option('--poll-grow <n>', 'IOThread poll-grow').argParser(wholeNumber))
    .addOption(new Option('--poll-shrink <n>', 'IOThread poll-shrink').argParser(wholeNumber))
    .addOption(new Option('--kick-rate-threshold <n>', 'kicks/s above which the back end polls (ES2 kernel)').argParser(wholeNumber))
    .addOption(new Option('--idle-timeout-us <n>', 'idle time before polling stops (ES2 kernel)').argParser(wholeNumber))
    .addOption(new Option('--redirect <mode>', 'interrupt redirection (ES2 kernel)').choices(['off', 'running', 'labeled']))
    .addOption(new Option('--redirect-label <label>', 'vCPU label that receives redirected interrupts (implies --redirect labeled)'))
    .addOption(new Option('--posted-interrupts <need>', 'posted interrupts: required refuses a host without').choices(['required', 'preferred']))
    .addOption(new Option('--halt-poll-ns <n>', 'KVM halt polling in ns (per VM with the ES2 kernel, else the host knob)').argParser(wholeNumber));
}

function definedFields<T extends object>(fields: T): T | undefined {
  const kept = Object.fromEntries(Object.entries(fields).filter(([, v]) => v !== undefined)) as T;
  return Object.keys(kept).length === 0 ? undefined : kept;
}

function vcpusFrom(flags: PolicyFlags): VcpuPolicy[] | undefined {
  const indexes = [...new Set([...(flags.pin?.keys() ?? []), ...(flags.label?.keys() ?? [])])].sort((a, b) => a - b);
  if (indexes.length === 0) return undefined;
  return indexes.map((vcpu) => definedFields({ vcpu, cpuset: flags.pin?.get(vcpu), label: flags.label?.get(vcpu) })!);
}

function redirectionFrom(flags: PolicyFlags): InterruptRedirection | undefined {
  if (flags.redirectLabel === undefined) return flags.redirect === undefined ? undefined : { mode: flags.redirect };
  const mode = flags.redirect ?? 'labeled';
  if (mode !== 'labeled') throw new UsageError(`--redirect-label goes with --redirect labeled, not --redirect ${mode}`);
  return { mode, targetLabel: flags.redirectLabel };
}

/**
 * The policy the flags describe, `enabled: true`, validated.
 * @throws UsageError for conflicting flags; Es2Error VALIDATION_FAILED for values the policy refuses.
 */
export function policyFromFlags(flags: PolicyFlags): Policy {
  const hybridIo = definedFields<HybridIo>({
    iothreads: flags.iothreads, iothreadCpuset: flags.iothreadCpuset, pollMaxNs: flags.pollMaxNs,
    pollGrow: flags.pollGrow, pollShrink: flags.pollShrink, kickRateThreshold: flags.kickRateThreshold,
    idleTimeoutUs: flags.idleTimeoutUs,
  });
  const policy = definedFields<Policy>({
    enabled: true, vcpus: vcpusFrom(flags), hybridIo, interruptRedirection: redirectionFrom(flags),
    postedInterrupts: flags.postedInterrupts, haltPollNs: flags.haltPollNs,
  })!;
  return validatePolicy(policy);
}

/**
 * A file's text, or stdin's for `-`. An unreadable file is refused like bad content
 * (VALIDATION_FAILED naming the file), as `es2ctl xml` refuses its inputs.
 */
/**
 * A policy file, validated. `enabled` may be left out (it means true); `enable` refuses
 * `enabled: false` because storing a disabled policy is not what the command says.
 */
export async function policyFromFile(file: string, command: 'enable' | 'plan'): Promise<Policy> {
  let parsed = await readPolicyDocument(file);
  if (typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed) && !('enabled' in parsed)) {
    parsed = { enabled: true, ...parsed };
  }
  const policy = validatePolicy(parsed);
  if (command === 'enable' && !policy.enabled) {
    throw validationFailed(`${file} says enabled: false; es2ctl enable stores enabled policies only`, [
      { path: '/enabled', message: 'must be true for es2ctl enable (es2ctl disable removes the policy)' },
    ]);
  }
  return policy;
}

/** The policy of `enable` or `plan`: from `--policy FILE` or from the flags, never both. */
export async function policyFromOptions(flags: PolicyFlags, command: 'enable' | 'plan'): Promise<Policy> {
  const given = Object.entries(POLICY_FLAGS).filter(([, key]) => flags[key] !== undefined).map(([flag]) => flag);
  if (flags.policy === undefined) return policyFromFlags(flags);
  if (given.length > 0) throw new UsageError(`--policy cannot be combined with policy flags (${given.join(', ')})`);
  return policyFromFile(flags.policy, command);
}
