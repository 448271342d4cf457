// What the benchmarks share: temp dirs, libvirtd (started only when not running, stopped only when
// this run started it), one connection and the fleet of 30 diskless TCG domains, all torn down in
// reverse order by cleanup(), also on SIGINT/SIGTERM and on a failed benchmark.
//
// libvirtd is shared with other engineers' tests on development machines: every domain this run
// creates is named es2bench-<pid>-NN, and leftovers of an earlier run are removed only when the
// process that made them is gone.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';

import { Connection, DomainStatsTypes, GetAllDomainStatsFlags, isNoDomain, isOperationInvalid } from '../src/libvirt/index.js';
import {
  disklessDomainXml,
  startLibvirtd,
  SYSTEM_URI,
  systemTierUnavailable,
  type Libvirtd,
} from '../test/helpers/libvirtd.js';
import { sleep } from './measure.js';

export const FLEET_SIZE = 30;
export const NAME_PREFIX = 'es2bench-';
/** Names of every domain this run makes start with it. */
export const RUN_PREFIX = `${NAME_PREFIX}${process.pid}-`;

/** A benchmark that cannot run on this machine; the reason is printed and no figure is written. */
export class Unavailable extends Error {}

export interface Fleet {
  /** UUIDs of the running domains, in name order. */
  uuids: string[];
  names: string[];
  /** Name prefix of this run's domains. */
  prefix: string;
  /** CPU the fleet used once settled, in cores (firmware idling under TCG). */
  idleCores: number;
}

type Cleanup = () => Promise<void> | void;

export class Context {
  readonly quick: boolean;
  /** `--profile DIR`: es2d processes write CPU profiles there. */
  readonly profileDir: string | undefined;
  private disturbance: string | undefined;
  /** Cleanups by scope: [0] lives for the run (libvirtd, fleet), the others for one benchmark. */
  private readonly scopes: Cleanup[][] = [[]];
  private libvirtd: Promise<{ conn: Connection; daemon: Libvirtd }> | undefined;
  private opened: { conn: Connection } | undefined;
  /** Connections replaced after a loss, so far. */
  private reconnects = 0;
  private fleetPromise: Promise<Fleet> | undefined;
  /** Set by cleanup(): a fleet being made stops making more domains. */
  private closing = false;
  private readonly late: Promise<void>[] = [];
  private cleaning: Promise<void> | undefined;

  constructor(options: { quick: boolean; profileDir?: string | undefined }) {
    this.quick = options.quick;
    this.profileDir = options.profileDir;
  }

  /** Something outside the bench spoilt the benchmark in progress: it must report no figure. */
  noteDisturbance(why: string): void {
    this.disturbance ??= why;
  }

  /** The disturbance noted since the last call, if any. */
  takeDisturbance(): string | undefined {
    const why = this.disturbance;
    this.disturbance = undefined;
    return why;
  }

  /** Registers work for the end of the current benchmark; it runs last-in first-out. */
  defer(fn: Cleanup): void {
    if (this.closing) {
      // Made while an interrupted run is being cleaned up: undone at once, and awaited there.
      this.late.push(runAll([fn]));
      return;
    }
    (this.scopes[this.scopes.length - 1] as Cleanup[]).push(fn);
  }

  /** True once cleanup() has begun: nothing new should be started. */
  get interrupted(): boolean {
    return this.closing;
  }

  /** Runs `fn` as one benchmark: what it defers is undone when it ends, whatever the outcome. */
  async scoped<T>(fn: () => Promise<T>): Promise<T> {
    const scope: Cleanup[] = [];
    this.scopes.push(scope);
    try {
      return await fn();
    } finally {
      // cleanup() may have taken this scope already (a signal during the benchmark).
      const i = this.scopes.indexOf(scope);
      if (i >= 0) {
        this.scopes.splice(i, 1);
        await runAll(scope);
      }
    }
  }

  /** Undoes everything, the run-wide resources last. Once: later calls wait for the first. */
  cleanup(): Promise<void> {
    this.cleaning ??= (async () => {
      this.closing = true;
      // Each scope is taken off before it runs, so a benchmark ending meanwhile cannot run it twice.
      while (this.scopes.length > 0) await runAll(this.scopes.pop() as Cleanup[]);
      while (this.late.length > 0) await this.late.shift();
    })();
    return this.cleaning;
  }

  private deferForRun(fn: Cleanup): void {
    if (this.closing) {
      this.late.push(runAll([fn]));
      return;
    }
    (this.scopes[0] as Cleanup[]).push(fn);
  }

  tempDir(prefix: string): string {
    const dir = mkdtempSync(join(tmpdir(), prefix));
    this.defer(() => rmSync(dir, { recursive: true, force: true }));
    return dir;
  }

  /**
   * A connection to qemu:///system, starting libvirtd (and virtlogd) when they are not running.
   * On a shared machine other tests may kill and restart libvirtd: a connection lost that way is
   * replaced by a new one here.
   */
  async connection(): Promise<Connection> {
    const sys = await this.system();
    if (!sys.conn.isOpen) {
      sys.conn = await openPatiently();
      this.reconnects++;
    }
    return sys.conn;
  }

  /**
   * A mark for lostSince(): the connection dropped after it was taken if libvirtd died or was
   * restarted (whether or not a cleanup has reconnected meanwhile).
   */
  connectionMark(): number {
    return this.reconnects;
  }

  lostSince(mark: number): boolean {
    return this.reconnects > mark || (this.opened !== undefined && !this.opened.conn.isOpen);
  }

  private system(): Promise<{ conn: Connection; daemon: Libvirtd }> {
    this.libvirtd ??= (async () => {
      const why = systemTierUnavailable();
      if (why !== null) throw new Unavailable(why);
      const daemon = await startLibvirtd();
      this.deferForRun(() => daemon.stop());
      const sys = { conn: await Connection.open(SYSTEM_URI, { events: false }), daemon };
      this.opened = sys;
      this.deferForRun(() => sys.conn.close());
      return sys;
    })();
    return this.libvirtd;
  }

  /** FLEET_SIZE running diskless TCG domains (48 MiB, 2 vCPUs), made once per run. */
  fleet(): Promise<Fleet> {
    // A fleet that failed half way (libvirtd killed under it) is made again on the next ask.
    this.fleetPromise ??= this.makeFleet().catch((err: unknown) => {
      this.fleetPromise = undefined;
      throw err;
    });
    return this.fleetPromise;
  }

  private async makeFleet(): Promise<Fleet> {
    const conn = await this.connection();
    await removeStale(conn);
    const prefix = RUN_PREFIX;
    // Registered before the first define so that a failure half way still removes what was made;
    // on the connection of that moment, since libvirtd may have been restarted meanwhile.
    // After the fleet is made or has given up, so that no start in flight outlives the removal.
    this.deferForRun(async () => {
      await this.fleetPromise?.catch(() => undefined);
      await removeByPrefix(await this.connection(), prefix);
    });
    await removeByPrefix(conn, prefix); // what an attempt that failed half way left
    const names = Array.from({ length: FLEET_SIZE }, (_, i) => `${prefix}${String(i).padStart(2, '0')}`);
    const uuids: string[] = [];
    const interrupted = (): Error => new Error('interrupted while making the bench domains');
    for (const name of names) {
      if (this.closing) throw interrupted();
      uuids.push((await conn.domainDefineXML(disklessDomainXml({ name, type: 'qemu', vcpus: 2 }))).uuid);
    }
    // Two starts at a time: QEMU start-up is mostly CPU, and this machine has two cores.
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < uuids.length && !this.closing) await conn.domainCreate(uuids[next++] as string);
    };
    await Promise.all([worker(), worker()]);
    if (this.closing) throw interrupted();
    const idleCores = await settle(conn, uuids, () => this.closing);
    return { uuids, names, prefix, idleCores };
  }
}

/**
 * Waits until the fleet has finished booting its firmware: TCG guests burn CPU for some seconds
 * after start, which would load every measurement taken meanwhile. Settled = two consecutive
 * 3-second windows below half a core for all 30 together (about 0.15 core idle on the
 * development machines). Returns the last window's figure.
 */
async function settle(conn: Connection, uuids: string[], stop: () => boolean): Promise<number> {
  const mine = new Set(uuids);
  const cpuNs = async (): Promise<number> => {
    const records = await conn.getAllDomainStats(DomainStatsTypes.CPU_TOTAL, GetAllDomainStatsFlags.ACTIVE);
    return records.filter((r) => mine.has(r.uuid)).reduce((sum, r) => sum + Number(r.stats['cpu.time'] ?? 0), 0);
  };
  const deadline = Date.now() + 180_000;
  let quiet = 0;
  let cores = Number.NaN;
  let prev = await cpuNs();
  let t = performance.now();
  while (quiet < 2) {
    if (stop()) throw new Error('interrupted while the bench domains settled');
    if (Date.now() > deadline) throw new Error(`the bench domains still use ${cores.toFixed(2)} cores 3 minutes after start`);
    await sleep(3000);
    const now = await cpuNs();
    const t2 = performance.now();
    cores = (now - prev) / 1e6 / (t2 - t);
    quiet = cores < 0.5 ? quiet + 1 : 0;
    prev = now;
    t = t2;
  }
  return cores;
}

/**
 * Destroys and undefines every domain named `prefix`*. Unlike the tests' removeDomains it goes on
 * past a domain that stopped or vanished meanwhile (a start still in flight when a run is
 * interrupted), and fails only at the end, naming what it could not remove.
 */
async function removeByPrefix(conn: Connection, prefix: string): Promise<void> {
  const failed: string[] = [];
  for (const d of await conn.listAllDomains()) {
    if (!d.name.startsWith(prefix)) continue;
    try {
      await conn.domainDestroy(d.uuid).catch((err: unknown) => {
        if (!isNoDomain(err) && !isOperationInvalid(err)) throw err;
      });
      await conn.domainUndefine(d.uuid).catch((err: unknown) => {
        if (!isNoDomain(err)) throw err;
      });
    } catch (err) {
      failed.push(`${d.name}: ${(err as Error).message}`);
    }
  }
  if (failed.length > 0) throw new Error(`could not remove ${failed.join('; ')}`);
}

/** Opens qemu:///system, waiting up to 30 s for a libvirtd that someone is restarting. */
async function openPatiently(): Promise<Connection> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      return await Connection.open(SYSTEM_URI, { events: false });
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await sleep(500);
    }
  }
}

async function runAll(cleanups: Cleanup[]): Promise<void> {
  while (cleanups.length > 0) {
    const fn = cleanups.pop() as Cleanup;
    try {
      await fn();
    } catch (err) {
      process.stderr.write(`bench: cleanup step failed: ${(err as Error).message}\n`);
    }
  }
}

/** Domains of earlier bench runs whose process is gone (killed before its cleanup ran). */
async function removeStale(conn: Connection): Promise<void> {
  const stale = new Set<number>();
  for (const d of await conn.listAllDomains()) {
    const m = new RegExp(`^${NAME_PREFIX}(\\d+)-`).exec(d.name);
    if (m !== null && !processAlive(Number(m[1]))) stale.add(Number(m[1]));
  }
  for (const pid of stale) await removeByPrefix(conn, `${NAME_PREFIX}${pid}-`);
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
