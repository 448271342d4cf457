// es2d: wires the parts together for one host and runs them until stopped.
import { readFileSync } from 'node:fs';

import { createApp } from '../api/app.js';
import { createHandlers } from '../api/handlers.js';
import { loadSpec } from '../api/spec.js';
import { Applier } from '../apply/applier.js';
import { Es2Error, validationFailed } from '../errors/index.js';
import { HostRoot, KnobManager, probeHost, selectBackend } from '../host/index.js';
import { parseCpuset, validatePolicyLayer } from '../policy/index.js';
import { Controller } from '../reconcile/controller.js';
import { HookService } from '../reconcile/hook.js';
import { LibvirtLink } from '../reconcile/link.js';
import { Metrics, vmSnapshots } from '../report/metrics.js';
import { OutboxPusher } from '../report/outbox.js';
import { Reports } from '../report/reports.js';
import { exitCosts } from '../savings/index.js';
import { CaptureReplaySource, parseCapture, StatsCollector, type StatsSource } from '../stats/index.js';
import { Store } from '../store/index.js';
import type { Config } from './config.js';
import { bind, closeServer, type BoundListener } from './listen.js';
import type { Logger } from './logger.js';

function readSecret(file: string, what: string): string {
  let text: string;
  try {
    text = readFileSync(file, 'utf8').trim();
  } catch (err) {
    throw validationFailed(`cannot read the ${what} file ${file}: ${(err as Error).message}`, [{ path: `/${what}`, message: 'unreadable' }]);
  }
  if (text.length < 16) throw validationFailed(`the ${what} in ${file} is shorter than 16 characters`, [{ path: `/${what}`, message: 'too short' }]);
  return text;
}

/** Checks what the config file can only say as strings: rules' policies and the CPU pool. */
function checkConfig(config: Config): void {
  config.rules.forEach((rule, i) => validatePolicyLayer(rule.policy, `/rules/${i}/policy`));
  if (config.cpuPool !== undefined) parseCpuset(config.cpuPool, '/cpuPool');
}

/**
 * A capture replayed as the stats source (the README demo: the test driver has no KVM counters).
 * Captures name domains but carry no UUIDs, so names are matched to the connected libvirt's.
 */
function replaySource(file: string, link: LibvirtLink): StatsSource {
  const replay = new CaptureReplaySource(parseCapture(readFileSync(file, 'utf8'), file));
  return {
    get lastSampleTime() {
      return replay.lastSampleTime;
    },
    async getAllDomainStats(stats, flags) {
      const records = await replay.getAllDomainStats(stats, flags);
      const uuids = new Map((await link.require().listAllDomains()).map((d) => [d.name, d.uuid]));
      return records.map((r) => ({ ...r, uuid: uuids.get(r.name) ?? r.uuid }));
    },
  };
}

export class Daemon {
  readonly listeners: BoundListener[] = [];
  private readonly timers: NodeJS.Timeout[] = [];
  private stopping: Promise<void> | undefined;

  private constructor(
    readonly config: Config,
    readonly logger: Logger,
    readonly store: Store,
    readonly link: LibvirtLink,
    readonly controller: Controller,
    readonly collector: StatsCollector,
    readonly outbox: OutboxPusher | undefined,
  ) {}

  static async start(config: Config, logger: Logger): Promise<Daemon> {
    checkConfig(config);
    const token = config.tokenFile === undefined ? undefined : readSecret(config.tokenFile, 'tokenFile');
    const host = new HostRoot(config.hostRoot);
    const store = Store.open(config.stateDir, config.orchestrator === undefined ? {} : { outboxCapacity: config.orchestrator.outboxCapacity });
    const knobs = new KnobManager(store, host, logger);
    const backend = selectBackend(probeHost(host), host);
    const link = new LibvirtLink(config.uri, logger);

    const source: StatsSource = config.statsReplay === undefined
      ? { getAllDomainStats: (stats, flags) => link.require().getAllDomainStats(stats, flags) }
      : replaySource(config.statsReplay, link);
    const collector = new StatsCollector(source, { intervalSeconds: config.statsInterval, windowSeconds: config.savings.windowSeconds });

    const controller = new Controller(
      { link, store, applier: new Applier({ knobs, backend, logger }), knobs, host, logger, collector },
      { rules: config.rules, cpuPool: config.cpuPool, drift: config.drift, verifyInterval: config.verifyInterval, providerConfig: config.providerConfig },
    );
    const orchestrator = config.orchestrator;
    const outbox = orchestrator === undefined ? undefined : new OutboxPusher({
      store, url: orchestrator.url, logger, timeoutMs: orchestrator.timeoutMs,
      ...(orchestrator.header === undefined ? {} : { header: orchestrator.header }),
      ...(orchestrator.token ?? orchestrator.tokenFile) === undefined ? {} : {
        token: orchestrator.token ?? readSecret(orchestrator.tokenFile!, 'orchestrator.tokenFile'),
      },
    });
    const identify = (uuid: string): { name: string; project: string | null; flavor: string | null } | undefined => {
      const id = controller.cachedIdentity(uuid);
      return id === undefined ? undefined : { name: id.name, project: id.nova?.project?.name ?? null, flavor: id.nova?.flavor?.name ?? null };
    };
    const reports = new Reports({
      store, collector, costs: exitCosts(config.savings.costsNs), minIoOps: config.savings.minIoOps, identify, logger, outbox,
    });
    const metrics = new Metrics({
      vms: () => vmSnapshots(collector, reports, identify),
      policies: () => [...controller.policyStates].map(([uuid, p]) => ({
        uuid, name: controller.cachedIdentity(uuid)?.name ?? uuid, enabled: p.enabled, source: p.source,
      })),
      capabilities: () => controller.features(),
      collector: () => collector.metrics,
      outbox: () => outbox?.metrics(),
    });
    const hooks = new HookService(controller, knobs, logger);
    const app = createApp({
      spec: loadSpec(),
      handlers: createHandlers({ uri: config.uri, link, store, controller, knobs, reports, metrics, hooks, cpuPool: config.cpuPool }),
      logger,
      ...(token === undefined ? {} : { token }),
    });

    const daemon = new Daemon(config, logger, store, link, controller, collector, outbox);
    try {
      for (const spec of config.listen) {
        daemon.listeners.push(await bind(spec, app, { mode: config.socketMode, group: config.socketGroup }));
      }
    } catch (err) {
      await daemon.stop();
      throw err;
    }
    // Identities (Nova project and flavor) of sampled domains, for metrics and reports.
    collector.on('cycle', () => {
      if (!link.connected) return;
      for (const uuid of collector.keys()) {
        if (controller.cachedIdentity(uuid) === undefined) void controller.identity(link.require(), uuid).catch(() => undefined);
      }
    });
    collector.on('failed', (err) => logger.debug('stats cycle failed', { error: err.message }));
    collector.start();
    outbox?.start();
    if (outbox !== undefined) {
      const timer = setInterval(() => reports.push(), config.savings.windowSeconds * 1000);
      timer.unref();
      daemon.timers.push(timer);
    }
    await link.start();
    logger.info('es2d started', { uri: config.uri, listen: daemon.listeners.map((l) => l.url), stateDir: config.stateDir, hostRoot: config.hostRoot });
    return daemon;
  }

  /** Resolves when start-up reconciliation is done (or rejects after `timeoutMs`). */
  async waitReady(timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!this.controller.ready) {
      if (Date.now() > deadline) throw new Es2Error('LIBVIRT_UNAVAILABLE', `es2d not ready within ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /** Stops accepting requests, finishes work in flight, then closes libvirt and the store. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      for (const t of this.timers) clearInterval(t);
      await Promise.all(this.listeners.map((l) => closeServer(l)));
      await this.controller.stop();
      await this.collector.stop();
      await this.outbox?.stop();
      await this.link.stop();
      this.store.close();
      this.logger.info('es2d stopped');
    })();
    return this.stopping;
  }
}
