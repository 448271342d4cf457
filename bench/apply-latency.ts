// apply-latency: PUT /v1/domains/{uuid}/policy on the real es2d until the answer (es2d answers once
// the policy is applied live and the persistent definition rewritten) over the same libvirt
// operations typed into one open virsh session: the live operations of the plan es2d returns for
// the policy, then one `define` of the persistent XML es2d writes.
//
// es2d reacts to the anchor's TUNABLE and lifecycle events by reading the domain (drift checks)
// and, since it holds no policy for the domain then, would undo the anchor's changes. So es2d is
// paused (SIGSTOP) while the anchor runs and is reset, and resumed to an unchanged domain.

import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { DomainMetadataType, DomainModificationImpact, DomainXMLFlags, type Connection } from '../src/libvirt/index.js';
import { formatCpuset, type LiveOp, type Plan } from '../src/policy/index.js';
import { ES2_NS } from '../src/xml/index.js';
import { SYSTEM_URI } from '../test/helpers/libvirtd.js';
import type { Bench } from './bench.js';
import { startEs2d } from './es2d.js';
import { alternate, median, ms, ratioOfMedians, sleep, spread } from './measure.js';
import { VirshSession } from './virsh.js';

// Lets es2d finish what a change set off (drift checks on TUNABLE events) before the next round.
const SETTLE_MS = 500;

/** vCPU 0 and 1 on CPUs 0 and 1, one IOThread with polling: within the 2 CPUs of a small host. */
const POLICY = {
  enabled: true,
  vcpus: [{ vcpu: 0, cpuset: '0' }, { vcpu: 1, cpuset: '1' }],
  hybridIo: { iothreads: 1, iothreadCpuset: '1', pollMaxNs: 32768, pollGrow: 2, pollShrink: 2 },
};

function quote(arg: string): string {
  if (arg.includes("'")) throw new Error(`cannot single-quote for virsh: ${arg}`);
  return `'${arg}'`;
}

/** The virsh commands doing what `live` does, and those undoing it (to all of `hostCpus`). */
function virshCommands(dom: string, live: LiveOp[], hostCpus: number[]): { apply: string[]; undo: string[] } {
  const apply: string[] = [];
  const undo: string[] = [];
  for (const op of live) {
    switch (op.op) {
      case 'iothread-add':
        apply.push(`iothreadadd ${dom} ${op.id} --live`);
        undo.unshift(`iothreaddel ${dom} ${op.id} --live`);
        break;
      case 'iothread-pin':
        apply.push(`iothreadpin ${dom} ${op.id} ${formatCpuset(op.cpus)} --live`);
        break;
      case 'iothread-poll':
        apply.push(`iothreadset ${dom} ${op.id}${op.pollMaxNs === undefined ? '' : ` --poll-max-ns ${op.pollMaxNs}`}`
          + `${op.pollGrow === undefined ? '' : ` --poll-grow ${op.pollGrow}`}${op.pollShrink === undefined ? '' : ` --poll-shrink ${op.pollShrink}`} --live`);
        break;
      case 'vcpu-pin':
        apply.push(`vcpupin ${dom} ${op.vcpu} ${formatCpuset(op.cpus)} --live`);
        undo.push(`vcpupin ${dom} ${op.vcpu} ${formatCpuset(hostCpus)} --live`);
        break;
      case 'metadata-set':
        // One line for virsh; the whitespace between elements carries nothing.
        apply.push(`metadata ${dom} --uri ${op.uri} --key ${op.key} --set ${quote(op.xml.replace(/>\s+</g, '><'))} --live`);
        undo.push(`metadata ${dom} --uri ${op.uri} --remove --live`);
        break;
      default:
        throw new Error(`no virsh command for plan op ${op.op}`);
    }
  }
  return { apply, undo };
}

/** Throws unless the domain has the policy's live settings (nothing else undid them meanwhile). */
async function checkApplied(conn: Connection, uuid: string): Promise<void> {
  const live = DomainModificationImpact.AFFECT_LIVE;
  const pins = await conn.domainGetVcpuPinInfo(uuid, live);
  const threads = await conn.domainGetIOThreadInfo(uuid, live);
  await conn.domainGetMetadata(uuid, DomainMetadataType.ELEMENT, ES2_NS, live);
  const ok = JSON.stringify(pins) === JSON.stringify([[0], [1]]) && threads.some((t) => t.id === 1 && JSON.stringify(t.cpus) === '[1]');
  if (!ok) throw new Error(`the policy is not in force after the apply: pins ${JSON.stringify(pins)}, IOThreads ${JSON.stringify(threads)}`);
}

/** Throws unless the policy's live IOThread is gone again (each round starts from the same domain). */
async function checkRemoved(conn: Connection, uuid: string): Promise<void> {
  const threads = await conn.domainGetIOThreadInfo(uuid, DomainModificationImpact.AFFECT_LIVE);
  if (threads.length > 0) throw new Error(`DELETE policy answered, yet IOThreads ${JSON.stringify(threads)} are still in force`);
}

export const applyLatency: Bench = {
  name: 'apply-latency',
  rows: ['apply-latency'],
  async run(ctx) {
    const fleet = await ctx.fleet();
    const conn = await ctx.connection();
    const uuid = fleet.uuids[1] as string;
    const dom = fleet.names[1] as string;
    const hostCpus = (await conn.nodeGetCPUMap()).online;
    if (!hostCpus.includes(0) || !hostCpus.includes(1)) throw new Error(`the policy pins to CPUs 0 and 1; this host has ${formatCpuset(hostCpus)}`);
    const originalXml = await conn.domainGetXMLDesc(uuid, DomainXMLFlags.INACTIVE);

    const es2d = await startEs2d(ctx, { statsInterval: 10 });
    let paused = false;
    const pause = (on: boolean): void => {
      es2d.child.kill(on ? 'SIGSTOP' : 'SIGCONT');
      paused = on;
    };
    // Registered after startEs2d's own cleanup, so it runs first: a stopped es2d cannot stop.
    ctx.defer(() => {
      if (paused) pause(false);
    });
    const path = `/v1/domains/${uuid}/policy`;
    const planned = (await es2d.client.send<{ plan: Plan }>('PUT', `${path}?dryRun=true`, POLICY)).body.plan;

    // es2d's persistent XML, for the anchor's `define`: apply once and read it back.
    await es2d.client.send('PUT', path, POLICY);
    const appliedXml = await conn.domainGetXMLDesc(uuid, DomainXMLFlags.INACTIVE);
    await sleep(SETTLE_MS);
    await es2d.client.send('DELETE', path);
    await checkRemoved(conn, uuid);
    await sleep(SETTLE_MS);
    const dir = ctx.tempDir('es2bench-apply-');
    writeFileSync(join(dir, 'applied.xml'), appliedXml);
    writeFileSync(join(dir, 'original.xml'), originalXml);
    const commands = virshCommands(dom, planned.live, hostCpus);
    const anchorCommands = [...commands.apply, `define ${join(dir, 'applied.xml')}`];
    const virsh = await VirshSession.open(ctx, SYSTEM_URI);

    const statuses = new Set<string>();
    const alt = await alternate(
      {
        async run() {
          const t0 = performance.now();
          const res = await es2d.client.send<{ status: string }>('PUT', path, POLICY);
          const elapsed = performance.now() - t0;
          statuses.add(res.body.status);
          await checkApplied(conn, uuid);
          return elapsed;
        },
        async reset() {
          // es2d first handles the event of its own define: a DELETE that overtakes it has the
          // policy adopted back from the domain's record (seen with es2d at 3a0227f).
          await sleep(SETTLE_MS);
          await es2d.client.send('DELETE', path);
          await checkRemoved(conn, uuid);
          await sleep(SETTLE_MS);
        },
      },
      {
        async run() {
          pause(true);
          const elapsed = await virsh.run(anchorCommands);
          await checkApplied(conn, uuid);
          return elapsed;
        },
        async reset() {
          await virsh.run([...commands.undo, `define ${join(dir, 'original.xml')}`]);
          pause(false);
          await sleep(SETTLE_MS);
        },
      },
      { rounds: ctx.quick ? 5 : 20, warmup: 2 },
    );
    if (statuses.size !== 1 || !statuses.has('applied')) throw new Error(`es2d answered ${[...statuses].join(', ')}, not applied`);
    return [{
      name: 'apply-latency',
      ratio: ratioOfMedians(alt),
      anchor: `the same libvirt operations in one open virsh session: ${anchorCommands.length} commands (${planned.live.map((o) => o.op).join(', ')}, define)`,
      detail: `PUT policy ${ms(median(alt.subject))} vs virsh ${ms(median(alt.anchor))}; ${spread(alt)}; `
        + `live settings checked after every apply; es2d at a 10 s stats interval, ${fleet.uuids.length} domains running`,
      goal: { op: '<=', value: 1.5, text: '<= 1.5' },
    }];
  },
};
