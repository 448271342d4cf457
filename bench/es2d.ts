// The real es2d (dist/src/daemon/main.js) as a child process on qemu:///system for the benchmarks
// that measure it from outside: a temp state dir and host root, its log in a file (a pipe left
// unread would stall es2d once full, and reading it would cost the bench process CPU).
//
// test/helpers/es2d.ts does the same for tests, but it registers node:test hooks when imported,
// which would print a TAP summary at the end of `npm run bench`.

import { spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, mkdirSync, openSync, closeSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { Client } from '../src/cli/client.js';
import { SYSTEM_URI } from '../test/helpers/libvirtd.js';
import { bin } from '../test/helpers/paths.js';
import type { Context } from './context.js';
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

export interface Es2dOptions {
  statsInterval: number;
  /** Listen on this UNIX socket path; default a temp one. */
  socket?: string;
  /** es2d.yaml content, for settings that have no flag. */
  config?: string;
  /** Node options for the es2d process (`--cpu-prof` when profiling a missed goal). */
  nodeArgs?: string[];
}

export async function startEs2d(ctx: Context, options: Es2dOptions): Promise<Es2d> {
  const dir = ctx.tempDir('es2bench-es2d-');
  const hostRoot = join(dir, 'root');
  // The capability probe reads the real CPU flags; knobs and provider config stay in the temp tree.
  mkdirSync(join(hostRoot, 'proc'), { recursive: true });
  copyFileSync('/proc/cpuinfo', join(hostRoot, 'proc', 'cpuinfo'));
  const socket = options.socket ?? join(dir, 'es2d.sock');
  const args = [
    bin.es2d, '--uri', SYSTEM_URI, '--listen', `unix:${socket}`, '--state-dir', join(dir, 'state'),
    '--host-root', hostRoot, '--stats-interval', String(options.statsInterval),
  ];
  if (options.config !== undefined) {
    writeFileSync(join(dir, 'es2d.yaml'), options.config);
    args.push('--config', join(dir, 'es2d.yaml'));
  }
  const logFile = join(dir, 'es2d.log');
  const fd = openSync(logFile, 'w');
  const child = spawn(process.execPath, [...(options.nodeArgs ?? []), ...args], { stdio: ['ignore', 'ignore', fd] });
  closeSync(fd);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async (): Promise<void> => {
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
