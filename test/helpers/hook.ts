// The shipped libvirt hook, and the hook as deploy/install.sh renders it: settings written under
// the #! line, because libvirt runs hooks with a scrubbed environment.
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
