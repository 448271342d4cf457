// Prometheus /metrics (what OpenStack telemetry and Watcher read). Per-VM series carry the Nova
// instance UUID (`uuid`), the libvirt name, and the Nova `project` and `flavor` ("" when unknown)
// so they join to Nova's own series. Values are read at scrape time from one snapshot.
import { Counter, Gauge, Registry } from 'prom-client';

import type { SavingsReport } from '../savings/index.js';
import type { DomainSample } from '../stats/index.js';
import { REASONS } from '../stats/index.js';
import type { CollectorMetrics, StatsCollector } from '../stats/collector.js';
import type { Identity, Reports } from './reports.js';
import type { OutboxMetrics } from './outbox.js';

export interface VmSnapshot {
  uuid: string;
  name: string;
  project: string | null;
  flavor: string | null;
  latest: DomainSample | undefined;
  report: SavingsReport | undefined;
}

/** The per-VM view of a scrape: every domain the collector has samples of, with its report. */
export function vmSnapshots(
  collector: Pick<StatsCollector, 'keys' | 'latest'>,
  reports: Pick<Reports, 'report'>,
  identify: (uuid: string) => Identity | undefined,
): VmSnapshot[] {
  return collector.keys().map((uuid) => {
    const id = identify(uuid);
    const latest = collector.latest(uuid);
    return {
      uuid, name: id?.name ?? latest?.name ?? uuid, project: id?.project ?? null, flavor: id?.flavor ?? null,
      latest, report: reports.report(uuid),
    };
  });
}

export interface PolicySnapshot {
  uuid: string;
  name: string;
  enabled: boolean;
  source: string;
}

export interface MetricsSources {
  vms(): VmSnapshot[];
  policies(): PolicySnapshot[];
  capabilities(): Record<string, 0 | 1>;
  collector(): CollectorMetrics;
  outbox(): OutboxMetrics | undefined;
}

interface Snapshot {
  vms: VmSnapshot[];
  policies: PolicySnapshot[];
  capabilities: Record<string, 0 | 1>;
  collector: CollectorMetrics;
  outbox: OutboxMetrics | undefined;
}

const VM_LABELS = ['uuid', 'name', 'project', 'flavor'] as const;

function vmLabels(vm: VmSnapshot): Record<(typeof VM_LABELS)[number], string> {
  return { uuid: vm.uuid, name: vm.name, project: vm.project ?? '', flavor: vm.flavor ?? '' };
}

export class Metrics {
  readonly registry = new Registry();
  private snapshot: Snapshot | undefined;

  constructor(private readonly sources: MetricsSources) {
    const snap = (): Snapshot => {
      if (this.snapshot === undefined) throw new Error('metrics collected outside render()');
      return this.snapshot;
    };
    const registers = [this.registry];

    new Counter({
      name: 'es2_vm_exits_total', help: 'VM exits by reason, summed over vCPUs (libvirt bulk stats vcpu.N.<reason>.sum)',
      labelNames: [...VM_LABELS, 'reason'], registers,
      collect() {
        this.reset();
        for (const vm of snap().vms) {
          if (vm.latest === undefined || !vm.latest.hasKvmStats) continue;
          for (const reason of REASONS) this.inc({ ...vmLabels(vm), reason }, Number(vm.latest.exits[reason]));
        }
      },
    });
    new Counter({
      name: 'es2_vm_io_ops_total', help: 'I/O operations: net rx+tx packets plus block read+write requests',
      labelNames: [...VM_LABELS], registers,
      collect() {
        this.reset();
        for (const vm of snap().vms) if (vm.latest !== undefined) this.inc(vmLabels(vm), Number(vm.latest.ioOps));
      },
    });
    new Gauge({
      name: 'es2_vm_exit_reduction_ratio', help: 'Exits per I/O op, 1 - current/baseline (only when confidence is ok)',
      labelNames: [...VM_LABELS], registers,
      collect() {
        this.reset();
        for (const vm of snap().vms) {
          const r = vm.report;
          const value = r?.confidence === 'ok' ? r.savings.byReason.exits.reduction : null;
          if (value !== null && value !== undefined) this.set(vmLabels(vm), value);
        }
      },
    });
    new Gauge({
      name: 'es2_vm_exits_avoided_per_second', help: 'Exits per second avoided against the baseline (only when confidence is ok)',
      labelNames: [...VM_LABELS], registers,
      collect() {
        this.reset();
        for (const vm of snap().vms) {
          const r = vm.report;
          const value = r?.confidence === 'ok' ? r.savings.byReason.exits.avoidedPerSecond : null;
          if (value !== null && value !== undefined) this.set(vmLabels(vm), value);
        }
      },
    });
    new Gauge({
      name: 'es2_vm_policy_enabled', help: 'The effective policy enables ES2 (1) or not (0), by the source of `enabled`',
      labelNames: ['uuid', 'name', 'source'], registers,
      collect() {
        this.reset();
        for (const p of snap().policies) this.set({ uuid: p.uuid, name: p.name, source: p.source }, p.enabled ? 1 : 0);
      },
    });
    new Gauge({
      name: 'es2_host_capability', help: 'Host capabilities from the probe (1 present, 0 absent)',
      labelNames: ['feature'], registers,
      collect() {
        this.reset();
        for (const [feature, value] of Object.entries(snap().capabilities)) this.set({ feature }, value);
      },
    });
    new Gauge({
      name: 'es2_collect_duration_seconds', help: 'Duration of the last stats collection cycle', registers,
      collect() {
        this.set(snap().collector.lastCycleSeconds);
      },
    });
    new Counter({
      name: 'es2_collect_errors_total', help: 'Stats cycles that failed (libvirt error or timeout)', registers,
      collect() {
        this.reset();
        this.inc(snap().collector.errors);
      },
    });
    new Counter({
      name: 'es2_collect_skipped_domains_total', help: 'Domain records left out of a cycle (incomplete under NOWAIT)', registers,
      collect() {
        this.reset();
        this.inc(snap().collector.skippedDomains);
      },
    });
    new Gauge({
      name: 'es2_outbox_depth', help: 'Savings reports waiting for delivery to the orchestrator', registers,
      collect() {
        this.set(snap().outbox?.depth ?? 0);
      },
    });
    new Counter({
      name: 'es2_outbox_dropped_total', help: 'Reports dropped from a full outbox (oldest first)', registers,
      collect() {
        this.reset();
        this.inc(snap().outbox?.dropped ?? 0);
      },
    });
    new Gauge({
      name: 'es2_outbox_dead_letters', help: 'Reports the receiver refused for good, kept in the store', registers,
      collect() {
        this.set(snap().outbox?.deadLettered ?? 0);
      },
    });
  }

  /** The exposition text; every metric reads the same snapshot. */
  render(): Promise<string> {
    this.snapshot = {
      vms: this.sources.vms(),
      policies: this.sources.policies(),
      capabilities: this.sources.capabilities(),
      collector: this.sources.collector(),
      outbox: this.sources.outbox(),
    };
    // Kept after the scrape: a concurrent scrape reads this one or its own, never nothing.
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
