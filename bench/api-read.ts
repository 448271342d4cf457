// api-read: GET /v1/domains/{uuid}/savings requests per second on the real es2d (child process,
// qemu:///system, 30 domains, 1 s stats interval) over a bare express hello-world (also a child
// process), both on UNIX sockets, driven by the same keep-alive client in alternating runs.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';

import type { Bench } from './bench.js';
import { cpuSeconds, startEs2d } from './es2d.js';
import { requestsPerSecond } from './load.js';
import { alternate, fmt, median, ratioOfMedians, sleep, spread } from './measure.js';

const CONCURRENCY = 4;

export const apiRead: Bench = {
  name: 'api-read',
  rows: ['api-read'],
  async run(ctx) {
    const fleet = await ctx.fleet();
    const es2d = await startEs2d(ctx, { statsInterval: 1 });
    const helloSocket = join(ctx.tempDir('es2bench-hello-'), 'hello.sock');
    const hello = spawn(process.execPath, [new URL('./hello-server.js', import.meta.url).pathname, helloSocket], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    ctx.defer(async () => {
      if (hello.exitCode === null && hello.signalCode === null) {
        hello.kill('SIGTERM');
        await once(hello, 'exit');
      }
    });
    await new Promise<void>((resolve, reject) => {
      hello.stdout.setEncoding('utf8').on('data', (s: string) => {
        if (s.includes('ready')) resolve();
      });
      hello.once('exit', (code) => reject(new Error(`the hello-world server exited with ${code}`)));
    });
    // Two stats cycles so that the report has a window to compute.
    await sleep(2500);
    const uuid = fleet.uuids[0] as string;
    const savingsPath = `/v1/domains/${uuid}/savings`;
    // Runs of a second or more, so that each spans es2d's 1 s stats cycle the same way.
    const requests = ctx.quick ? 3000 : 10_000;
    const opts = { requests, concurrency: CONCURRENCY };
    const cpu = { es2d: [] as number[], hello: [] as number[] };
    // Server CPU per request, to say where a difference comes from.
    const measured = async (pid: number, socket: string, path: string, into: number[]): Promise<number> => {
      const c0 = cpuSeconds(pid);
      const rps = await requestsPerSecond(socket, path, opts);
      into.push(((cpuSeconds(pid) - c0) / requests) * 1e6);
      return rps;
    };
    const alt = await alternate(
      { run: () => measured(es2d.pid, es2d.socket, savingsPath, cpu.es2d) },
      { run: () => measured(hello.pid as number, helloSocket, '/', cpu.hello) },
      { rounds: ctx.quick ? 4 : 12, warmup: 2 },
    );
    // Where the rest goes: es2d's cheapest endpoint (no libvirt, no store) through the same API
    // framework (logging, validation, routing), against the same hello-world.
    const framework = await alternate(
      { run: () => requestsPerSecond(es2d.socket, '/healthz', opts) },
      { run: () => requestsPerSecond(helloSocket, '/', opts) },
      { rounds: ctx.quick ? 2 : 6, warmup: 1 },
    );
    return [{
      name: 'api-read',
      ratio: ratioOfMedians(alt),
      anchor: 'bare express hello-world, same client, same machine (UNIX socket, keep-alive)',
      detail: `savings ${median(alt.subject).toFixed(0)} req/s vs hello-world ${median(alt.anchor).toFixed(0)} req/s; `
        + `${spread(alt)}; server CPU per request ${median(cpu.es2d).toFixed(0)} µs vs ${median(cpu.hello).toFixed(0)} µs; `
        + `es2d GET /healthz / hello-world ${fmt(ratioOfMedians(framework))} in the same run; `
        + `${requests} requests per run, ${CONCURRENCY} in flight; es2d at a 1 s stats interval over ${fleet.uuids.length} domains`,
      goal: { op: '>=', value: 0.6, text: '>= 0.6' },
    }];
  },
};
