// es2d on a real KVM domain: its live exit counters reach es2_vm_exits_total and the savings
// report. Skips, saying why, where /dev/kvm cannot be used.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { Connection } from '../../src/libvirt/index.js';
import { startEs2d, type Es2dProcess } from '../helpers/es2d.js';
import {
  disklessDomainXml,
  kvmUnavailable,
  removeDomains,
  startLibvirtd,
  SYSTEM_URI,
  systemTierUnavailable,
  type Libvirtd,
} from '../helpers/libvirtd.js';

const skip = systemTierUnavailable() ?? kvmUnavailable();
if (skip !== null) console.log(`# es2d KVM tier skipped: ${skip}`);

const PREFIX = `es2d-kvm-${process.pid}-`;

interface Report {
  confidence: string;
  current: { seconds: number; vcpus: number; byReason: { exits: { perSecond: number | null } } };
  baseline: unknown;
}

describe('es2d with a running type=kvm domain', { skip: skip ?? false }, () => {
  let daemon: Libvirtd;
  let conn: Connection;
  let es2d: Es2dProcess;
  let uuid: string;

  before(async () => {
    daemon = await startLibvirtd();
    conn = await Connection.open(SYSTEM_URI, { events: false });
    await removeDomains(conn, PREFIX);
    uuid = (await conn.domainDefineXML(disklessDomainXml({ name: `${PREFIX}a`, type: 'kvm', vcpus: 2 }))).uuid;
    await conn.domainCreate(uuid);
    es2d = await startEs2d({ uri: SYSTEM_URI });
  });

  after(async () => {
    await es2d?.stop();
    if (conn) {
      await removeDomains(conn, PREFIX);
      await conn.close();
    }
    await daemon?.stop();
  });

  it('exports the live exit counters per reason in es2_vm_exits_total', async () => {
    const pattern = new RegExp(`^es2_vm_exits_total\\{uuid="${uuid}",name="${PREFIX}a",project="",flavor="",reason="exits"\\} (\\d+)`, 'm');
    let value = 0;
    const deadline = Date.now() + 30_000;
    while (value === 0 && Date.now() < deadline) {
      const metrics = (await es2d.client.send<string>('GET', '/metrics')).body;
      value = Number(pattern.exec(metrics)?.[1] ?? 0);
      if (value === 0) await new Promise((r) => setTimeout(r, 500));
    }
    assert.ok(value > 0, 'es2_vm_exits_total{reason="exits"} > 0 for the KVM domain');
    const metrics = (await es2d.client.send<string>('GET', '/metrics')).body;
    assert.match(metrics, new RegExp(`es2_vm_exits_total\\{uuid="${uuid}"[^}]*reason="halt_exits"\\} \\d+`));
    // The probe saw vcpu.N.exits.sum in libvirt's bulk stats (the host root here is a temp tree).
    assert.match(metrics, /^es2_host_capability\{feature="kvm_exit_stats"\} 1$/m);
  });

  it('reports live exit rates in GET /v1/domains/{ref}/savings, and takes a baseline on demand', async () => {
    let report: Report | undefined;
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline) {
      report = (await es2d.client.send<Report>('GET', `/v1/domains/${uuid}/savings`)).body;
      if ((report.current.byReason.exits.perSecond ?? 0) > 0) break;
      await new Promise((r) => setTimeout(r, 500));
    }
    assert.ok(report !== undefined && (report.current.byReason.exits.perSecond ?? 0) > 0);
    assert.equal(report.current.vcpus, 2);
    assert.equal(report.confidence, 'no-baseline');
    const baseline = await es2d.client.send<{ baseline: { hasKvmStats: boolean } }>('POST', `/v1/domains/${uuid}/baseline`);
    assert.equal(baseline.status, 201);
    assert.equal(baseline.body.baseline.hasKvmStats, true);
    const after = (await es2d.client.send<Report>('GET', `/v1/domains/${uuid}/savings`)).body;
    // A firmware-only guest does almost no I/O: fewer I/O ops than minIoOps in the window.
    assert.equal(after.confidence, 'insufficient-data');
    assert.ok(after.baseline !== null);
  });
});
