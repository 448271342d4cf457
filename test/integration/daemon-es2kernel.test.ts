// es2d on a host with the ES2 kernel interface (a temp sysfs tree with sys/kernel/es2/, the
// domain's QEMU pid file and its per-VM directory): thresholds, redirection and per-VM halt
// polling go to the per-VM files instead of being "not applicable", and removal disables ES2.
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';

import { Client } from '../../src/cli/client.js';
import { resolveConfig } from '../../src/daemon/config.js';
import { Daemon } from '../../src/daemon/daemon.js';
import { silentLogger } from '../../src/daemon/logger.js';
import { Connection } from '../../src/libvirt/index.js';
import { hostTree, STOCK_HOST, tempDir } from '../helpers/temp.js';

const PID = 4242;
const VM = `sys/kernel/es2/vms/${PID}`;

describe('es2d with the ES2 kernel interface', () => {
  let daemon: Daemon;
  let client: Client;
  let root: string;
  const read = (file: string): string => readFileSync(join(root, VM, file), 'utf8').trim();

  before(async () => {
    root = hostTree({
      ...STOCK_HOST,
      'sys/kernel/es2/version': '1\n',
      'run/libvirt/qemu/test.pid': `${PID}\n`,
      [`${VM}/enabled`]: '0\n',
      [`${VM}/kick_rate_threshold`]: '0\n',
      [`${VM}/idle_timeout_us`]: '0\n',
      [`${VM}/redirect`]: 'off\n',
      [`${VM}/redirect_vcpus`]: '\n',
      [`${VM}/halt_poll_ns`]: '0\n',
    });
    const socket = join(tempDir(), 'es2d.sock');
    daemon = await Daemon.start(resolveConfig({ uri: 'test:///default', listen: [`unix:${socket}`], stateDir: tempDir(), hostRoot: root }), silentLogger());
    await daemon.waitReady();
    client = new Client({ endpoint: `unix:${socket}` });
  });

  after(async () => {
    await daemon?.stop();
  });

  it('reports the es2-kernel backend', async () => {
    const host = await client.send<{ backend: string }>('GET', '/v1/host');
    assert.equal(host.body.backend, 'es2-kernel');
  });

  it('writes thresholds, redirection and halt polling to the per-VM files', async () => {
    const res = await client.send<{ plan: { notApplicable: unknown[]; hostKnobs: unknown[]; es2Kernel: unknown } }>('PUT', '/v1/domains/test/policy', {
      enabled: true,
      vcpus: [{ vcpu: 0, label: 'io' }, { vcpu: 1, label: 'compute' }],
      hybridIo: { kickRateThreshold: 20000, idleTimeoutUs: 50 },
      interruptRedirection: { mode: 'labeled', targetLabel: 'io' },
      haltPollNs: 300000,
    });
    assert.deepEqual(res.body.plan.notApplicable, []);
    assert.deepEqual(res.body.plan.hostKnobs, []);
    assert.equal(read('enabled'), '1');
    assert.equal(read('kick_rate_threshold'), '20000');
    assert.equal(read('idle_timeout_us'), '50');
    assert.equal(read('redirect'), 'labeled');
    assert.equal(read('redirect_vcpus'), '0');
    assert.equal(read('halt_poll_ns'), '300000');
    // Per VM, so the host-global knob stays untouched.
    assert.equal(readFileSync(join(root, 'sys/module/kvm/parameters/halt_poll_ns'), 'utf8').trim(), '200000');
  });

  it('applies the rest of a policy to a domain without a per-VM entry, and says what did not apply', async () => {
    const other = '3c9a1f44-2b6e-4d0a-9f21-7e5b8c0d1a2f';
    const conn = await Connection.open('test:///default', { events: false });
    await conn.domainDefineXML(`<domain type='test'><name>tcg</name><uuid>${other}</uuid><memory>65536</memory><vcpu>2</vcpu><os><type>hvm</type></os></domain>`);
    await conn.domainCreate(other);
    // A running domain with a pid file but no directory under sys/kernel/es2/vms (a TCG guest).
    writeFileSync(join(root, 'run/libvirt/qemu/tcg.pid'), '4343\n');
    const res = await client.send<{ status: string; plan: { warnings: string[] } }>('PUT', `/v1/domains/${other}/policy`, {
      enabled: true, vcpus: [{ vcpu: 1, cpuset: '3' }], hybridIo: { kickRateThreshold: 1000 },
    });
    assert.equal(res.body.status, 'applied');
    assert.match(res.body.plan.warnings.join('\n'), /ES2 kernel settings not applied/);
    assert.deepEqual((await conn.domainGetVcpuPinInfo(other))[1], [3]);
    await conn.close();
  });

  it('disables ES2 for the VM when the policy is removed', async () => {
    await client.send('DELETE', '/v1/domains/test/policy');
    assert.equal(read('enabled'), '0');
  });
});
