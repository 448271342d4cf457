// What the online commands of es2ctl share: the client built from the global options, the output
// format, the JSON/table switch, help examples, and the readable forms of a plan and a policy.
import type { Command } from 'commander';

import { formatCpuset } from '../policy/cpuset.js';
import type { components } from '../policy/schema.gen.js';
import type { EffectivePolicy, Policy } from '../policy/types.js';
import { Client } from './client.js';
import { formatList } from './table.js';
import { UsageError } from './usage.js';

export type Schemas = components['schemas'];
export type Plan = Schemas['Plan'];

interface GlobalOptions {
  endpoint: string;
  tokenFile?: string;
  output?: string;
}

export type OutputFormat = 'table' | 'json';

/** `-o`, checked before any request so a typo is a usage error and not a half-done command. */
export function outputFormat(cmd: Command): OutputFormat {
  const format = cmd.optsWithGlobals<GlobalOptions>().output ?? 'table';
  if (format !== 'table' && format !== 'json') throw new UsageError(`-o expects table or json, got ${JSON.stringify(format)}`);
  return format;
}

export function clientFor(cmd: Command): Client {
  const { endpoint, tokenFile } = cmd.optsWithGlobals<GlobalOptions>();
  return new Client({ endpoint, ...(tokenFile === undefined ? {} : { tokenFile }) });
}

/** The API path segment for a domain UUID or name. */
export function domainPath(ref: string, rest = ''): string {
  return `/v1/domains/${encodeURIComponent(ref)}${rest}`;
}

/** `-o json` prints exactly the API's body; the table form is whatever `render` makes of it. */
export function emit<T>(format: OutputFormat, body: T, render: (body: T) => string): void {
  process.stdout.write(format === 'json' ? `${JSON.stringify(body, null, 2)}\n` : render(body));
}

/** Help ends with at least one runnable example. */
export function withExamples(cmd: Command, ...examples: string[]): Command {
  return cmd.addHelpText('after', `\nExample:\n${examples.map((e) => `  $ ${e}\n`).join('')}`);
}

function describeOp(op: Schemas['LiveOp']): string {
  // The metadata XML is the recorded policy again, shown by `show`; here it would only be noise.
  const args = Object.entries(op).filter(([key]) => key !== 'op' && key !== 'xml')
    .map(([key, value]) => `${key}=${Array.isArray(value) ? formatCpuset(value as number[]) : String(value)}`);
  return [op.op, ...args].join(' ');
}

function describeChange(change: Plan['persistent'][number]): string {
  const before = change.before === undefined ? '' : ` (was ${change.before})`;
  const after = change.after === undefined ? '' : ` = ${change.after}`;
  return `${change.action} ${change.path}${after}${before}`;
}

function describeEs2Kernel(settings: NonNullable<Plan['es2Kernel']>): string[] {
  return Object.entries(settings).map(([key, value]) =>
    `${key} = ${Array.isArray(value) ? formatCpuset(value as number[]) : String(value)}`);
}

/** Every part of a plan, empty parts included, so "nothing" is visibly nothing. */
export function formatPlan(plan: Plan): string {
  return [
    formatList('live operations, in order', plan.live.map((op, i) => `${i + 1}. ${describeOp(op)}`)),
    formatList('persistent changes', plan.persistent.map(describeChange)),
    formatList('host knobs', plan.hostKnobs.map((k) => `${k.knob} = ${k.value}`)),
    formatList('ES2 kernel interface', plan.es2Kernel === null ? [] : describeEs2Kernel(plan.es2Kernel)),
    formatList('not applicable on this host', plan.notApplicable.map((n) => `${n.setting}: ${n.reason}`)),
    formatList('warnings', plan.warnings),
    plan.noop ? 'nothing to change: the domain already matches\n' : '',
  ].join('');
}

type Fields = [field: string, value: string, source?: string][];

/** One row per policy setting, with its source when the policy is an effective one. */
export function policyRows(policy: Policy, sources?: EffectivePolicy['sources']): Fields {
  const rows: Fields = [['enabled', policy.enabled ? 'yes' : 'no', sources?.enabled]];
  policy.vcpus?.forEach((v, i) => {
    const parts = [v.cpuset === undefined ? '' : `cpuset ${v.cpuset}`, v.label === undefined ? '' : `label ${v.label}`];
    rows.push([`vcpu ${v.vcpu}`, parts.filter((p) => p !== '').join(', '), sources?.vcpus?.[i]]);
  });
  if (policy.hybridIo !== undefined) {
    rows.push(['hybridIo', Object.entries(policy.hybridIo).map(([k, v]) => `${k}=${v}`).join(' '), sources?.hybridIo]);
  }
  const redirection = policy.interruptRedirection;
  if (redirection !== undefined) {
    const target = redirection.targetLabel === undefined ? '' : ` to label ${redirection.targetLabel}`;
    rows.push(['interruptRedirection', `${redirection.mode}${target}`, sources?.interruptRedirection]);
  }
  if (policy.postedInterrupts !== undefined) rows.push(['postedInterrupts', policy.postedInterrupts, sources?.postedInterrupts]);
  if (policy.haltPollNs !== undefined) rows.push(['haltPollNs', String(policy.haltPollNs), sources?.haltPollNs]);
  return rows;
}

/** A policy on one line, for the stored and recorded copies next to the effective table. */
export function policyLine(policy: Policy | null): string {
  return policy === null ? 'none' : policyRows(policy).map(([field, value]) => `${field}: ${value}`).join('; ');
}
