// Starts libvirtd (and virtlogd first: domain starts fail without it) for system tests when they are
// not already running, and stops only what it started. Also builds the diskless domains the
// system and KVM tiers run: firmware boots and idles, enough for pinning, IOThreads and stats.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { randomUUID } from 'node:crypto';

import { Connection, isNoDomain } from '../../src/libvirt/index.js';

export const SYSTEM_URI = 'qemu:///system';

function pidsOf(name: string): number[] {
  const r = spawnSync('pgrep', ['-x', name], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim().split(/\s+/).map(Number) : [];
}

async function canConnect(): Promise<boolean> {
  try {
    const c = await Connection.open(SYSTEM_URI, { events: false });
    await c.close();
    return true;
  } catch {
    return false;
  }
}

export interface Libvirtd {
  /** Stops the daemons this helper started (none when they were already running). */
  stop(): Promise<void>;
  startedByUs: boolean;
}

/** Why the system tier cannot run here, or null when it can. */
export function systemTierUnavailable(): string | null {
  if (process.getuid?.() !== 0) return 'system tests need root to start libvirtd';
  if (!existsSync('/usr/sbin/libvirtd')) return 'libvirtd is not installed (Debian package libvirt-daemon-system)';
  if (!existsSync('/usr/bin/qemu-system-x86_64')) return 'QEMU is not installed (Debian package qemu-system-x86)';
  return null;
}

export async function startLibvirtd(): Promise<Libvirtd> {
  const started: string[] = [];
  if (pidsOf('virtlogd').length === 0) {
    execFileSync('virtlogd', ['-d']);
    started.push('virtlogd');
  }
  if (pidsOf('libvirtd').length === 0) {
    execFileSync('libvirtd', ['-d']);
    started.push('libvirtd');
  }
  const deadline = Date.now() + 30_000;
  while (!(await canConnect())) {
    if (Date.now() > deadline) throw new Error('libvirtd did not accept connections within 30 s');
    await new Promise((r) => setTimeout(r, 200));
  }
  return {
    startedByUs: started.length > 0,
    async stop() {
      // libvirtd first: it holds virtlogd's socket.
      for (const name of [...started].reverse()) await killAndWait(name);
    },
  };
}

export async function killAndWait(name: string, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  for (const pid of pidsOf(name)) {
    try {
      process.kill(pid, signal);
    } catch {
      // already gone
    }
  }
  const deadline = Date.now() + 15_000;
  while (pidsOf(name).length > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
}

export interface DisklessOptions {
  name: string;
  uuid?: string;
  type?: 'qemu' | 'kvm';
  vcpus?: number;
  iothreads?: number;
  extra?: string;
}

/** The diskless guest of DESIGN.md: 48 MiB, firmware only, one virtio user NIC, no balloon. */
export function disklessDomainXml(o: DisklessOptions): string {
  return `<domain type='${o.type ?? 'qemu'}'>
  <name>${o.name}</name>
  <uuid>${o.uuid ?? randomUUID()}</uuid>
  <memory unit='MiB'>48</memory>
  <vcpu placement='static'>${o.vcpus ?? 2}</vcpu>
  ${o.iothreads ? `<iothreads>${o.iothreads}</iothreads>` : ''}
  <os><type arch='x86_64' machine='pc'>hvm</type></os>
  <devices>
    <interface type='user'><model type='virtio'/></interface>
    <memballoon model='none'/>
  </devices>
  ${o.extra ?? ''}
</domain>`;
}

/** Destroys and undefines every domain whose name starts with the prefix. */
export async function removeDomains(conn: Connection, prefix: string): Promise<void> {
  for (const d of await conn.listAllDomains()) {
    if (!d.name.startsWith(prefix)) continue;
    try {
      if (d.id !== null) await conn.domainDestroy(d.uuid);
    } catch (err) {
      if (!isNoDomain(err)) throw err;
    }
    try {
      await conn.domainUndefine(d.uuid);
    } catch (err) {
      if (!isNoDomain(err)) throw err;
    }
  }
}

/** Why /dev/kvm cannot be used here, or null when it can (after opening its permissions). */
export function kvmUnavailable(): string | null {
  if (!existsSync('/dev/kvm')) return '/dev/kvm does not exist on this machine';
  if (process.getuid?.() !== 0) return 'the KVM tier needs root to start libvirtd';
  try {
    // QEMU runs as libvirt-qemu in group kvm; Debian leaves /dev/kvm root-only in containers.
    execFileSync('chgrp', ['kvm', '/dev/kvm']);
    execFileSync('chmod', ['660', '/dev/kvm']);
  } catch (err) {
    return `cannot open /dev/kvm to group kvm: ${(err as Error).message}`;
  }
  const cpuinfo = existsSync('/proc/cpuinfo') ? readFileSync('/proc/cpuinfo', 'utf8') : '';
  if (!/\b(vmx|svm)\b/.test(cpuinfo) && !existsSync('/sys/module/kvm')) return 'the kernel exposes no KVM';
  return null;
}
