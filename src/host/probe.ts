// The capability probe: what this host can do for ES2, read from sysfs/procfs under the host root
// and combined with facts the caller gathered from libvirt. Detection only: enable_apicv and
// avic are read-only module parameters, so posted interrupts are found, never switched.
import { accessSync, constants, existsSync } from 'node:fs';

import { formatVersion, type Connection, type DomainStatsRecord } from '../libvirt/index.js';
import { DomainStatsTypes, GetAllDomainStatsFlags } from '../libvirt/constants.js';
import { LIBVIRT_IOTHREAD_POLL_XML, type HostFacts } from '../policy/host-facts.js';
import { readHostFile } from './files.js';
import { KNOB_PATHS, type HostRoot, type KnobName } from './paths.js';

export interface LibvirtFacts {
  /** libvirt encoding (9.0.0 = 9000000); null when libvirt was not asked. */
  libvirtVersion: number | null;
  qemuVersion: number | null;
  /** Bulk stats carry `vcpu.N.exits.sum`; null when no running domain could tell. */
  kvmExitStats: boolean | null;
}

export type Backend = 'es2-kernel' | 'stock';

export interface KnobCapability {
  path: string;
  present: boolean;
  writable: boolean;
  value: number | null;
}

export interface CapabilityReport {
  hostRoot: string;
  /** `es2-kernel` writes the per-VM files of the ES2 kernel interface; `stock` uses libvirt and knobs only. */
  backend: Backend;
  kvm: { devKvm: boolean; module: 'kvm_intel' | 'kvm_amd' | null };
  postedInterrupts: {
    /** null when the host does not let it be told. */
    supported: boolean | null;
    /** How it was told, or why it could not be. */
    reason: string;
    intel: { enableApicv: boolean | null; postedIntrFlag: boolean | null } | null;
    amd: { avic: boolean | null } | null;
  };
  haltPoll: Record<KnobName, KnobCapability>;
  es2Kernel: { present: boolean; version: string | null };
  libvirt: {
    version: string | null;
    versionCode: number | null;
    qemuVersion: string | null;
    qemuVersionCode: number | null;
    kvmExitStats: boolean | null;
    /** `<poll>` under `<iothread>` in domain XML (libvirt >= 9.4); null when libvirt was not asked. */
    iothreadPollXml: boolean | null;
  };
  vhostNetPollUs: { supported: false; reason: string };
}

/** Features of the `es2_host_capability{feature}` metric. */
export type CapabilityFeature =
  | 'posted_interrupts' | 'es2_kernel' | 'halt_poll' | 'kvm' | 'kvm_exit_stats' | 'iothread_poll_xml' | 'vhost_net_poll_us';

export const NO_LIBVIRT_FACTS: LibvirtFacts = { libvirtVersion: null, qemuVersion: null, kvmExitStats: null };

const VHOST_NET_POLL_US = { supported: false, reason: 'not settable through libvirt 9.x' } as const;

/** Module parameters print booleans as Y/N (bool) or 1/0 (int, as avic is on older kernels). */
function parseFlag(text: string | undefined): boolean | null {
  switch (text?.trim()) {
    case 'Y': case 'y': case '1': return true;
    case 'N': case 'n': case '0': return false;
    default: return null;
  }
}

/**
 * Whether /proc/cpuinfo lists `posted_intr`. Kernels since 5.8 print a `vmx flags` line; older
 * ones do not list VMX features at all, and then it cannot be told (null).
 */
export function cpuinfoPostedIntr(cpuinfo: string): boolean | null {
  let vmxFlagsSeen = false;
  for (const line of cpuinfo.split('\n')) {
    const colon = line.indexOf(':');
    if (colon < 0) continue;
    const key = line.slice(0, colon).trim();
    if (key !== 'flags' && key !== 'vmx flags') continue;
    if (key === 'vmx flags') vmxFlagsSeen = true;
    if (line.slice(colon + 1).split(/\s+/).includes('posted_intr')) return true;
  }
  return vmxFlagsSeen ? false : null;
}

function probePostedInterrupts(host: HostRoot, cpuinfo: string): CapabilityReport['postedInterrupts'] & { module: CapabilityReport['kvm']['module'] } {
  if (existsSync(host.probe('kvmIntelModule'))) {
    const enableApicv = parseFlag(readHostFile(host.probe('enableApicv')));
    const postedIntrFlag = cpuinfoPostedIntr(cpuinfo);
    const intel = { enableApicv, postedIntrFlag };
    const base = { module: 'kvm_intel' as const, intel, amd: null };
    if (enableApicv === null) return { ...base, supported: null, reason: 'kvm_intel enable_apicv cannot be read' };
    if (!enableApicv) return { ...base, supported: false, reason: 'kvm_intel enable_apicv=N' };
    // KVM clears enable_apicv at load when the CPU lacks posted interrupts, so Y alone is enough
    // when cpuinfo is too old to list VMX features.
    if (postedIntrFlag === false) return { ...base, supported: false, reason: 'enable_apicv=Y but the CPU lacks posted_intr' };
    return {
      ...base, supported: true,
      reason: postedIntrFlag ? 'kvm_intel enable_apicv=Y, posted_intr in vmx flags' : 'kvm_intel enable_apicv=Y (cpuinfo lists no vmx flags)',
    };
  }
  if (existsSync(host.probe('kvmAmdModule'))) {
    const avic = parseFlag(readHostFile(host.probe('avic')));
    const base = { module: 'kvm_amd' as const, intel: null, amd: { avic } };
    if (avic === null) return { ...base, supported: null, reason: 'kvm_amd avic cannot be read' };
    return { ...base, supported: avic, reason: `kvm_amd avic=${avic ? 'Y' : 'N'}` };
  }
  return { module: null, intel: null, amd: null, supported: false, reason: 'neither kvm_intel nor kvm_amd is loaded' };
}

function isWritable(path: string): boolean {
  try {
    accessSync(path, constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

function probeKnob(host: HostRoot, knob: KnobName): KnobCapability {
  const path = host.knob(knob);
  const text = readHostFile(path);
  const value = text === undefined || !/^\d+$/.test(text.trim()) ? null : Number(text.trim());
  return { path: KNOB_PATHS[knob], present: text !== undefined, writable: text !== undefined && isWritable(path), value };
}

export function probeHost(host: HostRoot, libvirt: LibvirtFacts = NO_LIBVIRT_FACTS): CapabilityReport {
  const { module, ...postedInterrupts } = probePostedInterrupts(host, readHostFile(host.probe('cpuinfo')) ?? '');
  const es2Version = readHostFile(host.probe('es2Version'))?.trim();
  const haltPoll = Object.fromEntries(
    (Object.keys(KNOB_PATHS) as KnobName[]).map((knob) => [knob, probeKnob(host, knob)]),
  ) as Record<KnobName, KnobCapability>;
  return {
    hostRoot: host.root,
    backend: es2Version === undefined ? 'stock' : 'es2-kernel',
    kvm: { devKvm: existsSync(host.probe('devKvm')), module },
    postedInterrupts,
    haltPoll,
    es2Kernel: { present: es2Version !== undefined, version: es2Version ?? null },
    libvirt: {
      version: libvirt.libvirtVersion === null ? null : formatVersion(libvirt.libvirtVersion),
      versionCode: libvirt.libvirtVersion,
      qemuVersion: libvirt.qemuVersion === null ? null : formatVersion(libvirt.qemuVersion),
      qemuVersionCode: libvirt.qemuVersion,
      kvmExitStats: libvirt.kvmExitStats,
      iothreadPollXml: libvirt.libvirtVersion === null ? null : libvirt.libvirtVersion >= LIBVIRT_IOTHREAD_POLL_XML,
    },
    vhostNetPollUs: VHOST_NET_POLL_US,
  };
}

/** feature → 1/0 for `es2_host_capability{feature}`; what cannot be told counts as 0. */
export function capabilityFeatures(report: CapabilityReport): Record<CapabilityFeature, 0 | 1> {
  const bit = (value: boolean | null): 0 | 1 => (value === true ? 1 : 0);
  return {
    posted_interrupts: bit(report.postedInterrupts.supported),
    es2_kernel: bit(report.es2Kernel.present),
    halt_poll: bit(report.haltPoll.halt_poll_ns.writable),
    kvm: bit(report.kvm.devKvm),
    kvm_exit_stats: bit(report.libvirt.kvmExitStats),
    iothread_poll_xml: bit(report.libvirt.iothreadPollXml),
    vhost_net_poll_us: bit(report.vhostNetPollUs.supported),
  };
}

/** The host side of HostFacts for the pure core. */
export function hostFacts(report: CapabilityReport, cpus: number[], libvirtVersion: number, cpuPool?: number[]): HostFacts {
  return {
    cpus,
    ...(cpuPool === undefined ? {} : { cpuPool }),
    libvirtVersion,
    es2Kernel: report.es2Kernel.present,
    postedInterrupts: report.postedInterrupts.supported,
    haltPollKnob: report.haltPoll.halt_poll_ns.writable,
  };
}

/** Whether bulk stats records carry KVM exit counters; null when there is no record to tell. */
export function hasKvmExitStats(records: DomainStatsRecord[]): boolean | null {
  if (records.length === 0) return null;
  return records.some((record) => Object.keys(record.stats).some((key) => /^vcpu\.\d+\.exits\.sum$/.test(key)));
}

/** Gathers the libvirt side of the probe from a live connection. */
export async function gatherLibvirtFacts(conn: Connection): Promise<LibvirtFacts> {
  const [libvirtVersion, qemuVersion, records] = await Promise.all([
    conn.getLibVersion(),
    conn.getVersion(),
    conn.getAllDomainStats(DomainStatsTypes.VCPU, GetAllDomainStatsFlags.RUNNING),
  ]);
  return { libvirtVersion, qemuVersion, kvmExitStats: hasKvmExitStats(records) };
}
