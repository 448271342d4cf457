// The decisions of applying a policy to one domain on this host: which CPUs each vCPU and IOThread
// gets, which IOThreads es2 uses and which disk goes to which, what can only act through a host
// knob or the ES2 kernel interface, and what cannot act here at all. Pure arithmetic over plain
// data: src/xml reads the domain into a DomainShape and writes the Layout back.
import { Es2Error, type ErrorDetail } from '../errors/index.js';
import { describeCpus, formatCpuset, parseCpuset } from './cpuset.js';
import { type HostFacts, LIBVIRT_IOTHREAD_POLL_XML } from './host-facts.js';
import type { Es2KernelSettings, KnobChange, NotApplicable } from './plan.js';
import type { Policy } from './types.js';
import { failValidation } from './validate.js';

/** What es2 needs to know about a domain, as it is before es2 touches it. */
export interface DomainShape {
  /** `<vcpu>`: the maximum number of vCPUs. */
  vcpus: number;
  /** IOThread ids the domain has, ascending. */
  iothreadIds: number[];
  /** Target device names (`vda`) of virtio disks, in document order. */
  virtioDisks: string[];
  /** Virtio network interfaces, described for people (`52:54:00:..` or `net0`), in document order. */
  virtioInterfaces: string[];
}

export interface PollParams {
  pollMaxNs?: number;
  pollGrow?: number;
  pollShrink?: number;
}

/**
 * QEMU's IOThread polling defaults (AioContext: poll-max-ns 32768 on Linux, grow and shrink 0 =
 * QEMU's own factors): what a running IOThread gets back when es2 stops polling it.
 */
export const QEMU_IOTHREAD_POLL_DEFAULTS: Readonly<Required<PollParams>> = { pollMaxNs: 32768, pollGrow: 0, pollShrink: 0 };

/** What the domain should look like under the policy: the input of the XML configurators. */
export interface Layout {
  vcpuPins: { vcpu: number; cpus: number[] }[];
  /** IOThread ids es2 serves disks with, pins and polls: existing ones first, then new ones. */
  iothreadIds: number[];
  /** Ids among iothreadIds that the domain does not have yet. */
  addedIothreadIds: number[];
  /** Null when the policy does not pin IOThreads. */
  iothreadCpus: number[] | null;
  /** Null when the policy sets no poll parameter. */
  poll: PollParams | null;
  /** Poll parameters go into the XML too (libvirt >= 9.4); before that they are live only. */
  pollInXml: boolean;
  diskIothreads: { disk: string; iothread: number }[];
  hostKnobs: KnobChange[];
  es2Kernel: Es2KernelSettings | null;
  notApplicable: NotApplicable[];
  warnings: string[];
}

export const NEEDS_ES2_KERNEL = 'not applicable on this host: needs the ES2 kernel interface';

function allowedCpus(host: HostFacts): number[] {
  return host.cpuPool ?? host.cpus;
}

/**
 * Checks a valid policy against one domain and host: vCPU indexes below `<vcpu>`, CPU sets inside
 * the host's CPU pool, posted interrupts when required.
 * @throws Es2Error VALIDATION_FAILED (paths as JSON pointers into the policy) or HOST_UNSUPPORTED.
 */
export function checkPolicyFits(policy: Policy, domain: Pick<DomainShape, 'vcpus'>, host: HostFacts): void {
  const details: ErrorDetail[] = [];
  const pool = new Set(allowedCpus(host));
  const checkCpus = (cpuset: string, path: string): void => {
    const outside = parseCpuset(cpuset, path).filter((cpu) => !pool.has(cpu));
    if (outside.length > 0) {
      const which = outside.length === 1 ? `CPU ${outside[0]} is` : `CPUs ${formatCpuset(outside)} are`;
      details.push({ path, message: `${which} not among the host CPUs es2 may use (${describeCpus(pool)})` });
    }
  };
  policy.vcpus?.forEach((entry, i) => {
    if (entry.vcpu >= domain.vcpus) {
      details.push({ path: `/vcpus/${i}/vcpu`, message: `vCPU ${entry.vcpu} does not exist: the domain has ${domain.vcpus} (<vcpu>)` });
    }
    if (entry.cpuset !== undefined) checkCpus(entry.cpuset, `/vcpus/${i}/cpuset`);
  });
  if (policy.hybridIo?.iothreadCpuset !== undefined) checkCpus(policy.hybridIo.iothreadCpuset, '/hybridIo/iothreadCpuset');
  if (details.length > 0) failValidation('policy for this domain', details);
  if (policy.enabled && policy.postedInterrupts === 'required' && host.postedInterrupts === false) {
    throw new Es2Error('HOST_UNSUPPORTED', 'the policy requires posted interrupts and this host has none (APICv/AVIC off)', {
      details: [{ path: '/postedInterrupts', message: 'required, but the host has no posted interrupts' }],
    });
  }
}

function postedInterruptWarnings(policy: Policy, host: HostFacts): string[] {
  if (policy.postedInterrupts === undefined) return [];
  if (host.postedInterrupts === null) return ['posted interrupts: cannot tell whether this host has them'];
  if (host.postedInterrupts === false) return ['posted interrupts preferred, but this host has none: interrupts take the exit path'];
  return [];
}

function nextFreeIds(existing: readonly number[], count: number): number[] {
  const taken = new Set(existing);
  const ids: number[] = [];
  for (let id = 1; ids.length < count; id++) if (!taken.has(id)) ids.push(id);
  return ids;
}

function pollOf(policy: Policy): PollParams | null {
  const io = policy.hybridIo;
  if (io === undefined) return null;
  const poll: PollParams = {};
  if (io.pollMaxNs !== undefined) poll.pollMaxNs = io.pollMaxNs;
  if (io.pollGrow !== undefined) poll.pollGrow = io.pollGrow;
  if (io.pollShrink !== undefined) poll.pollShrink = io.pollShrink;
  return Object.keys(poll).length > 0 ? poll : null;
}

function kernelSettings(policy: Policy, host: HostFacts): { settings: Es2KernelSettings | null; notApplicable: NotApplicable[] } {
  const wanted: { setting: string; apply: (s: Es2KernelSettings) => void }[] = [];
  const io = policy.hybridIo;
  if (io?.kickRateThreshold !== undefined) {
    const value = io.kickRateThreshold;
    wanted.push({ setting: '/hybridIo/kickRateThreshold', apply: (s) => { s.kickRateThreshold = value; } });
  }
  if (io?.idleTimeoutUs !== undefined) {
    const value = io.idleTimeoutUs;
    wanted.push({ setting: '/hybridIo/idleTimeoutUs', apply: (s) => { s.idleTimeoutUs = value; } });
  }
  const redirection = policy.interruptRedirection;
  if (redirection !== undefined) {
    wanted.push({
      setting: '/interruptRedirection',
      apply: (s) => {
        s.redirect = redirection.mode;
        if (redirection.mode === 'labeled') {
          s.redirectVcpus = (policy.vcpus ?? []).filter((v) => v.label === redirection.targetLabel).map((v) => v.vcpu);
        }
      },
    });
  }
  if (!host.es2Kernel) {
    return { settings: null, notApplicable: wanted.map(({ setting }) => ({ setting, reason: NEEDS_ES2_KERNEL })) };
  }
  const settings: Es2KernelSettings = { enabled: policy.enabled };
  if (policy.enabled) for (const { apply } of wanted) apply(settings);
  return { settings, notApplicable: [] };
}

/**
 * Decides how a policy lands on a domain and host.
 * @throws Es2Error as checkPolicyFits.
 */
export function decideLayout(policy: Policy, domain: DomainShape, host: HostFacts): Layout {
  checkPolicyFits(policy, domain, host);
  const kernel = kernelSettings(policy, host);
  const layout: Layout = {
    vcpuPins: [],
    iothreadIds: [],
    addedIothreadIds: [],
    iothreadCpus: null,
    poll: null,
    pollInXml: host.libvirtVersion >= LIBVIRT_IOTHREAD_POLL_XML,
    diskIothreads: [],
    hostKnobs: [],
    es2Kernel: kernel.settings,
    notApplicable: [],
    warnings: [],
  };
  if (!policy.enabled) return layout;
  layout.notApplicable.push(...kernel.notApplicable);
  layout.warnings.push(...postedInterruptWarnings(policy, host));

  layout.vcpuPins = (policy.vcpus ?? [])
    .filter((entry) => entry.cpuset !== undefined)
    .map((entry) => ({ vcpu: entry.vcpu, cpus: parseCpuset(entry.cpuset as string) }))
    .sort((a, b) => a.vcpu - b.vcpu);

  const io = policy.hybridIo;
  if (io !== undefined) {
    const count = io.iothreads ?? Math.max(1, domain.iothreadIds.length);
    const existing = domain.iothreadIds.slice(0, count);
    layout.addedIothreadIds = nextFreeIds(domain.iothreadIds, count - existing.length);
    layout.iothreadIds = [...existing, ...layout.addedIothreadIds];
    layout.iothreadCpus = io.iothreadCpuset === undefined ? null : parseCpuset(io.iothreadCpuset);
    layout.poll = pollOf(policy);
    // Round robin in document order, so the same domain always gets the same assignment.
    layout.diskIothreads = domain.virtioDisks.map((disk, i) => ({
      disk,
      iothread: layout.iothreadIds[i % layout.iothreadIds.length] as number,
    }));
    if (domain.virtioInterfaces.length > 0) {
      layout.notApplicable.push({
        setting: '/hybridIo',
        reason: `not applicable on this host: vhost-net busy polling (poll-us) of ${domain.virtioInterfaces.join(', ')} cannot be set through libvirt 9.x; only the virtio disks' IOThreads poll`,
      });
    }
  }

  if (policy.haltPollNs !== undefined) {
    if (host.es2Kernel && layout.es2Kernel !== null) {
      // Per VM through the ES2 kernel interface: better than the host-global knob.
      layout.es2Kernel.haltPollNs = policy.haltPollNs;
    } else if (host.haltPollKnob) {
      layout.hostKnobs.push({ knob: 'halt_poll_ns', value: policy.haltPollNs });
    } else {
      layout.notApplicable.push({ setting: '/haltPollNs', reason: 'not applicable on this host: kvm.halt_poll_ns cannot be written and there is no ES2 kernel interface' });
    }
  }
  return layout;
}
