// Real KVM exit counters: a type='kvm' domain's bulk stats carry vcpu.N.exits.sum and friends
// (QEMU query-stats through libvirt). Skips, saying why, where /dev/kvm cannot be used.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { Connection, DomainStatsTypes, GetAllDomainStatsFlags } from '../../src/libvirt/index.js';
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
if (skip !== null) console.log(`# KVM tier skipped: ${skip}`);

const PREFIX = `es2kvm-${process.pid}-`;

describe('KVM exit counters in bulk stats', { skip: skip ?? false }, () => {
  let daemon: Libvirtd;
  let conn: Connection;
  let uuid: string;

  before(async () => {
    daemon = await startLibvirtd();
    conn = await Connection.open(SYSTEM_URI, { events: false });
    await removeDomains(conn, PREFIX);
    uuid = (await conn.domainDefineXML(disklessDomainXml({ name: `${PREFIX}a`, type: 'kvm', vcpus: 2 }))).uuid;
    await conn.domainCreate(uuid);
  });

  after(async () => {
    if (conn) {
      await removeDomains(conn, PREFIX);
      await conn.close();
    }
    await daemon?.stop();
  });

  it('reports vcpu.N.exits.sum > 0 and per-reason counters as 64-bit values', async () => {
    let stats: Record<string, unknown> = {};
    const deadline = Date.now() + 20_000;
    while (Date.now() < deadline) {
      const records = await conn.getAllDomainStats(DomainStatsTypes.VCPU, GetAllDomainStatsFlags.ACTIVE);
      stats = records.find((r) => r.uuid === uuid)?.stats ?? {};
      if (typeof stats['vcpu.0.exits.sum'] === 'bigint' && (stats['vcpu.0.exits.sum'] as bigint) > 0n) break;
      await new Promise((r) => setTimeout(r, 250));
    }
    assert.equal(typeof stats['vcpu.0.exits.sum'], 'bigint', `keys: ${Object.keys(stats).join(' ')}`);
    assert.ok((stats['vcpu.0.exits.sum'] as bigint) > 0n);
    for (const reason of ['io_exits', 'mmio_exits', 'halt_exits']) {
      assert.equal(typeof stats[`vcpu.0.${reason}.sum`], 'bigint', `vcpu.0.${reason}.sum`);
    }
    assert.equal(typeof stats['vcpu.1.exits.sum'], 'bigint');
  });
});
