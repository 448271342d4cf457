// The README's run command: es2d on libvirt's embedded test driver (test:///default, no libvirtd)
// with a throwaway state dir, host root and socket, so a newcomer can call the API and the CLI at
// once. The test driver has no KVM exit counters: savings are replayed from demo/*.cap, and the
// banner says so.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';

import { packageFile, packageRoot } from '../package/root.js';
import { baselineFromWindow } from '../savings/index.js';
import { captureSamples, parseCapture } from '../stats/index.js';
import { Store } from '../store/index.js';
import { Connection } from '../libvirt/index.js';
import { readFileSync } from 'node:fs';
import { resolveConfig } from './config.js';
import { Daemon } from './daemon.js';
import { createLogger } from './logger.js';

// What a stock Intel host with APICv shows under /sys and /proc, for the probe and the knobs.
const HOST_TREE: Record<string, string> = {
  'proc/cpuinfo': 'processor\t: 0\nvendor_id\t: GenuineIntel\nflags\t\t: fpu vmx\nvmx flags\t: vnmi posted_intr\n',
  'sys/module/kvm_intel/parameters/enable_apicv': 'Y\n',
  'sys/module/kvm/parameters/halt_poll_ns': '200000\n',
  'sys/module/kvm/parameters/halt_poll_ns_grow': '0\n',
  'sys/module/kvm/parameters/halt_poll_ns_grow_start': '10000\n',
};

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'es2-demo-'));
  const hostRoot = join(dir, 'host');
  for (const [rel, content] of Object.entries(HOST_TREE)) {
    mkdirSync(dirname(join(hostRoot, rel)), { recursive: true });
    writeFileSync(join(hostRoot, rel), content);
  }
  const stateDir = join(dir, 'state');
  const socket = join(dir, 'es2d.sock');
  const before = packageFile('demo', 'test-before.cap');
  const after = packageFile('demo', 'test-after.cap');

  // The baseline as es2d would have taken it before ES2 was enabled: from the "before" capture.
  const conn = await Connection.open('test:///default', { events: false });
  const uuid = (await conn.lookupDomainByName('test')).uuid;
  await conn.close();
  const baseline = baselineFromWindow(captureSamples(parseCapture(readFileSync(before, 'utf8'), before)).get('test') ?? []);
  const store = Store.open(stateDir);
  if (baseline !== null) store.putBaseline(uuid, baseline);
  store.close();

  const config = resolveConfig({ uri: 'test:///default', listen: [`unix:${socket}`], stateDir, hostRoot, statsInterval: 2, logLevel: 'warn' });
  const daemon = await Daemon.start({ ...config, statsReplay: after, providerConfig: true }, createLogger('warn'));
  await daemon.waitReady();

  const cli = `node ${relative(process.cwd(), packageFile('dist', 'src', 'cli', 'main.js')) || packageFile('dist', 'src', 'cli', 'main.js')} --endpoint unix:${socket}`;
  process.stdout.write(`
es2d is running on libvirt's embedded test driver (test:///default): no libvirtd, one running
domain named "test". State, host root and socket are throwaway, under ${dir}.

  NOTE: the test driver has no KVM exit counters. The savings below are REPLAYED from
  ${relative(packageRoot, before)} (baseline) and ${relative(packageRoot, after)} (current), synthetic captures in
  the format of \`virsh domstats --raw\`; on a real host es2d reads libvirt's bulk stats.

Try, in another terminal (from ${packageRoot}):
  ${cli} host
  ${cli} domains
  ${cli} plan test --pin 0=2 --label 0=io --iothreads 1 --iothread-cpuset 5 --poll-max-ns 32768
  ${cli} enable test --pin 0=2,1=3 --label 0=io,1=compute --iothreads 1 --poll-max-ns 32768 --halt-poll-ns 400000
  ${cli} show test
  ${cli} savings --watch
  ${cli} disable test
  curl -s --unix-socket ${socket} http://localhost/metrics | grep ^es2_
  cat ${join(hostRoot, 'sys/module/kvm/parameters/halt_poll_ns')}     # the knob es2 holds

Ctrl-C stops es2d and removes ${dir}.
`);
  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  await daemon.stop();
  rmSync(dir, { recursive: true, force: true });
}

await main();
