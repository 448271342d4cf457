// hook-overhead: domain start time (virDomainCreate until it returns) with the es2 hook installed
// over without, es2d running and answering in both.
//
// The hook is installed as deploy/install.sh renders it: ES2_SOCKET (the bench's es2d) and curl's
// path written under its #! line, because libvirt passes hooks no environment. libvirtd looks for hook scripts when it starts and when it reloads (SIGHUP), so
// the hook goes in, libvirtd reloads once, and the two sides then differ only in the script's
// execute bit, which libvirt checks on every call (virHookCall). The side without the hook still
// has libvirt format the domain XML for a hook and read the hooks directory: what any host with
// any qemu hook pays. At the end the hook is removed and libvirtd reloaded again, so it forgets it.
//
// While installed, the hook runs for every domain start on this libvirtd, other engineers' too;
// it is installed only for the minute or two this benchmark takes, and always removed.

import { execFile, execFileSync, spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readdirSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';

import { Connection } from '../src/libvirt/index.js';
import { renderHook } from '../test/helpers/hook.js';
import { SYSTEM_URI } from '../test/helpers/libvirtd.js';
import type { Bench } from './bench.js';
import { Unavailable } from './context.js';
import { startEs2d } from './es2d.js';
import { alternate, fmt, median, ms, msPerCall, ratioOfMedians, sleep, spread } from './measure.js';

const HOOKS = '/etc/libvirt/hooks';
const HOOK_DIR = join(HOOKS, 'qemu.d');
// Named for this run, so that it never replaces or removes a 50-es2 someone else installed.
const HOOK = join(HOOK_DIR, `50-es2bench-${process.pid}`);
// A hook that does nothing (`exit 0`): what libvirt charges a start for running any hook at all.
const NOOP_HOOK = join(HOOK_DIR, `50-es2bench-${process.pid}-noop`);

// After a destroy: the stop and release hooks and es2d's reactions finish before the next start.
const SETTLE_MS = 700;

function libvirtdPid(): number {
  const pids = execFileSync('pgrep', ['-x', 'libvirtd'], { encoding: 'utf8' }).trim().split(/\s+/).map(Number);
  if (pids.length !== 1) throw new Error(`expected one libvirtd, found ${pids.length}`);
  return pids[0] as number;
}

/** SIGHUP: libvirtd looks for hook scripts again (and reloads its drivers' configs). */
async function reloadLibvirtd(): Promise<void> {
  process.kill(libvirtdPid(), 'SIGHUP');
  // The reload runs on a thread of its own; a new connection answering means it is through.
  await sleep(1000);
  const c = await Connection.open(SYSTEM_URI, { events: false });
  await c.getLibVersion();
  await c.close();
}

/** How many hook calls for `op` es2d has answered for the domain, from its log. */
function answered(logs: string, domain: string, op: string): number {
  let n = 0;
  for (const line of logs.split('\n')) {
    if (!line.includes('"message":"hook"')) continue;
    const entry = JSON.parse(line) as { domain?: string; op?: string };
    if (entry.domain === domain && entry.op === op) n++;
  }
  return n;
}

export const hookOverhead: Bench = {
  name: 'hook-overhead',
  rows: ['hook-overhead'],
  async run(ctx) {
    if (process.getuid?.() !== 0) throw new Unavailable('installing a libvirt hook needs root');
    const fleet = await ctx.fleet();
    const conn = await ctx.connection();

    const es2d = await startEs2d(ctx, { statsInterval: 10 });
    if (!/^\/[A-Za-z0-9._/+-]+$/.test(es2d.socket)) throw new Error(`socket path ${es2d.socket} cannot go on a #! line`);

    // The domain started and stopped: one of the fleet, so that at most 30 run at any time.
    const uuid = fleet.uuids[0] as string;
    const name = fleet.names[0] as string;
    await conn.domainDestroy(uuid);
    ctx.defer(async () => {
      const c = await ctx.connection();
      if (!(await c.domainGetInfo(uuid)).active) await c.domainCreate(uuid);
    });

    // Install (see install.sh: the hook is rendered from its #! line on).
    const made = [HOOKS, HOOK_DIR].filter((d) => !existsSync(d));
    for (const d of made) mkdirSync(d, { mode: 0o755 });
    const curl = execFileSync('sh', ['-c', 'command -v curl'], { encoding: 'utf8' }).trim();
    writeFileSync(HOOK, renderHook({ ES2_CURL: curl, ES2_SOCKET: es2d.socket }), { mode: 0o755 });
    writeFileSync(NOOP_HOOK, '#!/bin/sh\nexit 0\n', { mode: 0o644 });
    ctx.defer(async () => {
      rmSync(HOOK, { force: true });
      rmSync(NOOP_HOOK, { force: true });
      for (const d of made.reverse()) rmdirSync(d);
      await reloadLibvirtd();
    });
    await reloadLibvirtd();
    // Hooks of others (an installed es2, other tests) run on both sides alike: named in the detail.
    const others = readdirSync(HOOK_DIR).filter((f) => join(HOOK_DIR, f) !== HOOK && join(HOOK_DIR, f) !== NOOP_HOOK);

    const withHook = (on: boolean, file = HOOK) => ({
      async run(): Promise<number> {
        chmodSync(file, on ? 0o755 : 0o644);
        return msPerCall(() => conn.domainCreate(uuid));
      },
      async reset(): Promise<void> {
        await conn.domainDestroy(uuid);
        await sleep(SETTLE_MS);
      },
    });
    const rounds = ctx.quick ? 5 : 15;
    const warmup = 2;
    // By default no start waits for es2d (src and docs: the hook forwards prepare only when
    // fail-closed); the release after each start's destroy is forwarded, which proves the hook ran.
    const before = answered(es2d.logs(), name, 'release');
    const alt = await alternate(withHook(true), withHook(false), { rounds, warmup });
    const calls = answered(es2d.logs(), name, 'release') - before;
    if (calls !== rounds + warmup) {
      throw new Error(`es2d answered ${calls} 'release' hook calls for ${rounds + warmup} stops with the hook: the measurement is not of the hook`);
    }

    // The same with ES2_HOOK_FAILURE=fail, where es2d must answer prepare before QEMU starts.
    writeFileSync(HOOK, renderHook({ ES2_CURL: curl, ES2_SOCKET: es2d.socket, ES2_HOOK_FAILURE: 'fail' }), { mode: 0o644 });
    const failPrepares = answered(es2d.logs(), name, 'prepare');
    const failClosed = await alternate(withHook(true), withHook(false), { rounds: ctx.quick ? 5 : 11, warmup: 1 });
    const failCalls = answered(es2d.logs(), name, 'prepare') - failPrepares;
    if (failCalls !== (ctx.quick ? 5 : 11) + 1) throw new Error(`fail-closed: es2d answered ${failCalls} 'prepare' calls`);
    writeFileSync(HOOK, renderHook({ ES2_CURL: curl, ES2_SOCKET: es2d.socket }), { mode: 0o644 });

    // What libvirt alone charges for a hook (forking from libvirtd, the XML on stdin, waiting), with
    // a hook that does nothing: the part of the overhead no hook can avoid.
    chmodSync(HOOK, 0o644);
    const noop = await alternate(withHook(true, NOOP_HOOK), withHook(false, NOOP_HOOK), { rounds: ctx.quick ? 5 : 11, warmup: 1 });
    chmodSync(NOOP_HOOK, 0o644);

    // What one forwarded hook call costs, next to starting Node alone (what each call cost when the
    // hook was a Node script).
    const xml = await conn.domainGetXMLDesc(uuid);
    chmodSync(HOOK, 0o755);
    const hookCall = (): Promise<void> => runWithInput(HOOK, [name, 'release', 'end', '-'], xml);
    const nodeAlone = (): Promise<void> => promisify(execFile)(process.execPath, ['-e', '']).then(() => undefined);
    const per = await alternate({ run: () => msPerCall(hookCall) }, { run: () => msPerCall(nodeAlone) }, { rounds: ctx.quick ? 5 : 15, warmup: 1 });

    return [{
      name: 'hook-overhead',
      ratio: ratioOfMedians(alt),
      anchor: 'domain start time without the hook (script not executable; libvirtd loaded with it), es2d running',
      detail: `start ${ms(median(alt.subject))} with vs ${ms(median(alt.anchor))} without; ${spread(alt)}; `
        + `3 hook calls per start, none forwarded (es2d answered the release of every stop); `
        + `with ES2_HOOK_FAILURE=fail (prepare forwarded): ${fmt(ratioOfMedians(failClosed))} (start ${ms(median(failClosed.subject))} vs ${ms(median(failClosed.anchor))}); `
        + `one forwarded hook call (sh + curl + es2d) ${ms(median(per.subject))} against Node start-up alone ${ms(median(per.anchor))}; `
        + `a hook that does nothing (exit 0): ${fmt(ratioOfMedians(noop))} (start ${ms(median(noop.subject))} vs ${ms(median(noop.anchor))}, ${spread(noop)}); `
        + `TCG domain, ${fleet.uuids.length - 1} others running; `
        + `other qemu hooks present: ${others.length === 0 ? 'none' : others.join(', ')}`,
      goal: { op: '<=', value: 1.1, text: '<= 1.10' },
    }];
  },
};

/** Runs an executable with `input` on stdin, as libvirt runs a hook; rejects on a non-zero exit. */
function runWithInput(file: string, args: string[], input: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { stdio: ['pipe', 'ignore', 'ignore'] });
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`${file} exited with ${code}`))));
    child.stdin.end(input);
  });
}
