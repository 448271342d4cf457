// Backends for the per-VM part of ES2 (hybrid I/O thresholds, interrupt redirection, per-VM halt
// polling). On an ES2-patched KVM these are files under sys/kernel/es2/vms/<qemu pid>/; a stock
// host has no such thing, and plans list those settings as not applicable there.
import { existsSync } from 'node:fs';

import { Es2Error, validationFailed } from '../errors/index.js';
import type { Es2KernelSettings } from '../policy/plan.js';
import { readHostFile, writeHostFile } from './files.js';
import { parsePid, type Es2VmFile, type HostRoot } from './paths.js';
import type { Backend, CapabilityReport } from './probe.js';

export interface VmBackend {
  readonly kind: Backend;
  /** Writes `settings` for a running domain. */
  apply(domainName: string, settings: Es2KernelSettings): void;
  /** What the kernel holds for a running domain (for drift); null when there is nothing to read. */
  read(domainName: string): Es2KernelSettings | null;
  /** Turns ES2 off for the domain; false when there was nothing to turn off. */
  disable(domainName: string): boolean;
}

const REDIRECT_MODES: ReadonlySet<string> = new Set(['off', 'running', 'labeled']);
const NUMERIC_FILES = [
  ['kickRateThreshold', 'kick_rate_threshold'],
  ['idleTimeoutUs', 'idle_timeout_us'],
  ['haltPollNs', 'halt_poll_ns'],
] as const satisfies readonly (readonly [keyof Es2KernelSettings, Es2VmFile])[];

function checkSettings(settings: Es2KernelSettings): void {
  for (const [field] of NUMERIC_FILES) {
    const value = settings[field];
    if (value !== undefined && (!Number.isSafeInteger(value) || value < 0)) {
      throw validationFailed(`ES2 ${field} must be a non-negative integer, got ${value}`);
    }
  }
  if (settings.redirect !== undefined && !REDIRECT_MODES.has(settings.redirect)) {
    throw validationFailed(`ES2 redirect must be off, running or labeled, got ${JSON.stringify(settings.redirect)}`);
  }
  for (const vcpu of settings.redirectVcpus ?? []) {
    if (!Number.isSafeInteger(vcpu) || vcpu < 0) throw validationFailed(`ES2 redirectVcpus holds ${vcpu}, not a vCPU index`);
  }
}

/** `0,2,4-6` or whitespace-separated indices, as the kernel may print them. */
function parseVcpuList(text: string): number[] {
  const vcpus: number[] = [];
  for (const part of text.trim().split(/[\s,]+/).filter((p) => p.length > 0)) {
    const range = /^(\d+)(?:-(\d+))?$/.exec(part);
    if (!range) throw new Es2Error('INTERNAL', `ES2 redirect_vcpus holds ${JSON.stringify(text)}`);
    const first = Number(range[1]);
    const last = range[2] === undefined ? first : Number(range[2]);
    for (let vcpu = first; vcpu <= last; vcpu++) vcpus.push(vcpu);
  }
  return vcpus;
}

function parseCount(file: string, text: string): number {
  if (!/^\d+$/.test(text.trim())) throw new Es2Error('INTERNAL', `ES2 ${file} holds ${JSON.stringify(text)}, not a number`);
  return Number(text.trim());
}

/** The ES2 kernel interface v1 (DESIGN.md), keyed by the domain's QEMU pid. */
export class Es2KernelBackend implements VmBackend {
  readonly kind = 'es2-kernel';
  private readonly host: HostRoot;

  constructor(host: HostRoot) {
    this.host = host;
  }

  /** The QEMU pid of a running domain, from libvirt's pid file; CONFLICT when it is not running. */
  pidOf(domainName: string): number {
    const text = readHostFile(this.host.qemuPidFile(domainName));
    if (text === undefined) throw new Es2Error('CONFLICT', `domain ${domainName} is not running (libvirt has no pid file for it)`);
    return parsePid(text);
  }

  apply(domainName: string, settings: Es2KernelSettings): void {
    checkSettings(settings);
    const pid = this.vmPid(domainName);
    for (const [field, file] of NUMERIC_FILES) {
      const value = settings[field];
      if (value !== undefined) writeHostFile(this.host.es2VmFile(pid, file), value);
    }
    if (settings.redirectVcpus !== undefined) writeHostFile(this.host.es2VmFile(pid, 'redirect_vcpus'), settings.redirectVcpus.join(','));
    if (settings.redirect !== undefined) writeHostFile(this.host.es2VmFile(pid, 'redirect'), settings.redirect);
    // Last, so the VM never runs ES2 with thresholds half written.
    writeHostFile(this.host.es2VmFile(pid, 'enabled'), settings.enabled ? 1 : 0);
  }

  read(domainName: string): Es2KernelSettings {
    const pid = this.vmPid(domainName);
    const read = (file: Es2VmFile): string | undefined => readHostFile(this.host.es2VmFile(pid, file));
    const enabled = read('enabled');
    if (enabled === undefined) throw new Es2Error('HOST_UNSUPPORTED', `the ES2 kernel has no enabled file for ${domainName} (pid ${pid})`);
    const settings: Es2KernelSettings = { enabled: parseCount('enabled', enabled) !== 0 };
    for (const [field, file] of NUMERIC_FILES) {
      const text = read(file);
      if (text !== undefined) settings[field] = parseCount(file, text);
    }
    const redirect = read('redirect')?.trim();
    if (redirect !== undefined) {
      if (!REDIRECT_MODES.has(redirect)) throw new Es2Error('INTERNAL', `ES2 redirect holds ${JSON.stringify(redirect)}`);
      settings.redirect = redirect as Es2KernelSettings['redirect'];
    }
    const vcpus = read('redirect_vcpus');
    if (vcpus !== undefined) settings.redirectVcpus = parseVcpuList(vcpus);
    return settings;
  }

  disable(domainName: string): boolean {
    const pidText = readHostFile(this.host.qemuPidFile(domainName));
    if (pidText === undefined) return false;
    const enabled = this.host.es2VmFile(parsePid(pidText), 'enabled');
    if (!existsSync(enabled)) return false;
    writeHostFile(enabled, 0);
    return true;
  }

  private vmPid(domainName: string): number {
    const pid = this.pidOf(domainName);
    if (!existsSync(this.host.es2VmDir(pid))) {
      throw new Es2Error('HOST_UNSUPPORTED',
        `the ES2 kernel has no entry for ${domainName} (pid ${pid}): it is not a KVM domain, or it runs on a kernel without ES2`);
    }
    return pid;
  }
}

/** A host without the ES2 kernel interface: es2 acts through libvirt and host knobs only. */
export class StockBackend implements VmBackend {
  readonly kind = 'stock';

  apply(domainName: string, _settings: Es2KernelSettings): never {
    throw new Es2Error('HOST_UNSUPPORTED', `cannot apply ES2 kernel settings to ${domainName}: this host has no ES2 kernel interface`);
  }

  read(): null {
    return null;
  }

  disable(): boolean {
    return false;
  }
}

export function selectBackend(report: CapabilityReport, host: HostRoot): VmBackend {
  return report.backend === 'es2-kernel' ? new Es2KernelBackend(host) : new StockBackend();
}
