// One long-lived `virsh` process fed commands on stdin: the apply-latency anchor times a batch of
// commands in an open session, so virsh's start-up and connection are not part of the figure.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { once } from 'node:events';
import { performance } from 'node:perf_hooks';

import type { Context } from './context.js';

export class VirshSession {
  private out = '';
  private err = '';
  private marker = 0;
  /** The batch in progress: resolved from the data handler, so waiting costs no CPU. */
  private waiting: { line: RegExp; resolve: () => void; reject: (e: Error) => void } | undefined;

  private constructor(private readonly child: ChildProcessWithoutNullStreams) {
    child.stdout.setEncoding('utf8').on('data', (s: string) => {
      this.out += s;
      if (this.waiting !== undefined && this.waiting.line.test(this.out)) {
        const { resolve } = this.waiting;
        this.waiting = undefined;
        resolve();
      }
    });
    child.stderr.setEncoding('utf8').on('data', (s: string) => {
      this.err += s;
    });
    child.on('exit', (code) => {
      this.waiting?.reject(new Error(`virsh exited with ${code}: ${this.err}`));
      this.waiting = undefined;
    });
  }

  /** Opens the session and its libvirt connection (`uri` makes virsh connect). */
  static async open(ctx: Context, uri: string): Promise<VirshSession> {
    const child = spawn('virsh', ['-c', uri], { stdio: ['pipe', 'pipe', 'pipe'] });
    const session = new VirshSession(child);
    ctx.defer(async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.stdin.end('quit\n');
      await once(child, 'exit');
    });
    await session.run(['uri']);
    return session;
  }

  /**
   * Runs the commands and resolves once virsh has done them all, with the milliseconds that took.
   * virsh reports failures on stderr, which is checked when the batch is done.
   */
  async run(commands: readonly string[]): Promise<number> {
    for (const c of commands) if (c.includes('\n')) throw new Error(`a virsh command cannot span lines: ${c}`);
    const done = `__es2bench_done_${++this.marker}__`;
    this.out = '';
    this.err = '';
    // The marker comes back twice: echoed after the prompt, then alone on a line as the output.
    const finished = new Promise<void>((resolve, reject) => {
      this.waiting = { line: new RegExp(`^${done}$`, 'm'), resolve, reject };
    });
    const t0 = performance.now();
    this.child.stdin.write(`${commands.join('\n')}\necho ${done}\n`);
    await finished;
    const elapsed = performance.now() - t0;
    // stderr travels on its own pipe: give a late error line a moment to arrive.
    await new Promise((r) => setTimeout(r, 20));
    if (/^error:/m.test(this.err)) throw new Error(`virsh: ${this.err.trim()}`);
    return elapsed;
  }
}
