// `es2ctl domains` and `es2ctl show REF`: what es2d knows about domains and their policies.
import type { Command } from 'commander';

import { clientFor, domainPath, emit, outputFormat, policyLine, policyRows, withExamples, type Plan, type Schemas } from './online.js';
import { formatFields, formatList, formatTable, indent } from './table.js';

type Domain = Schemas['Domain'];

function renderList(list: Schemas['DomainList']): string {
  if (list.domains.length === 0) return 'no domains\n';
  return formatTable(['UUID', 'NAME', 'STATE', 'ENABLED', 'SOURCE', 'PENDING', 'DRIFT'],
    list.domains.map((d) => [d.uuid, d.name, d.state, d.enabled, d.source, d.pending, d.drift]));
}

function stateText(d: Domain): string {
  if (d.state === 'absent') return 'absent (libvirt does not know this UUID; the stored policy is pending)';
  return `${d.state} (${d.active ? 'active' : 'inactive'}, ${d.persistent === true ? 'persistent' : 'transient'})`;
}

function novaText(nova: Domain['nova']): string | null {
  if (nova === null) return null;
  const project = nova.project ?? nova.projectId;
  return [
    nova.instance == null ? '' : `instance ${nova.instance}`,
    project == null ? '' : `project ${project}${nova.project != null && nova.projectId != null ? ` (${nova.projectId})` : ''}`,
    nova.flavor == null ? '' : `flavor ${nova.flavor}`,
  ].filter((s) => s !== '').join(', ');
}

/** The recorded copy is a mirror of the stored one; say whether it still mirrors it. */
function recordedText(d: Domain): string {
  if (d.recorded === null) return 'none';
  const same = d.effective !== null && JSON.stringify(sorted(d.recorded)) === JSON.stringify(sorted(d.effective.policy));
  return `${same ? 'matches the effective policy' : 'differs from the effective policy'}: ${policyLine(d.recorded)}`;
}

/** Key order differs between the store and the metadata element; compare values only. */
function sorted(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sorted);
  if (typeof value !== 'object' || value === null) return value;
  return Object.fromEntries(Object.keys(value).sort().map((k) => [k, sorted((value as Record<string, unknown>)[k])]));
}

function count(n: number, noun: string): string {
  return `${n} ${noun}${n === 1 ? '' : 's'}`;
}

function appliedText(d: Domain): string {
  const a = d.applied;
  if (a === null) return formatFields([['applied', 'never']]);
  const plan = a.plan as Plan | null | undefined;
  const counts = plan == null ? ''
    : ` (${count(plan.live.length, 'live operation')}, ${count(plan.persistent.length, 'persistent change')}, ${count(plan.hostKnobs.length, 'host knob')})`;
  let text = formatFields([['applied', `${a.result} at ${a.at}${counts}`], ...(a.error == null ? [] : [['error', a.error] as [string, string]])]);
  if (plan != null && plan.notApplicable.length > 0) {
    text += formatList('not applicable on this host', plan.notApplicable.map((n) => `${n.setting}: ${n.reason}`));
  }
  if (plan != null && plan.warnings.length > 0) text += formatList('warnings', plan.warnings);
  return text;
}

function driftText(drift: Domain['drift']): string {
  if (drift === null) return formatFields([['drift', 'not checked yet']]);
  const head = formatFields([['drift', `${drift.items.length === 0 ? 'none' : count(drift.items.length, 'item')} (checked ${drift.checkedAt}${drift.repaired ? ', repaired' : ''})`]]);
  if (drift.items.length === 0) return head;
  return head + indent(formatTable(['WHAT', 'EXPECTED', 'ACTUAL'], drift.items.map((i) => [i.what, i.expected, i.actual])));
}

function renderDomain(d: Domain): string {
  const head = formatFields([
    ['name', d.name], ['uuid', d.uuid], ['state', stateText(d)], ['nova', novaText(d.nova)], ['etag', d.etag],
    ['stored policy (API)', policyLine(d.storedPolicy)], ['recorded in domain', recordedText(d)],
  ]);
  const effective = d.effective === null
    ? 'effective policy: none\n'
    : `effective policy:\n${indent(formatTable(['FIELD', 'VALUE', 'SOURCE'], policyRows(d.effective.policy, d.effective.sources)))}`;
  return `${head}\n${effective}\n${appliedText(d)}${driftText(d.drift)}`;
}

export function registerDomainCommands(program: Command): void {
  withExamples(program.command('domains')
    .description('domains libvirt knows plus stored policies waiting for their domain (pending)'),
  'es2ctl domains', 'es2ctl -o json domains')
    .action(async (_opts: unknown, cmd: Command) => {
      const format = outputFormat(cmd);
      emit(format, (await clientFor(cmd).send<Schemas['DomainList']>('GET', '/v1/domains')).body, renderList);
    });

  withExamples(program.command('show')
    .description('one domain: state, Nova identity, stored and effective policy with sources, recorded policy, last apply, drift, ETag')
    .argument('<ref>', 'domain UUID or name'),
  'es2ctl show test', 'es2ctl -o json show 6695eb01-f6a4-8304-79aa-97f2502e193f')
    .action(async (ref: string, _opts: unknown, cmd: Command) => {
      const format = outputFormat(cmd);
      emit(format, (await clientFor(cmd).send<Domain>('GET', domainPath(ref))).body, renderDomain);
    });
}
