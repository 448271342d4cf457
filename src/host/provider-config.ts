// The Nova provider config file (schema 1.0) that turns the capability probe into CUSTOM_ES2_*
// traits on this compute node's resource provider, so Placement can send ES2 flavors to capable
// hosts. nova-compute reads provider_config_location only when it starts: a changed file takes
// effect at its next restart, which is why the writer tells the caller whether it changed.
import { randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, mkdirSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

import { stringify } from 'yaml';

import { readTextFile } from './files.js';
import { PROVIDER_CONFIG_PATH, type HostRoot } from './paths.js';
import type { CapabilityReport } from './probe.js';

export const ES2_TRAITS = {
  /** es2d runs on the host. */
  capable: 'CUSTOM_ES2_CAPABLE',
  postedInterrupts: 'CUSTOM_ES2_POSTED_INTERRUPTS',
  kernel: 'CUSTOM_ES2_KERNEL',
  haltPoll: 'CUSTOM_ES2_HALT_POLL',
  kvmExitStats: 'CUSTOM_ES2_KVM_EXIT_STATS',
} as const;

export function providerTraits(report: CapabilityReport): string[] {
  const traits: string[] = [ES2_TRAITS.capable];
  if (report.postedInterrupts.supported === true) traits.push(ES2_TRAITS.postedInterrupts);
  if (report.es2Kernel.present) traits.push(ES2_TRAITS.kernel);
  if (report.haltPoll.halt_poll_ns.writable) traits.push(ES2_TRAITS.haltPoll);
  if (report.libvirt.kvmExitStats === true) traits.push(ES2_TRAITS.kvmExitStats);
  return traits.sort();
}

/** The file's text: one provider, every compute node this nova-compute manages. */
export function renderProviderConfig(traits: string[]): string {
  const doc = {
    meta: { schema_version: '1.0' },
    providers: [{ identification: { uuid: '$COMPUTE_NODE' }, traits: { additional: traits } }],
  };
  return `# Written by es2d from its host capability probe; es2d rewrites it when capabilities change.\n${stringify(doc)}`;
}

export interface ProviderConfigResult {
  path: string;
  traits: string[];
  /** The file was (re)written; nova-compute picks it up at its next start. */
  changed: boolean;
}

/** Writes `<host-root>/etc/nova/provider_config/es2.yaml` atomically, only when its content changes. */
export function writeProviderConfig(host: HostRoot, report: CapabilityReport): ProviderConfigResult {
  const traits = providerTraits(report);
  const text = renderProviderConfig(traits);
  mkdirSync(host.resolve(dirname(PROVIDER_CONFIG_PATH)), { recursive: true, mode: 0o755 });
  const path = host.providerConfig();
  if (readTextFile(path) === text) return { path, traits, changed: false };
  // nova-compute loads every *.yaml in the directory: the temp name must not end in .yaml.
  const temp = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  try {
    const fd = openSync(temp, 'wx', 0o644);
    try {
      writeSync(fd, text);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(temp, path);
  } catch (err) {
    rmSync(temp, { force: true });
    throw err;
  }
  return { path, traits, changed: true };
}
