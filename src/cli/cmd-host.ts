// `es2ctl host` and `es2ctl host knobs set|restore`: the capability report and the knob journal.
import type { Command } from 'commander';

import { KNOB_PATHS, isKnobName } from '../host/paths.js';
import type { CapabilityReport } from '../host/probe.js';
import { clientFor, emit, outputFormat, withExamples, type Schemas } from './online.js';
import { formatFields, formatTable } from './table.js';
import { UsageError } from './usage.js';

/**
 * The schema leaves `haltPoll`, `es2Kernel`, `libvirt` and `kvm` open (`type: object`); es2d
 * fills them from its capability probe, so the probe's type is what arrives.
 */
type Host = Omit<Schemas['Host'], 'capabilities'> & { capabilities: CapabilityReport };
type KnobJournal = Schemas['KnobJournal'];

function yesNo(value: boolean | null, reason: string): string {
  return `${value === null ? 'unknown' : value ? 'yes' : 'no'} (${reason})`;
}

function kvmText(kvm: CapabilityReport['kvm'] | undefined): string | null {
  if (kvm === undefined) return null;
  return `${kvm.module ?? 'no KVM module loaded'}, /dev/kvm ${kvm.devKvm ? 'usable' : 'not usable'}`;
}

function renderJournal(knobs: Schemas['KnobEntry'][]): string {
  if (knobs.length === 0) return 'knob journal: empty (es2 holds no host knob)\n';
  return 'knob journal:\n' + formatTable(['KNOB', 'ORIGINAL', 'CURRENT', 'HOLDERS'], knobs.map((k) => [
    k.knob, k.original, k.current, Object.entries(k.holders).map(([holder, value]) => `${holder}=${value}`).join(', '),
  ]));
}

function renderHost(host: Host): string {
  const caps = host.capabilities;
  const lv = caps.libvirt;
  const es2 = caps.es2Kernel;
  const fields = formatFields([
    ['hostname', host.hostname], ['uri', host.uri],
    ['libvirt', host.connected ? 'connected' : 'not connected'], ['ready', host.ready],
    ['backend', host.backend], ['CPUs', host.cpus], ['CPU pool', host.cpuPool ?? 'all host CPUs'],
    ['KVM', kvmText(caps.kvm)],
    ['posted interrupts', yesNo(caps.postedInterrupts.supported, caps.postedInterrupts.reason)],
    ['ES2 kernel', es2.present ? `present, version ${es2.version ?? 'unknown'}` : 'absent (stock KVM: libvirt and host knobs only)'],
    ['libvirt version', lv.version], ['QEMU version', lv.qemuVersion],
    ['KVM exit stats', lv.kvmExitStats === null ? 'unknown (no running domain told)' : lv.kvmExitStats],
    ['IOThread poll in XML', lv.iothreadPollXml === null ? 'unknown' : lv.iothreadPollXml ? 'yes' : 'no (libvirt < 9.4: set live on every start)'],
    ['vhost-net poll-us', `not settable (${caps.vhostNetPollUs.reason})`],
  ]);
  const knobs = formatTable(['KNOB', 'PATH', 'PRESENT', 'WRITABLE', 'VALUE'],
    Object.entries(caps.haltPoll).map(([knob, k]) => [knob, k.path, k.present, k.writable, k.value]));
  return `${fields}\nhalt polling knobs:\n${knobs}\n${renderJournal(host.knobs)}`;
}

function renderKnobs(journal: KnobJournal): string {
  const restored = journal.restored === undefined ? '' : journal.restored.length === 0
    ? 'restored: nothing (no knob was held)\n'
    : 'restored:\n' + formatTable(['KNOB', 'FROM', 'TO'], journal.restored.map((r) => [r.knob, r.from, r.to]));
  return restored + renderJournal(journal.knobs);
}

/** `KNOB=VALUE` words into the request body; syntax and names are usage errors. */
export function parseKnobAssignments(words: readonly string[]): Schemas['HostKnobsRequest'] {
  const body: Record<string, number> = {};
  for (const word of words) {
    const m = /^([a-z_]+)=(0|[1-9][0-9]*)$/.exec(word);
    if (m === null) throw new UsageError(`expected KNOB=VALUE with a whole number, got ${JSON.stringify(word)}`);
    const knob = m[1]!;
    if (!isKnobName(knob)) throw new UsageError(`unknown knob ${JSON.stringify(knob)} (one of ${Object.keys(KNOB_PATHS).join(', ')})`);
    if (Object.hasOwn(body, knob)) throw new UsageError(`${knob} is given twice`);
    body[knob] = Number(m[2]);
  }
  return body;
}

export function registerHostCommands(program: Command): void {
  const host = withExamples(program.command('host')
    .description('host capabilities (backend, posted interrupts, halt polling, ES2 kernel, versions, CPUs) and the knob journal'),
  'es2ctl host', 'es2ctl --endpoint http://compute-1:9474 --token-file /etc/es2/api.token host')
    .action(async (_opts: unknown, cmd: Command) => {
      const format = outputFormat(cmd);
      emit(format, (await clientFor(cmd).send<Host>('GET', '/v1/host')).body, renderHost);
    });

  const knobs = withExamples(host.command('knobs')
    .description(`hold or restore host-global KVM knobs (${Object.keys(KNOB_PATHS).join(', ')}); journaled with their original values`),
  'es2ctl host knobs set halt_poll_ns=400000', 'es2ctl host knobs restore');

  withExamples(knobs.command('set')
    .description('hold knob values for the operator; the value in force is the largest any holder (operator or domain) asks for')
    .argument('<knob=value...>', `one or more of ${Object.keys(KNOB_PATHS).join(', ')}`),
  'es2ctl host knobs set halt_poll_ns=400000 halt_poll_ns_grow=2')
    .action(async (words: string[], _opts: unknown, cmd: Command) => {
      const format = outputFormat(cmd);
      const body = parseKnobAssignments(words);
      emit(format, (await clientFor(cmd).send<KnobJournal>('PUT', '/v1/host/knobs', body)).body, renderKnobs);
    });

  withExamples(knobs.command('restore')
    .description('write every journaled knob back to its original value and drop all holds, those of domains too'),
  'es2ctl host knobs restore')
    .action(async (_opts: unknown, cmd: Command) => {
      const format = outputFormat(cmd);
      emit(format, (await clientFor(cmd).send<KnobJournal>('DELETE', '/v1/host/knobs')).body, renderKnobs);
    });
}
