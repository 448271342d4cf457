// Runs the real es2d (dist/src/daemon/main.js) as a child process for integration, system and
// reliability tests: a temp state dir, a temp host root mirroring a stock host, a temp socket.
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';

import { Client } from '../../src/cli/client.js';
import { bin } from './paths.js';
import { hostTree, STOCK_HOST, tempDir } from './temp.js';

export interface Es2dProcess {
  child: ChildProcess;
  socket: string;
  stateDir: string;
  hostRoot: string;
  client: Client;
  /** What es2d logged (JSON lines on stderr) so far. */
  logs(): string;
  /** SIGTERM, then wait for the exit (SIGKILL after 15 s). */
  stop(): Promise<number | null>;
  kill(signal: NodeJS.Signals): Promise<void>;
}

export interface Es2dOptions {
  uri?: string;
  args?: string[];
  /** Reuse a state dir, host root or socket (a restart after a crash). */
  stateDir?: string;
  hostRoot?: string;
  socket?: string;
  /** Wait for /readyz (default true). */
  waitReady?: boolean;
  env?: NodeJS.ProcessEnv;
}

function waitExit(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => child.once('exit', (code) => resolve(code)));
}

export async function startEs2d(options: Es2dOptions = {}): Promise<Es2dProcess> {
  const stateDir = options.stateDir ?? tempDir('es2-state-');
  const hostRoot = options.hostRoot ?? hostTree(STOCK_HOST);
  const socket = options.socket ?? join(tempDir('es2-sock-'), 'es2d.sock');
  const child = spawn(process.execPath, [
    bin.es2d, '--uri', options.uri ?? 'test:///default', '--listen', `unix:${socket}`,
    '--state-dir', stateDir, '--host-root', hostRoot, '--stats-interval', '1', ...(options.args ?? []),
  ], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ...options.env } });
  let logs = '';
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
    logs += chunk;
  });
  const client = new Client({ endpoint: `unix:${socket}`, timeoutMs: 30_000 });
  const proc: Es2dProcess = {
    child, socket, stateDir, hostRoot, client,
    logs: () => logs,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
      const code = await waitExit(child);
      clearTimeout(timer);
      return code;
    },
    async kill(signal) {
      child.kill(signal);
      await waitExit(child);
    },
  };
  if (options.waitReady ?? true) {
    const deadline = Date.now() + 30_000;
    for (;;) {
      if (child.exitCode !== null) throw new Error(`es2d exited with ${child.exitCode}:\n${logs}`);
      const ready = await client.send('GET', '/readyz').then(() => true, () => false);
      if (ready) break;
      if (Date.now() > deadline) {
        await proc.stop();
        throw new Error(`es2d was not ready within 30 s:\n${logs}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  return proc;
}
