// Real libvirtd + QEMU (TCG) for the reliability scenarios: libvirtd started only when it is not
// running (and stopped only then), diskless domains named es2rel-<scenario>-<pid>-<n>, always
// removed, and how to read a domain's live ES2 state independently of es2d.
import { spawnSync } from 'node:child_process';

import {
  Connection,
  DomainModificationImpact,
  DomainStatsTypes,
  DomainXMLFlags,
} from '../../src/libvirt/index.js';
import { readRecordedPolicy } from '../../src/xml/index.js';
import type { Policy } from '../../src/policy/index.js';
import { until } from '../helpers/wait.js';
import { disklessDomainXml, removeDomains, startLibvirtd, SYSTEM_URI, systemTierUnavailable, type Libvirtd } from '../helpers/libvirtd.js';

export { SYSTEM_URI, systemTierUnavailable } from '../helpers/libvirtd.js';

/** Whether a process of that name runs on this machine (whoever started it). */
export function running(name: string): boolean {
  return spawnSync('pgrep', ['-x', name]).status === 0;
}

/**
 * Why a scenario that kills or restarts libvirtd cannot run here, or null: it needs the system
 * tier and a libvirtd of its own (one already running is shared with others and not ours to kill).
 */
export function ownLibvirtdUnavailable(): string | null {
  return systemTierUnavailable() ?? (running('libvirtd')
    ? 'libvirtd was already running when the test began, so it is not this test\'s to kill or restart (a fresh CI machine runs it)'
    : null);
}

export const LIVE = DomainModificationImpact.AFFECT_LIVE;

export interface SystemDomains {
  libvirtd: Libvirtd;
  conn: Connection;
  prefix: string;
  uuids: string[];
  names: string[];
  /** Removes the domains, closes the connection, stops libvirtd if this started it. */
  cleanup(): Promise<void>;
}

/** libvirtd running, `count` diskless TCG domains defined and started; `cleanup` removes them. */
export async function systemDomains(scenario: string, count: number, vcpus = 2): Promise<SystemDomains> {
  const libvirtd = await startLibvirtd();
  const conn = await Connection.open(SYSTEM_URI, { events: false });
  const prefix = `es2rel-${scenario}-${process.pid}-`;
  const state: SystemDomains = {
    libvirtd, conn, prefix, uuids: [], names: [],
    async cleanup() {
      // The test may have replaced the connection (libvirtd restarted); use whichever is open.
      const c = state.conn.isOpen ? state.conn : await Connection.open(SYSTEM_URI, { events: false });
      await removeDomains(c, prefix);
      await c.close();
      await state.libvirtd.stop();
    },
  };
  await removeDomains(conn, prefix);
  for (let i = 0; i < count; i++) {
    const ref = await conn.domainDefineXML(disklessDomainXml({ name: `${prefix}${i}`, vcpus }));
    await conn.domainCreate(ref.uuid);
    state.uuids.push(ref.uuid);
    state.names.push(ref.name);
  }
  return state;
}

export interface LiveState {
  active: boolean;
  /** vCPU → CPUs, live. */
  pins: number[][];
  /** IOThread id → poll-max-ns, live. */
  pollMaxNs: Map<number, number>;
  /** The es2 element of the live XML (null: none). */
  recorded: Policy | null;
  /** The es2 element of the persistent XML. */
  persistentRecorded: Policy | null;
}

export async function liveState(conn: Connection, uuid: string): Promise<LiveState> {
  const info = await conn.domainGetInfo(uuid);
  const persistentRecorded = readRecordedPolicy(await conn.domainGetXMLDesc(uuid, DomainXMLFlags.INACTIVE));
  if (!info.active) return { active: false, pins: [], pollMaxNs: new Map(), recorded: null, persistentRecorded };
  const [stats] = await conn.domainListGetStats([uuid], DomainStatsTypes.IOTHREAD);
  const pollMaxNs = new Map<number, number>();
  for (const [k, v] of Object.entries(stats?.stats ?? {})) {
    const m = /^iothread\.(\d+)\.poll-max-ns$/.exec(k);
    if (m !== null) pollMaxNs.set(Number(m[1]), Number(v));
  }
  return {
    active: true,
    pins: await conn.domainGetVcpuPinInfo(uuid, LIVE),
    pollMaxNs,
    recorded: readRecordedPolicy(await conn.domainGetXMLDesc(uuid)),
    persistentRecorded,
  };
}

/**
 * Why a running domain's live state is not what `policy` asks for (empty: it is). Checks what
 * the test policies set: vCPU pins, IOThread poll-max-ns, and the es2 record (live and persistent).
 */
export function mismatches(policy: Policy | null, live: LiveState, hostCpus: number[]): string[] {
  const out: string[] = [];
  const same = (a: unknown, b: unknown): boolean => canonical(a) === canonical(b);
  if (policy === null || !policy.enabled) {
    if (live.recorded !== null) out.push(`live XML still records ${JSON.stringify(live.recorded)}`);
    if (live.persistentRecorded !== null) out.push(`persistent XML still records ${JSON.stringify(live.persistentRecorded)}`);
    return out;
  }
  if (!same(live.recorded, policy)) out.push(`live record ${JSON.stringify(live.recorded)} is not ${JSON.stringify(policy)}`);
  if (!same(live.persistentRecorded, policy)) out.push(`persistent record ${JSON.stringify(live.persistentRecorded)} is not ${JSON.stringify(policy)}`);
  for (const v of policy.vcpus ?? []) {
    if (v.cpuset === undefined) continue;
    const want = expandCpuset(v.cpuset, hostCpus);
    if (!same(live.pins[v.vcpu], want)) out.push(`vCPU ${v.vcpu} is pinned to ${JSON.stringify(live.pins[v.vcpu])}, not ${JSON.stringify(want)}`);
  }
  const poll = policy.hybridIo?.pollMaxNs;
  if (poll !== undefined && live.active) {
    const values = [...live.pollMaxNs.values()];
    if (values.length === 0 || values.some((p) => p !== poll)) out.push(`IOThread poll-max-ns ${JSON.stringify(values)}, not ${poll}`);
  }
  return out;
}

/** `0-1`, `1`, `0,1` within the host's CPUs (the test policies use nothing fancier). */
export function expandCpuset(text: string, hostCpus: number[]): number[] {
  const set = new Set<number>();
  for (const part of text.split(',')) {
    const [a, b] = part.split('-').map(Number);
    for (let c = a!; c <= (b ?? a)!; c++) set.add(c);
  }
  return hostCpus.filter((c) => set.has(c));
}

/** JSON with object keys sorted, for comparing policies whatever order their fields came in. */
export function canonical(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => (v !== null && typeof v === 'object' && !Array.isArray(v)
    ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => a.localeCompare(b)))
    : v));
}

/**
 * Waits until the running domain's live state is `policy` (30 s); fails naming what still
 * differs, and counts it as data lost in `onLost`.
 */
export async function untilConverged(conn: Connection, uuid: string, policy: Policy | null, hostCpus: number[], what: string, onLost: () => void): Promise<void> {
  let last: string[] = [];
  try {
    await until(what, async () => {
      last = mismatches(policy, await liveState(conn, uuid), hostCpus);
      return last.length === 0 ? true : undefined;
    }, 30_000);
  } catch {
    onLost();
    throw new Error(`${what}: still ${last.join('; ')}`);
  }
}
