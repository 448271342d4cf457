// `es2ctl enable|plan|disable REF`: write, dry-run or remove a domain's API policy.
import { Option, type Command } from 'commander';

import type { Policy } from '../policy/types.js';
import { clientFor, domainPath, emit, formatPlan, outputFormat, withExamples, type Schemas } from './online.js';
import { addPolicyFlags, policyFromOptions, type PolicyFlags } from './policy-flags.js';
import { formatFields } from './table.js';

type PolicyResult = Schemas['PolicyResult'];

const STATUS_TEXT: Record<PolicyResult['status'], string> = {
  applied: 'applied live and to the persistent definition',
  stored: 'stored; the domain is not running, its persistent definition is updated',
  pending: 'es2d keeps the policy and applies it when libvirt knows the domain',
  planned: 'dry run: nothing was changed',
  removed: "es2's changes undone (flavor or config policies still apply)",
};

/** An ETag as the header wants it: quoted, unless the operator pasted it quoted (or weak) already. */
function ifMatchHeader(etag: string | undefined): Record<string, string> {
  if (etag === undefined) return {};
  return { 'if-match': /^(W\/)?".*"$/.test(etag) ? etag : `"${etag}"` };
}

function renderResult(result: PolicyResult): string {
  const domain = result.name === null || result.name === undefined ? result.uuid : `${result.name} (${result.uuid})`;
  const head = formatFields([['domain', domain], ['status', `${result.status}: ${STATUS_TEXT[result.status]}`], ['etag', result.etag]]);
  return result.plan === null ? head : `${head}\n${formatPlan(result.plan)}`;
}

const ifMatchOption = (): Option => new Option('--if-match <etag>', 'fail with PRECONDITION_FAILED unless the policy still has this ETag (from show)');

async function putPolicy(cmd: Command, ref: string, policy: Policy, dryRun: boolean, ifMatch?: string): Promise<void> {
  const format = outputFormat(cmd);
  const res = await clientFor(cmd).send<PolicyResult>('PUT', domainPath(ref, `/policy${dryRun ? '?dryRun=true' : ''}`), policy, ifMatchHeader(ifMatch));
  emit(format, res.body, renderResult);
}

export function registerPolicyCommands(program: Command): void {
  withExamples(addPolicyFlags(program.command('enable')
    .description('store and apply the API policy of a domain (UUID or name); a UUID libvirt does not know yet is kept as pending')
    .argument('<ref>', 'domain UUID or name'))
    .addOption(ifMatchOption()),
  'es2ctl enable test --pin 0=2,1=3-4 --label 0=io,1=compute --iothreads 1 --poll-max-ns 32768 --halt-poll-ns 200000',
  'es2ctl enable test --policy policy.yaml --if-match "JqawcfrzRiig60Sw"')
    .action(async (ref: string, opts: PolicyFlags & { ifMatch?: string }, cmd: Command) => {
      outputFormat(cmd);
      await putPolicy(cmd, ref, await policyFromOptions(opts, 'enable'), false, opts.ifMatch);
    });

  withExamples(addPolicyFlags(program.command('plan')
    .description('dry run of enable: what the policy would do to the domain and host; changes nothing')
    .argument('<ref>', 'domain UUID or name')),
  'es2ctl plan test --pin 0=2,1=3-4 --iothreads 1 --kick-rate-threshold 20000')
    .action(async (ref: string, opts: PolicyFlags, cmd: Command) => {
      outputFormat(cmd);
      await putPolicy(cmd, ref, await policyFromOptions(opts, 'plan'), true);
    });

  withExamples(program.command('disable')
    .description("remove the API policy of a domain and undo es2's changes (restoring the values it replaced)")
    .argument('<ref>', 'domain UUID or name')
    .option('--dry-run', 'show what removing would do; change nothing')
    .addOption(ifMatchOption()),
  'es2ctl disable test', 'es2ctl disable test --dry-run')
    .action(async (ref: string, opts: { dryRun?: boolean; ifMatch?: string }, cmd: Command) => {
      const format = outputFormat(cmd);
      const path = domainPath(ref, `/policy${opts.dryRun === true ? '?dryRun=true' : ''}`);
      const res = await clientFor(cmd).send<PolicyResult>('DELETE', path, undefined, ifMatchHeader(opts.ifMatch));
      emit(format, res.body, renderResult);
    });
}
