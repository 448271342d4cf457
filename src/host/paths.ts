// Every file es2 reads or writes on the host, relative to `--host-root`. Nothing outside this
// list is ever resolved: host paths are built here from fixed parts, a validated pid or a
// validated domain name, and checked to stay under the root after symlinks are followed.
import { lstatSync, realpathSync } from 'node:fs';
import { dirname, isAbsolute, relative, resolve, sep } from 'node:path';

import { Es2Error, validationFailed } from '../errors/index.js';

/**
 * Host-global KVM knobs es2 may write. For each, a larger value means more halt polling, so when
 * several domains ask, the largest request satisfies them all. (halt_poll_ns_shrink is left out:
 * 0 there means "reset", so it has no such order.)
 */
export const KNOB_PATHS = {
  halt_poll_ns: 'sys/module/kvm/parameters/halt_poll_ns',
  halt_poll_ns_grow: 'sys/module/kvm/parameters/halt_poll_ns_grow',
  halt_poll_ns_grow_start: 'sys/module/kvm/parameters/halt_poll_ns_grow_start',
} as const;

export type KnobName = keyof typeof KNOB_PATHS;

export function isKnobName(name: string): name is KnobName {
  return Object.hasOwn(KNOB_PATHS, name);
}

/** What the capability probe reads. */
export const PROBE_PATHS = {
  cpuinfo: 'proc/cpuinfo',
  devKvm: 'dev/kvm',
  kvmIntelModule: 'sys/module/kvm_intel',
  enableApicv: 'sys/module/kvm_intel/parameters/enable_apicv',
  kvmAmdModule: 'sys/module/kvm_amd',
  avic: 'sys/module/kvm_amd/parameters/avic',
  es2Version: 'sys/kernel/es2/version',
} as const;

export const PROVIDER_CONFIG_PATH = 'etc/nova/provider_config/es2.yaml';

/** Per-VM files of the ES2 kernel interface v1 (DESIGN.md). */
export const ES2_VM_FILES = ['enabled', 'kick_rate_threshold', 'idle_timeout_us', 'redirect', 'redirect_vcpus', 'halt_poll_ns'] as const;
export type Es2VmFile = (typeof ES2_VM_FILES)[number];

const ES2_VMS_DIR = 'sys/kernel/es2/vms';
const QEMU_RUN_DIR = 'run/libvirt/qemu';

const STATIC_PATHS: ReadonlySet<string> = new Set<string>([
  ...Object.values(KNOB_PATHS),
  ...Object.values(PROBE_PATHS),
  PROVIDER_CONFIG_PATH,
  dirname(PROVIDER_CONFIG_PATH),
]);

// Linux's pid_max is at most 2^22.
const PID_MAX = 4_194_304;
const PID_RE = /^[1-9][0-9]{0,6}$/;
const ES2_VM_RE = new RegExp(`^${ES2_VMS_DIR}/([1-9][0-9]{0,6})(?:/(${ES2_VM_FILES.join('|')}))?$`);
const QEMU_PID_RE = new RegExp(`^${QEMU_RUN_DIR}/([^/]+)\\.pid$`);

/** A QEMU pid as read from a pid file or given by a caller; VALIDATION_FAILED otherwise. */
export function parsePid(text: string): number {
  const trimmed = text.trim();
  const pid = Number(trimmed);
  if (!PID_RE.test(trimmed) || pid > PID_MAX) throw validationFailed(`not a process id: ${JSON.stringify(text)}`);
  return pid;
}

/**
 * Checks a libvirt domain name before it becomes part of a file name (only the
 * `run/libvirt/qemu/<name>.pid` read does that). Without '/' the name and its `.pid` suffix are
 * one path component, so even `..` names the file `...pid` in that directory, as libvirt does.
 */
export function checkDomainName(name: string): string {
  // NAME_MAX is 255 bytes, `.pid` included.
  if (name.length === 0 || Buffer.byteLength(name) > 251 || name.includes('/') || name.includes('\0')) {
    throw validationFailed(`domain name ${JSON.stringify(name)} cannot name a file: it is empty, too long, or has '/' or NUL`);
  }
  return name;
}

function isInside(root: string, path: string): boolean {
  const rel = relative(root, path);
  return rel === '' || (!rel.startsWith(`..${sep}`) && rel !== '..' && !isAbsolute(rel));
}

function isAllowed(rel: string): boolean {
  if (STATIC_PATHS.has(rel) || ES2_VM_RE.test(rel)) return true;
  const pidFile = QEMU_PID_RE.exec(rel);
  if (pidFile?.[1] === undefined) return false;
  checkDomainName(pidFile[1]);
  return true;
}

/** The host tree es2 works on: `/` in production, a temp tree in tests. */
export class HostRoot {
  /** The root with its symlinks resolved. */
  readonly root: string;

  constructor(root: string) {
    try {
      this.root = realpathSync(root);
    } catch (err) {
      throw validationFailed(`host root ${root} cannot be used: ${(err as Error).message}`);
    }
  }

  /**
   * The absolute path of a known host file. Refuses a path not on the list, one that leaves the
   * root lexically, and one whose existing part resolves (through symlinks) outside the root.
   */
  resolve(rel: string): string {
    if (!isAllowed(rel)) throw validationFailed(`${JSON.stringify(rel)} is not a host path es2 uses`);
    const path = resolve(this.root, rel);
    if (!isInside(this.root, path)) throw validationFailed(`${JSON.stringify(rel)} leaves the host root`);
    const real = realExistingPrefix(path);
    if (!isInside(this.root, real)) {
      throw new Es2Error('VALIDATION_FAILED', `${path} resolves to ${real}, outside the host root ${this.root}`);
    }
    return path;
  }

  knob(name: KnobName): string {
    return this.resolve(KNOB_PATHS[name]);
  }

  probe(name: keyof typeof PROBE_PATHS): string {
    return this.resolve(PROBE_PATHS[name]);
  }

  providerConfig(): string {
    return this.resolve(PROVIDER_CONFIG_PATH);
  }

  es2VmDir(pid: number): string {
    return this.resolve(`${ES2_VMS_DIR}/${parsePid(String(pid))}`);
  }

  es2VmFile(pid: number, file: Es2VmFile): string {
    return this.resolve(`${ES2_VMS_DIR}/${parsePid(String(pid))}/${file}`);
  }

  qemuPidFile(domainName: string): string {
    return this.resolve(`${QEMU_RUN_DIR}/${checkDomainName(domainName)}.pid`);
  }
}

/**
 * realpath of the longest existing prefix of `path`, with the rest appended. A dangling symlink
 * on the way is refused: creating through it would land wherever it points.
 */
function realExistingPrefix(path: string): string {
  let existing = path;
  for (;;) {
    try {
      return resolve(realpathSync(existing), relative(existing, path));
    } catch (err) {
      const parent = dirname(existing);
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || parent === existing) throw err;
      if (lstatSync(existing, { throwIfNoEntry: false })?.isSymbolicLink()) {
        throw validationFailed(`${existing} is a symlink to nowhere`);
      }
      existing = parent;
    }
  }
}
