// A private libvirt test driver for an es2d child: a node file with several running domains
// (test:///default has one), and capture files to replay as their stats.
import { randomUUID } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { tempDir } from '../helpers/temp.js';

export interface TestDomain {
  name: string;
  uuid: string;
  vcpus: number;
}

function escapeXml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/'/g, '&apos;').replace(/"/g, '&quot;');
}

/** Writes a node file with `names` as running 2-vCPU domains; returns its URI and the domains. */
export function testDriverNode(names: string[], vcpus = 2): { uri: string; domains: TestDomain[] } {
  const domains = names.map((name) => ({ name, uuid: randomUUID(), vcpus }));
  const file = join(tempDir('es2rel-node-'), 'node.xml');
  writeFileSync(file, `<node>
  <cpu><nodes>2</nodes><sockets>1</sockets><cores>8</cores><threads>1</threads><active>16</active><mhz>2000</mhz><model>x86_64</model></cpu>
  <memory>16777216</memory>
${domains.map((d) => `  <domain type='test'>
    <name>${escapeXml(d.name)}</name>
    <uuid>${d.uuid}</uuid>
    <memory>65536</memory>
    <vcpu>${d.vcpus}</vcpu>
    <os><type>hvm</type></os>
  </domain>`).join('\n')}
</node>
`);
  return { uri: `test://${file}`, domains };
}

/**
 * A capture (DESIGN.md format) of `blocks` samples one second apart for each domain: 2 vCPUs with
 * exit counters and a virtio NIC, counters growing steadily (enough I/O for a confident report).
 */
export function captureFile(names: string[], blocks = 10): string {
  const start = 1_764_000_000;
  const out: string[] = [];
  for (let b = 0; b < blocks; b++) {
    out.push(`@ ${start + b}`);
    for (const [i, name] of names.entries()) {
      const n = b + 1;
      out.push(`Domain: '${name}'`, '  state.state=1', '  vcpu.current=2', '  vcpu.maximum=2');
      for (const v of [0, 1]) {
        out.push(`  vcpu.${v}.state=1`, `  vcpu.${v}.exits.sum=${n * (2400 + i * 100)}`, `  vcpu.${v}.io_exits.sum=${n * 1200}`,
          `  vcpu.${v}.halt_exits.sum=${n * 300}`, `  vcpu.${v}.irq_exits.sum=${n * 200}`);
      }
      out.push('  net.count=1', `  net.0.rx.pkts=${n * 1000}`, `  net.0.tx.pkts=${n * 1000}`, '');
    }
  }
  const file = join(tempDir('es2rel-cap-'), 'replay.cap');
  writeFileSync(file, `${out.join('\n')}\n`);
  return file;
}
