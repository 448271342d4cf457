// Desired state versus libvirt: which policy each domain should have (stored API policy over Nova
// flavor extra specs over config rules), converging domains to it one at a time per domain, and
// reacting to lifecycle events, reconnects and drift. The store is the source of truth: Nova hard
// reboot regenerates domain XML, so es2 re-applies after every define and start.
import { Es2Error } from '../errors/index.js';
import {
  capabilityFeatures,
  gatherLibvirtFacts,
  hostFacts,
  type CapabilityReport,
  type HostRoot,
  type KnobManager,
  probeHost,
  writeProviderConfig,
} from '../host/index.js';
import {
  ConnectListDomains,
  type Connection,
  DomainXMLFlags,
  isNoDomain,
  type LifecycleEvent,
} from '../libvirt/index.js';
import {
  type EffectivePolicy,
  type FlavorRule,
  type HostFacts,
  mergePolicy,
  parseCpuset,
  type Policy,
} from '../policy/index.js';
import { baselineFromWindow } from '../savings/index.js';
import type { StatsCollector } from '../stats/index.js';
import type { Store } from '../store/index.js';
import { hostCpusFromCapabilities, readNovaInstance, readRecordedPolicy, type NovaInstance } from '../xml/index.js';
import type { Logger } from '../daemon/logger.js';
import type { ApplyOutcome, Applier, DomainSnapshot, DriftItem } from '../apply/applier.js';
import { KeyedQueue } from '../apply/queue.js';
import type { LibvirtLink } from './link.js';

export interface ControllerOptions {
  rules: FlavorRule[];
  cpuPool?: string | undefined;
  drift: 'repair' | 'report';
  /** Seconds between drift checks of every running domain (0: only on TUNABLE events). */
  verifyInterval: number;
  providerConfig: boolean;
}

export interface ControllerDeps {
  link: LibvirtLink;
  store: Store;
  applier: Applier;
  knobs: KnobManager;
  host: HostRoot;
  logger: Logger;
  collector?: StatsCollector | undefined;
}

/** What es2d knows of a domain beyond libvirt's answer, cached from its XML. */
export interface DomainIdentity {
  uuid: string;
  name: string;
  nova: NovaInstance | null;
}

const UUID_RE = /^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$/i;

export function isUuid(ref: string): boolean {
  return UUID_RE.test(ref);
}

/** Lower-case, dashed form (libvirt accepts both, the store keys by this one). */
export function canonicalUuid(ref: string): string {
  const hex = ref.replace(/-/g, '').toLowerCase();
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

export class Controller {
  readonly queue = new KeyedQueue();
  private readyFlag = false;
  private factsValue: HostFacts | null = null;
  private reportValue: CapabilityReport;
  private readonly identities = new Map<string, DomainIdentity>();
  private verifyTimer: NodeJS.Timeout | undefined;
  /** Whether the effective policy enables ES2, and from which source, as of the last converge. */
  readonly policyStates = new Map<string, { enabled: boolean; source: string }>();

  constructor(
    private readonly deps: ControllerDeps,
    private readonly options: ControllerOptions,
  ) {
    this.reportValue = probeHost(deps.host);
    deps.link.on('connected', (conn) => void this.onConnected(conn));
    deps.link.on('disconnected', () => {
      this.readyFlag = false;
    });
    deps.link.on('lifecycle', (ev) => this.onLifecycle(ev));
    deps.link.on('tunable', (ev) => this.enqueueDriftCheck(ev.domain.uuid, 'tunable event'));
    deps.link.on('metadata', (ev) => this.identities.delete(ev.domain.uuid));
  }

  /** libvirt connected and start-up reconciliation done. */
  get ready(): boolean {
    return this.readyFlag && this.deps.link.connected;
  }

  get capabilities(): CapabilityReport {
    return this.reportValue;
  }

  /** Host facts for the pure core; LIBVIRT_UNAVAILABLE until the first connection told them. */
  facts(): HostFacts {
    if (this.factsValue === null) throw new Es2Error('LIBVIRT_UNAVAILABLE', 'host facts are not known until libvirt is connected');
    return this.factsValue;
  }

  get knownFacts(): HostFacts | null {
    return this.factsValue;
  }

  features(): Record<string, 0 | 1> {
    return capabilityFeatures(this.reportValue);
  }

  stop(): Promise<void> {
    clearInterval(this.verifyTimer);
    return this.queue.drain();
  }

  // --- host facts --------------------------------------------------------------------------

  private async refreshFacts(conn: Connection): Promise<void> {
    const libvirtFacts = await gatherLibvirtFacts(conn);
    this.reportValue = probeHost(this.deps.host, libvirtFacts);
    const cpus = hostCpusFromCapabilities(await conn.getCapabilities());
    const pool = this.options.cpuPool === undefined ? undefined : parseCpuset(this.options.cpuPool, '/cpuPool');
    const outside = pool?.filter((c) => !cpus.includes(c)) ?? [];
    if (outside.length > 0) this.deps.logger.warn('cpuPool names CPUs this host does not have', { cpus: outside });
    this.factsValue = hostFacts(this.reportValue, cpus, libvirtFacts.libvirtVersion ?? 0, pool?.filter((c) => cpus.includes(c)));
    if (this.options.providerConfig) {
      const written = writeProviderConfig(this.deps.host, this.reportValue);
      if (written.changed) {
        this.deps.logger.info('nova provider config written; nova-compute reads it at its next start', { path: written.path, traits: written.traits });
      }
    }
  }

  private async onConnected(conn: Connection): Promise<void> {
    try {
      await this.refreshFacts(conn);
      await this.reconcileAll('libvirt connected');
      this.readyFlag = true;
      this.scheduleVerify();
    } catch (err) {
      this.deps.logger.error('start-up reconciliation failed', { error: (err as Error).message });
      this.deps.link.noteFailure(err);
    }
  }

  private scheduleVerify(): void {
    clearInterval(this.verifyTimer);
    if (this.options.verifyInterval <= 0) return;
    this.verifyTimer = setInterval(() => void this.verifyAll(), this.options.verifyInterval * 1000);
    this.verifyTimer.unref();
  }

  // --- desired state -----------------------------------------------------------------------

  /** The identity (name, Nova metadata) of a domain, from its XML, cached until it changes. */
  async identity(conn: Connection, uuid: string): Promise<DomainIdentity> {
    const cached = this.identities.get(uuid);
    if (cached !== undefined) return cached;
    const xml = await conn.domainGetXMLDesc(uuid);
    const ref = await conn.lookupDomainByUUID(uuid);
    let nova: NovaInstance | null = null;
    try {
      nova = readNovaInstance(xml);
    } catch {
      // Foreign metadata es2 cannot read must not hide the domain.
    }
    const id = { uuid, name: ref.name, nova };
    this.identities.set(uuid, id);
    return id;
  }

  cachedIdentity(uuid: string): DomainIdentity | undefined {
    return this.identities.get(uuid);
  }

  /**
   * The effective policy of a domain: the stored API policy over its Nova flavor's `es2:*` extra
   * specs over config rules. Bad flavor specs or rules throw VALIDATION_FAILED.
   */
  effective(uuid: string, domainXml: string | null, api?: Policy | null): EffectivePolicy | null {
    // `api` stands in for the stored policy (a dry run of a write, or of a removal with null).
    const stored = api !== undefined ? api : (this.deps.store.getPolicy<Policy>(uuid)?.policy ?? null);
    const nova = domainXml === null ? null : readNovaInstance(domainXml);
    return mergePolicy({ api: stored, flavor: nova?.flavor ?? null, rules: this.options.rules });
  }

  /** Resolves `{ref}` (UUID or name) to a domain libvirt knows; null for an unknown UUID. */
  async resolve(conn: Connection, ref: string): Promise<{ uuid: string; name: string } | null> {
    try {
      const d = isUuid(ref) ? await conn.lookupDomainByUUID(canonicalUuid(ref)) : await conn.lookupDomainByName(ref);
      return { uuid: d.uuid, name: d.name };
    } catch (err) {
      if (!isNoDomain(err)) throw err;
      if (isUuid(ref)) return null;
      throw new Es2Error('DOMAIN_NOT_FOUND', `libvirt has no domain named ${JSON.stringify(ref)}`);
    }
  }

  // --- converging --------------------------------------------------------------------------

  /**
   * Brings a domain in line with its desired policy. Serialised per domain; different domains run
   * in parallel. `candidate` plans with a policy in place of the stored one (null: as if none were
   * stored): an API write passes the policy it stores with `commit`, which runs after the plan and
   * before any change, so one plan both refuses a bad policy and applies a good one.
   */
  converge(
    uuid: string,
    reason: string,
    options: { dryRun?: boolean; adopt?: boolean; candidate?: { policy: Policy | null; commit?: () => void | Promise<void> } } = {},
  ): Promise<ApplyOutcome> {
    return this.queue.run(uuid, async () => {
      const conn = this.deps.link.require();
      const facts = this.facts();
      const dryRun = options.dryRun ?? false;
      try {
        const snapshot = await this.deps.applier.snapshot(conn, uuid);
        // The flavor's extra specs live in the persistent definition (a transient domain has only its live one).
        const xml = (snapshot.persistentXml ?? snapshot.liveXml)!;
        if (options.adopt === true && options.candidate === undefined) this.adoptRecorded(snapshot);
        const eff = options.candidate === undefined ? this.effective(uuid, xml) : this.effective(uuid, xml, options.candidate.policy);
        const desired = eff?.policy ?? null;
        const notePolicyState = (): void => {
          if (eff === null) this.policyStates.delete(uuid);
          else this.policyStates.set(uuid, { enabled: eff.policy.enabled, source: eff.sources.enabled });
        };
        // The stored policy is in force even when this host refuses it now; a candidate only once stored.
        if (!dryRun && options.candidate === undefined) notePolicyState();
        const outcome = await this.deps.applier.converge(conn, uuid, desired, facts, {
          dryRun,
          snapshot,
          beforeChanges: async () => {
            if (options.candidate !== undefined) {
              await options.candidate.commit?.();
              notePolicyState();
            }
            if (desired?.enabled === true) this.autoBaseline(uuid, xml);
          },
        });
        if (!dryRun) {
          // A converge that found everything in place (es2's own define echoing back as an event,
          // a periodic re-apply) keeps the record of the apply that did the work.
          const previous = this.deps.store.getApplied(uuid);
          const unchanged = outcome.steps === 0 && previous?.result === 'ok'
            && JSON.stringify(previous.policy) === JSON.stringify(desired);
          if (!unchanged) this.deps.store.putApplied({ uuid, name: outcome.name, policy: desired, plan: outcome.plan, result: 'ok' });
          this.deps.logger.info('apply', { domain: outcome.name, uuid, reason, steps: outcome.steps, status: outcome.status, result: 'ok' });
        }
        return outcome;
      } catch (err) {
        this.deps.link.noteFailure(err);
        // A write refused by its precondition changed nothing: the last apply's record stands.
        if (!dryRun && !(err instanceof Es2Error && (err.code === 'DOMAIN_NOT_FOUND' || err.code === 'PRECONDITION_FAILED'))) {
          const message = err instanceof Error ? err.message : String(err);
          const existing = this.deps.store.getApplied(uuid);
          this.deps.store.putApplied({ uuid, name: existing?.name ?? null, policy: existing?.policy ?? null, plan: existing?.plan ?? null, result: 'failed', error: message });
        }
        throw err;
      }
    });
  }

  /**
   * A domain that carries an es2 record but has no policy here (live-migrated in, or es2d's state
   * was lost) keeps its policy: the record is the mirror that travels with the domain, so it
   * becomes the stored policy instead of es2 being stripped. Only start-up/reconnect reconciliation
   * and a domain started by migration or restore adopt.
   */
  private adoptRecorded(snapshot: DomainSnapshot): void {
    const { uuid, name } = snapshot.info;
    if (this.deps.store.getPolicy(uuid) !== undefined) return;
    let recorded: Policy | null = null;
    try {
      recorded = (snapshot.persistentXml === null ? null : readRecordedPolicy(snapshot.persistentXml))
        ?? (snapshot.liveXml === null ? null : readRecordedPolicy(snapshot.liveXml));
    } catch {
      // A corrupt record is not adopted; the domain is then converged to its other sources.
    }
    if (recorded === null) return;
    this.deps.store.putPolicy(uuid, recorded, { name });
    this.deps.logger.info('policy adopted from the domain\'s es2 record', { domain: name, uuid });
  }

  /**
   * The baseline is the window before ES2 is first enabled on a domain: taken once, when the
   * domain carries no es2 record yet and no baseline is stored, if the collector has samples.
   */
  private autoBaseline(uuid: string, xml: string): void {
    const collector = this.deps.collector;
    if (collector === undefined || this.deps.store.getBaseline(uuid) !== undefined) return;
    if (readRecordedPolicy(xml) !== null) return;
    const baseline = baselineFromWindow(collector.samples(uuid));
    if (baseline === null) return;
    this.deps.store.putBaseline(uuid, baseline);
    this.deps.logger.info('baseline captured before enabling ES2', { uuid, seconds: baseline.seconds });
  }

  /** Every domain with a desired policy or an es2 record is converged; failures are logged. */
  async reconcileAll(reason: string): Promise<void> {
    const conn = this.deps.link.require();
    const domains = await conn.listAllDomains(ConnectListDomains.PERSISTENT | ConnectListDomains.TRANSIENT);
    await Promise.all(domains.map(async (d) => {
      try {
        const xml = await conn.domainGetXMLDesc(d.uuid, DomainXMLFlags.INACTIVE);
        const wants = this.effective(d.uuid, xml) !== null || readRecordedPolicy(xml) !== null;
        if (!wants) return;
        await this.converge(d.uuid, reason, { adopt: true });
      } catch (err) {
        this.deps.logger.warn('reconcile failed', { domain: d.name, uuid: d.uuid, reason, error: (err as Error).message });
      }
    }));
    // Holds of domains that are gone or not running (es2d may have been down when they stopped).
    const running = new Set(domains.filter((d) => d.id !== null).map((d) => d.uuid));
    for (const k of this.deps.knobs.list()) {
      for (const holder of Object.keys(k.holders)) {
        if (isUuid(holder) && !running.has(holder)) this.deps.knobs.release(holder);
      }
    }
  }

  private onLifecycle(ev: LifecycleEvent): void {
    const { uuid, name } = ev.domain;
    this.identities.delete(uuid);
    switch (ev.event) {
      case 'defined':
      case 'started':
        // A (re)define may be Nova regenerating the XML (hard reboot); a start forgets live-only
        // settings (IOThread polling before libvirt 9.4). Both converge again.
        // Only a domain arriving from elsewhere adopts its record; es2's own define echoing back
        // must not re-adopt a policy an API delete just removed.
        void this.converge(uuid, `${ev.event}/${ev.detail}`, {
          adopt: ev.event === 'started' && (ev.detail === 'migrated' || ev.detail === 'restored'),
        }).catch((err: unknown) => {
          if (err instanceof Es2Error && err.code === 'DOMAIN_NOT_FOUND') return;
          this.deps.logger.warn('re-apply failed', { domain: name, uuid, event: ev.event, error: (err as Error).message });
        });
        break;
      case 'stopped':
      case 'undefined':
      case 'crashed':
        // Knob holds go with the running domain; the policy stays (Nova redefines with the same UUID).
        void this.queue.run(uuid, async () => {
          const writes = this.deps.knobs.release(uuid);
          if (writes.length > 0) this.deps.logger.info('knob holds released', { domain: name, uuid, event: ev.event, writes });
        }).catch((err: unknown) => this.deps.logger.warn('release failed', { domain: name, uuid, error: (err as Error).message }));
        break;
      default:
        break;
    }
  }

  // --- drift -------------------------------------------------------------------------------

  private enqueueDriftCheck(uuid: string, reason: string): void {
    void this.checkDrift(uuid, reason).catch((err: unknown) => {
      this.deps.logger.warn('drift check failed', { uuid, reason, error: (err as Error).message });
    });
  }

  /** Compares the running domain with its desired policy; repairs or reports per config. */
  checkDrift(uuid: string, reason: string): Promise<DriftItem[]> {
    return this.queue.run(uuid, async () => {
      const conn = this.deps.link.require();
      const info = await conn.domainGetInfo(uuid);
      if (!info.active) return [];
      const xml = await conn.domainGetXMLDesc(uuid, DomainXMLFlags.INACTIVE);
      const desired = this.effective(uuid, xml)?.policy ?? null;
      // Nothing desired: a record without a policy is adopted by the next converge, never stripped here.
      if (desired === null) return [];
      const items = await this.deps.applier.drift(conn, uuid, desired, this.facts());
      const repair = items.length > 0 && this.options.drift === 'repair';
      // The last drift found stays visible until a converge replaces the applied record; a clean
      // check only overwrites drift that was reported and not repaired (it has gone away).
      const previous = this.deps.store.getApplied(uuid)?.drift as { repaired?: boolean; items?: unknown[] } | null | undefined;
      if (items.length > 0 || (previous?.repaired === false && (previous.items?.length ?? 0) > 0)) {
        this.deps.store.setDrift(uuid, { checkedAt: new Date().toISOString(), items, repaired: repair });
      }
      if (items.length > 0) this.deps.logger.warn('drift', { domain: info.name, uuid, reason, items, action: repair ? 'repair' : 'report' });
      if (repair) await this.deps.applier.converge(conn, uuid, desired, this.facts());
      return items;
    });
  }

  private async verifyAll(): Promise<void> {
    if (!this.ready) return;
    const conn = this.deps.link.require();
    const domains = await conn.listAllDomains(ConnectListDomains.ACTIVE).catch(() => []);
    for (const d of domains) this.enqueueDriftCheck(d.uuid, 'periodic verify');
  }
}
