import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after } from 'node:test';

const made: string[] = [];
// Registered when the test file imports this module (top level), not from inside a hook, where
// node:test would scope it to that hook and remove the directories right away.
after(() => {
  for (const dir of made.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** A temp directory removed when the test file ends. */
export function tempDir(prefix = 'es2-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  made.push(dir);
  return dir;
}

/** A temp tree mirroring the host layout: relative path → file content. */
export function hostTree(files: Record<string, string>): string {
  const root = tempDir('es2-root-');
  for (const [rel, content] of Object.entries(files)) {
    mkdirSync(dirname(join(root, rel)), { recursive: true });
    writeFileSync(join(root, rel), content);
  }
  return root;
}

/** A stock Intel host with APICv and a writable halt_poll_ns (value 200000). */
export const STOCK_HOST: Record<string, string> = {
  'proc/cpuinfo': 'processor\t: 0\nvendor_id\t: GenuineIntel\nflags\t\t: fpu vmx\nvmx flags\t: vnmi posted_intr\n',
  'sys/module/kvm_intel/parameters/enable_apicv': 'Y\n',
  'sys/module/kvm/parameters/halt_poll_ns': '200000\n',
  'sys/module/kvm/parameters/halt_poll_ns_grow': '0\n',
  'sys/module/kvm/parameters/halt_poll_ns_grow_start': '10000\n',
};
