// `es2ctl xml apply|remove|plan`: the domain-XML engine offline, on a file or stdin, no daemon.
// The policy file (JSON or YAML) is merged over the domain's Nova flavor extra specs, as es2d merges
// an API policy.
import { cpus as osCpus } from 'node:os';

import type { Command } from 'commander';

import { formatCpuset, parseCpuset } from '../policy/cpuset.js';
import type { HostFacts } from '../policy/host-facts.js';
import { mergePolicy } from '../policy/merge.js';
import type { LiveOp, Plan } from '../policy/plan.js';
import type { EffectivePolicy } from '../policy/types.js';
import { validatePolicy } from '../policy/validate.js';
import { apply, remove } from '../xml/engine.js';
import { readNovaInstance } from '../xml/nova.js';
import { readInputText, readPolicyDocument } from './input.js';
import { UsageError } from './usage.js';

interface HostOptions {
  hostCpus?: string;
  libvirtVersion: string;
  es2Kernel: boolean;
  postedInterrupts: string;
  haltPollKnob: boolean;
}

interface ApplyOptions extends HostOptions {
  policy: string;
}

/** Removal only needs host facts for live operations, which `xml remove` does not print. */
const REMOVE_HOST: HostOptions = { libvirtVersion: '9.0.0', es2Kernel: false, postedInterrupts: 'unknown', haltPollKnob: true };

const POSTED_INTERRUPTS: Record<string, boolean | null> = { yes: true, no: false, unknown: null };

function withHostOptions(cmd: Command): Command {
  return cmd
    .option('--host-cpus <list>', "host CPUs, cpuset syntax (default: this machine's CPUs)")
    .option('--libvirt-version <X.Y.Z>', 'libvirt version of the target host', '9.0.0')
    .option('--es2-kernel', 'the host has the ES2 kernel interface', false)
    .option('--posted-interrupts <yes|no|unknown>', 'whether the host has posted interrupts', 'unknown')
    .option('--no-halt-poll-knob', 'kvm.halt_poll_ns cannot be written on the host');
}

function hostFacts(opts: HostOptions): HostFacts {
  let cpus: number[];
  try {
    cpus = opts.hostCpus === undefined ? osCpus().map((_, i) => i) : parseCpuset(opts.hostCpus);
  } catch (err) {
    throw new UsageError(`--host-cpus: ${(err as Error).message}`);
  }
  const version = /^(\d+)\.(\d+)\.(\d+)$/.exec(opts.libvirtVersion);
  if (version === null) throw new UsageError(`--libvirt-version expects X.Y.Z, got ${JSON.stringify(opts.libvirtVersion)}`);
  const postedInterrupts = POSTED_INTERRUPTS[opts.postedInterrupts];
  if (postedInterrupts === undefined) {
    throw new UsageError(`--posted-interrupts expects yes, no or unknown, got ${JSON.stringify(opts.postedInterrupts)}`);
  }
  const [, major, minor, micro] = version.map(Number) as [number, number, number, number];
  return {
    cpus,
    libvirtVersion: major * 1_000_000 + minor * 1_000 + micro,
    es2Kernel: opts.es2Kernel,
    postedInterrupts,
    haltPollKnob: opts.haltPollKnob,
  };
}

async function effectivePolicy(policyFile: string, domainXml: string): Promise<EffectivePolicy> {
  const merged = mergePolicy({ api: validatePolicy(await readPolicyDocument(policyFile)), flavor: readNovaInstance(domainXml)?.flavor ?? null });
  // An API layer is always there, so the merge always has a result.
  return merged as EffectivePolicy;
}

function reportUnapplied(plan: Plan): void {
  for (const n of plan.notApplicable) process.stderr.write(`es2ctl: not applied: ${n.setting}: ${n.reason}\n`);
  for (const w of plan.warnings) process.stderr.write(`es2ctl: warning: ${w}\n`);
}

function describeOp(op: LiveOp): string {
  const { op: name, ...args } = op;
  const text = Object.entries(args)
    .filter(([key]) => key !== 'xml')
    .map(([key, value]) => `${key}=${Array.isArray(value) ? formatCpuset(value as number[]) : String(value)}`);
  return [name, ...text].join(' ');
}

function planTable(effective: EffectivePolicy, plan: Plan): string {
  const lines: string[] = [];
  const section = (title: string, items: string[]): void => {
    lines.push(`${title}:`);
    lines.push(...(items.length === 0 ? ['  (none)'] : items.map((item) => `  ${item}`)));
  };
  const vcpus = effective.policy.vcpus ?? [];
  section('policy sources', Object.entries(effective.sources).map(([field, source]) =>
    `${field}: ${Array.isArray(source) ? source.map((s, i) => `vCPU ${vcpus[i]?.vcpu} ${s}`).join(', ') : String(source)}`));
  section('live operations, in order', plan.live.map((op, i) => `${i + 1}. ${describeOp(op)}`));
  section('persistent changes', plan.persistent.map((c) =>
    `${c.action} ${c.path}${c.before === undefined ? '' : ` from ${c.before}`}${c.after === undefined ? '' : ` to ${c.after}`}`));
  section('host knobs', plan.hostKnobs.map((k) => `${k.knob} = ${k.value}`));
  section('ES2 kernel interface', plan.es2Kernel === null ? [] : [JSON.stringify(plan.es2Kernel)]);
  section('requested but cannot act here', plan.notApplicable.map((n) => `${n.setting}: ${n.reason}`));
  section('warnings', plan.warnings);
  lines.push(`noop: ${plan.noop ? 'yes' : 'no'}`);
  return lines.join('\n') + '\n';
}

function outputFormat(cmd: Command): 'table' | 'json' {
  const format = (cmd.optsWithGlobals() as { output?: string }).output ?? 'table';
  if (format !== 'table' && format !== 'json') throw new UsageError(`-o expects table or json, got ${JSON.stringify(format)}`);
  return format;
}

function withNewline(xml: string): string {
  return xml.endsWith('\n') ? xml : xml + '\n';
}

export function registerXmlCommands(program: Command): void {
  const xml = program.command('xml').description('transform libvirt domain XML offline (no daemon); XML from a file or stdin (-)')
    .addHelpText('after', '\nExample:\n  $ es2ctl xml plan --policy policy.json domain.xml\n');

  withHostOptions(xml.command('apply')
    .description('apply a policy to a domain XML and print the new XML (settings that cannot act here go to stderr)')
    .requiredOption('--policy <file>', 'policy file, JSON or YAML (merged over the flavor extra specs es2:*)')
    .argument('[xmlfile]', 'domain XML file, - for stdin', '-')
    .addHelpText('after', '\nExample:\n  $ virsh dumpxml instance-00000031 | es2ctl xml apply --policy policy.json --host-cpus 0-15 -\n'))
    .action(async (file: string, opts: ApplyOptions) => {
      const host = hostFacts(opts);
      const domainXml = await readInputText(file);
      const { policy } = await effectivePolicy(opts.policy, domainXml);
      const result = apply(domainXml, policy, host);
      reportUnapplied(result.plan);
      process.stdout.write(withNewline(result.xml));
    });

  withHostOptions(xml.command('plan')
    .description('show what applying a policy would do: live operations, persistent changes, host knobs, what cannot act here')
    .requiredOption('--policy <file>', 'policy file, JSON or YAML (merged over the flavor extra specs es2:*)')
    .argument('[xmlfile]', 'domain XML file, - for stdin', '-')
    .addHelpText('after', '\nExample:\n  $ es2ctl -o json xml plan --policy policy.yaml --libvirt-version 9.0.0 domain.xml\n'))
    .action(async (file: string, opts: ApplyOptions, cmd: Command) => {
      const format = outputFormat(cmd);
      const host = hostFacts(opts);
      const domainXml = await readInputText(file);
      const effective = await effectivePolicy(opts.policy, domainXml);
      const { plan } = apply(domainXml, effective.policy, host);
      process.stdout.write(format === 'json' ? JSON.stringify({ policy: effective, plan }, null, 2) + '\n' : planTable(effective, plan));
    });

  xml.command('remove')
    .description('print the domain XML as it was before es2')
    .argument('[xmlfile]', 'domain XML file, - for stdin', '-')
    .addHelpText('after', '\nExample:\n  $ es2ctl xml remove applied.xml > original.xml\n')
    .action(async (file: string) => {
      const domainXml = await readInputText(file);
      process.stdout.write(withNewline(remove(domainXml, hostFacts(REMOVE_HOST)).xml));
    });
}
