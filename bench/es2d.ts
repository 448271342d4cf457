// The real es2d (dist/src/daemon/main.js) as a child process on qemu:///system for the benchmarks
// that measure it from outside: a temp state dir and host root, its log in a file (a pipe left
// unread would stall es2d once full, and reading it would cost the bench process CPU).
//
// test/helpers/es2d.ts does the same for tests, but it registers node:test hooks when imported,
// which would print a TAP summary at the end of `npm run bench`.
//
// On a shared libvirtd a second es2d is not harmless: es2d owns the host, so it adopts the es2
// record of any domain it finds and converges the domain to it, which fights another es2 test's
// own es2d over that test's domains. So es2d is started only while no other domain carries an
// es2 record, and stopped at once (the benchmark then fails, with the reason) if it changes a
// domain this run did not make.

import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, copyFileSync, mkdirSync, openSync, readdirSync, readFileSync, readSync } from 'node:fs';
import { join } from 'node:path';

import { Client } from '../src/cli/client.js';
import { DomainXMLFlags, isNoDomain, type Connection } from '../src/libvirt/index.js';
import { ES2_NS } from '../src/xml/index.js';
import { SYSTEM_URI } from '../test/helpers/libvirtd.js';
import { bin, repoRoot } from '../test/helpers/paths.js';
import { RUN_PREFIX, Unavailable, type Context } from './context.js';
import { sleep } from './measure.js';

export interface Es2d {
  child: ChildProcess;
  pid: number;
  socket: string;
  client: Client;
  logFile: string;
  /** es2d's log so far (JSON lines). */
  logs(): string;
  stop(): Promise<void>;
}

/** The Node flags of deploy/systemd/es2d.service's ExecStart (between node and the script). */
export const UNIT_NODE_FLAGS: string[] = (() => {
  const unit = readFileSync(join(repoRoot, 'deploy', 'systemd', 'es2d.service'), 'utf8');
  const exec = /^ExecStart=\S+((?: --\S+)*) \S+\/daemon\/main\.js /m.exec(unit);
  if (exec === null) throw new Error('deploy/systemd/es2d.service: no ExecStart of the form node [flags] .../daemon/main.js');
  return exec[1]!.trim().split(/\s+/).filter((f) => f !== '');
})();

export interface Es2dOptions {
  statsInterval: number;
}

export async function startEs2d(ctx: Context, options: Es2dOptions): Promise<Es2d> {
  await waitForNoOtherEs2(ctx);
  const dir = ctx.tempDir('es2bench-es2d-');
  const hostRoot = join(dir, 'root');
  // The capability probe reads the real CPU flags; knobs and provider config stay in the temp tree.
  mkdirSync(join(hostRoot, 'proc'), { recursive: true });
  copyFileSync('/proc/cpuinfo', join(hostRoot, 'proc', 'cpuinfo'));
  const socket = join(dir, 'es2d.sock');
  const args = [
    bin.es2d, '--uri', SYSTEM_URI, '--listen', `unix:${socket}`, '--state-dir', join(dir, 'state'),
    '--host-root', hostRoot, '--stats-interval', String(options.statsInterval),
  ];
  // Node's flags as the shipped unit runs es2d; `--profile DIR` adds a CPU profile of each es2d,
  // written when it stops.
  const node = [...UNIT_NODE_FLAGS, ...(ctx.profileDir === undefined ? [] : ['--cpu-prof', `--cpu-prof-dir=${ctx.profileDir}`])];
  const logFile = join(dir, 'es2d.log');
  const fd = openSync(logFile, 'w');
  const child = spawn(process.execPath, [...node, ...args], { stdio: ['ignore', 'ignore', fd] });
  closeSync(fd);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const watch = logWatcher(logFile);
  const watcher = setInterval(() => {
    const why = watch();
    if (why === null) return;
    clearInterval(watcher);
    ctx.noteDisturbance(`es2d stopped: it changed a domain of another test (${why}); another es2d runs on this libvirtd`);
    void stop();
  }, 250);
  const stop = async (): Promise<void> => {
    clearInterval(watcher);
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
    await exited;
    clearTimeout(timer);
  };
  ctx.defer(stop);
  const client = new Client({ endpoint: `unix:${socket}`, timeoutMs: 30_000 });
  const logs = (): string => readFileSync(logFile, 'utf8');
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`es2d exited with ${child.exitCode}:\n${logs()}`);
    if (await client.send('GET', '/readyz').then(() => true, () => false)) break;
    if (Date.now() > deadline) throw new Error(`es2d was not ready within 60 s:\n${logs()}`);
    await sleep(100);
  }
  return { child, pid: child.pid as number, socket, client, logFile, logs, stop };
}

/** Domains this run did not make whose definition, live or persistent, carries an es2 record. */
async function otherEs2Domains(conn: Connection): Promise<string[]> {
  const found: string[] = [];
  for (const d of await conn.listAllDomains()) {
    if (d.name.startsWith(RUN_PREFIX)) continue;
    try {
      const live = d.id === null ? '' : await conn.domainGetXMLDesc(d.uuid);
      const persistent = await conn.domainGetXMLDesc(d.uuid, DomainXMLFlags.INACTIVE);
      if (live.includes(ES2_NS) || persistent.includes(ES2_NS)) found.push(d.name);
    } catch (err) {
      if (!isNoDomain(err)) throw err;
    }
  }
  return found;
}

/**
 * Other es2d processes on qemu:///system (the default URI): each would also converge the bench's
 * domains, and undo what the bench applies.
 */
function otherSystemEs2d(): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    let argv: string[];
    try {
      argv = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
    } catch {
      continue; // gone meanwhile
    }
    if (!argv.some((a) => a.endsWith('/daemon/main.js') || a === bin.es2d)) continue;
    const uri = argv[argv.indexOf('--uri') + 1];
    if (!argv.includes('--uri') || uri === SYSTEM_URI) pids.push(Number(entry));
  }
  return pids;
}

/**
 * Waits (up to 3 minutes, 1 with --quick) until no other es2d runs on qemu:///system and no other
 * domain carries an es2 record: an es2 test is running on this shared libvirtd until then.
 */
async function waitForNoOtherEs2(ctx: Context): Promise<void> {
  const deadline = Date.now() + (ctx.quick ? 60_000 : 180_000);
  for (;;) {
    const pids = otherSystemEs2d();
    const domains = await otherEs2Domains(await ctx.connection());
    if (pids.length === 0 && domains.length === 0) return;
    if (Date.now() > deadline) {
      const what = [
        ...(pids.length === 0 ? [] : [`es2d on ${SYSTEM_URI} (pid ${pids.join(', ')})`]),
        ...(domains.length === 0 ? [] : [`domains with es2 records (${domains.join(', ')})`]),
      ].join(' and ');
      throw new Unavailable(`another es2 test is running on this libvirtd: ${what}; a second es2d would fight it`);
    }
    await sleep(5000);
  }
}

/**
 * Reads what es2d appended to its log since the last call and returns a description of the first
 * change it made to a domain of another test (policy adopted, drift repaired, apply with steps),
 * or null.
 */
function logWatcher(file: string): () => string | null {
  let offset = 0;
  let partial = '';
  const buf = Buffer.alloc(1 << 16);
  return () => {
    const fd = openSync(file, 'r');
    try {
      let n: number;
      while ((n = readSync(fd, buf, 0, buf.length, offset)) > 0) {
        offset += n;
        partial += buf.toString('utf8', 0, n);
      }
    } finally {
      closeSync(fd);
    }
    const lines = partial.split('\n');
    partial = lines.pop() as string;
    for (const line of lines) {
      if (!line.startsWith('{')) continue;
      const e = JSON.parse(line) as { message?: string; domain?: string; steps?: number; action?: string };
      if (e.domain === undefined || e.domain.startsWith(RUN_PREFIX)) continue;
      if (e.message === 'policy adopted from the domain\'s es2 record') return `adopted the es2 record of ${e.domain}`;
      if (e.message === 'drift' && e.action === 'repair') return `repaired drift on ${e.domain}`;
      if (e.message === 'apply' && (e.steps ?? 0) > 0) return `applied ${e.steps} step(s) to ${e.domain}`;
    }
    return null;
  };
}

// The unit of utime and stime in /proc/<pid>/stat: 100 on every Linux architecture Node runs on.
const USER_HZ = 100;

/** CPU time (user + system) of a process so far, in seconds, from /proc/<pid>/stat. */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The command name may hold spaces and parentheses: fields count from the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // utime and stime are fields 14 and 15 of proc(5), here 0-based 11 and 12 (field 3 is index 0).
  return (Number(fields[11]) + Number(fields[12])) / USER_HZ;
}

/** Resident set size of a process in MiB, from /proc/<pid>/status. */
export function rssMiB(pid: number): number {
  return statusMiB(pid, 'VmRSS');
}

/** The largest resident set size the process has had (VmHWM), in MiB. */
export function highWaterMiB(pid: number): number {
  return statusMiB(pid, 'VmHWM');
}

function statusMiB(pid: number, field: string): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB$`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (m === null) throw new Error(`no ${field} for process ${pid}`);
  return Number(m[1]) / 1024;
}
