// The shipped libvirt hook, run as libvirt runs it, and the hook as deploy/install.sh renders it:
// settings written under the #! line, because libvirt runs hooks with a scrubbed environment.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { repoRoot } from './paths.js';

export const HOOK_SCRIPT = join(repoRoot, 'deploy', 'libvirt', 'hooks', 'qemu.d', '50-es2');

/** The hook's text with `settings` (ES2_SOCKET, ES2_HOOK_TIMEOUT, ...) baked in, as install.sh does. */
export function renderHook(settings: Record<string, string>): string {
  const [shebang, ...rest] = readFileSync(HOOK_SCRIPT, 'utf8').split('\n');
  const lines = Object.entries(settings).map(([k, v]) => `${k}=${v}`);
  return [shebang!, '# Written by the test:', ...lines, ...rest].join('\n');
}

export interface HookRun { code: number | null; stdout: string; stderr: string; ms: number }

/** The hook script as libvirt runs it: `<name> <op> <subop> <extra>`, the domain XML on stdin. */
export function runHook(args: string[], stdin: string, env: NodeJS.ProcessEnv): Promise<HookRun> {
  const start = performance.now();
  return new Promise((resolve) => {
    const child = spawn(HOOK_SCRIPT, args, { env: { PATH: process.env.PATH, ...env } });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    // The hook does not read stdin for operations it does not forward: a closed pipe is no failure.
    child.stdin.on('error', () => undefined);
    child.on('close', (code) => resolve({ code, stdout, stderr, ms: performance.now() - start }));
    child.stdin.end(stdin);
  });
}
