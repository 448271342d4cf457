// Typed, promise-based libvirt for es2. The only module that talks to the native addon.
import { EventEmitter } from 'node:events';

import { nativeAddon } from './addon.js';
import {
  ConnectCloseReasonNames,
  ErrorNumber,
  LifecycleDetailNames,
  LifecycleEventNames,
  type LifecycleEventName,
} from './constants.js';
import { LibvirtError } from './errors.js';
import type { NativeConnection, NativeDomainRef, NativeEvent, TypedParamValue } from './native-types.js';

export * from './constants.js';
export * from './errors.js';
export type { TypedParamValue } from './native-types.js';

export interface DomainRef {
  name: string;
  uuid: string;
  /** null when the domain is not running. */
  id: number | null;
}

export interface DomainInfo extends DomainRef {
  state: number;
  maxMemKiB: number;
  memoryKiB: number;
  vcpus: number;
  cpuTimeNs: bigint;
  active: boolean;
  persistent: boolean;
}

export interface NodeInfo {
  model: string;
  memoryKiB: number;
  cpus: number;
  mhz: number;
  nodes: number;
  sockets: number;
  cores: number;
  threads: number;
}

export interface IOThreadInfo {
  id: number;
  cpus: number[];
}

export interface IOThreadParams {
  /** ULLONG in libvirt: a bigint keeps every value, a number must be a safe integer. */
  pollMaxNs?: bigint | number;
  pollGrow?: number;
  pollShrink?: number;
}

export interface DomainStatsRecord extends DomainRef {
  /** Typed parameters as libvirt names them (`vcpu.0.exits.sum`); 64-bit counters are bigint. */
  stats: Record<string, TypedParamValue>;
}

export interface LifecycleEvent {
  domain: DomainRef;
  event: LifecycleEventName | 'unknown';
  /** Detail name where es2 knows it (`booted`, `migrated`, `destroyed`, ...), else the number. */
  detail: string | number;
  eventCode: number;
  detailCode: number;
}

export interface TunableEvent {
  domain: DomainRef;
  params: Record<string, TypedParamValue>;
}

export interface MetadataEvent {
  domain: DomainRef;
  type: number;
  nsuri: string | null;
}

export interface ClosedEvent {
  reason: (typeof ConnectCloseReasonNames)[number] | 'unknown';
}

export interface ConnectionEvents {
  lifecycle: [LifecycleEvent];
  tunable: [TunableEvent];
  metadata: [MetadataEvent];
  closed: [ClosedEvent];
}

export interface OpenOptions {
  readOnly?: boolean;
  /** Register for domain events (LIFECYCLE, TUNABLE, METADATA_CHANGE) and the close notice. */
  events?: boolean;
}

/** libvirt encodes versions as major * 1,000,000 + minor * 1,000 + release. */
export function formatVersion(v: number): string {
  return `${Math.floor(v / 1_000_000)}.${Math.floor(v / 1000) % 1000}.${v % 1000}`;
}

export function parseVersion(s: string): number {
  const m = /^(\d+)\.(\d+)(?:\.(\d+))?$/.exec(s.trim());
  if (m === null) throw new RangeError(`not a version: ${JSON.stringify(s)}`);
  return Number(m[1]) * 1_000_000 + Number(m[2]) * 1000 + Number(m[3] ?? 0);
}

/** libvirt version the addon was compiled against. */
export function bindingVersion(): number {
  return nativeAddon().version;
}

function toRef(r: NativeDomainRef): DomainRef {
  return { name: r.name, uuid: r.uuid, id: r.id >= 0 ? r.id : null };
}

/**
 * One libvirt connection. Calls run off the JS thread and reject with LibvirtError. When libvirt
 * reports the connection closed (daemon gone, keepalive timeout), every call in flight rejects,
 * later calls reject with INVALID_CONN, and `closed` is emitted once; open a new Connection to
 * reconnect.
 */
export class Connection extends EventEmitter<ConnectionEvents> {
  readonly uri: string;
  private readonly native: NativeConnection;
  private readonly inflight = new Set<{ promise: Promise<unknown>; reject: (e: unknown) => void }>();
  private lost: LibvirtError | undefined;
  private closing = false;

  private constructor(uri: string, native: NativeConnection) {
    super();
    this.uri = uri;
    this.native = native;
  }

  static async open(uri: string, options: OpenOptions = {}): Promise<Connection> {
    const native = new (nativeAddon().Connection)();
    try {
      await native.open(uri, options.readOnly ?? false);
    } catch (err) {
      throw LibvirtError.from(err);
    }
    const conn = new Connection(uri, native);
    if (options.events ?? true) native.setEventHandler((ev) => conn.dispatch(ev));
    return conn;
  }

  /** False after close() or after libvirt reported the connection closed. */
  get isOpen(): boolean {
    return this.lost === undefined && !this.closing && this.native.isOpen();
  }

  /**
   * Closes the connection. Calls in flight get up to `timeoutMs` to finish; past that they are
   * rejected (libvirt still frees the connection when the last of them returns).
   */
  async close(timeoutMs = 5000): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    const pending = [...this.inflight];
    if (pending.length > 0) {
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<void>((resolve) => {
        timer = setTimeout(resolve, timeoutMs);
      });
      await Promise.race([Promise.allSettled(pending.map((p) => p.promise)), timeout]);
      clearTimeout(timer);
      this.rejectInflight(new LibvirtError('connection closed by client', ErrorNumber.INVALID_CONN));
    }
    await this.native.close();
  }

  private dispatch(ev: NativeEvent): void {
    switch (ev.type) {
      case 'lifecycle': {
        const name = LifecycleEventNames[ev.event] ?? 'unknown';
        const details = name === 'unknown' ? undefined : LifecycleDetailNames[name];
        this.emit('lifecycle', {
          domain: toRef(ev.domain),
          event: name,
          detail: details?.[ev.detail] ?? ev.detail,
          eventCode: ev.event,
          detailCode: ev.detail,
        });
        break;
      }
      case 'tunable':
        this.emit('tunable', { domain: toRef(ev.domain), params: ev.params });
        break;
      case 'metadata':
        this.emit('metadata', { domain: toRef(ev.domain), type: ev.metadataType, nsuri: ev.nsuri });
        break;
      case 'closed': {
        const reason = ConnectCloseReasonNames[ev.reason] ?? 'unknown';
        this.lost = new LibvirtError(`connection to ${this.uri} closed (${reason})`, ErrorNumber.INVALID_CONN);
        this.rejectInflight(this.lost);
        this.emit('closed', { reason });
        break;
      }
    }
  }

  private rejectInflight(err: LibvirtError): void {
    for (const entry of this.inflight) entry.reject(err);
    this.inflight.clear();
  }

  private call<T>(fn: () => Promise<T>): Promise<T> {
    if (this.lost !== undefined) return Promise.reject(this.lost);
    if (this.closing) return Promise.reject(new LibvirtError('connection is closed', ErrorNumber.INVALID_CONN));
    let entry!: { promise: Promise<unknown>; reject: (e: unknown) => void };
    const promise = new Promise<T>((resolve, reject) => {
      entry = { promise: undefined as unknown as Promise<unknown>, reject };
      fn().then(resolve, (err: unknown) => reject(LibvirtError.from(err)));
    });
    entry.promise = promise;
    this.inflight.add(entry);
    const done = (): void => {
      this.inflight.delete(entry);
    };
    promise.then(done, done);
    return promise;
  }

  // --- host ---------------------------------------------------------------------------------

  getLibVersion(): Promise<number> {
    return this.call(() => this.native.getLibVersion());
  }

  /** Hypervisor version (QEMU's for qemu:///system). */
  getVersion(): Promise<number> {
    return this.call(() => this.native.getVersion());
  }

  getType(): Promise<string> {
    return this.call(() => this.native.getType());
  }

  getHostname(): Promise<string> {
    return this.call(() => this.native.getHostname());
  }

  getCapabilities(): Promise<string> {
    return this.call(() => this.native.getCapabilities());
  }

  isAlive(): Promise<boolean> {
    return this.call(() => this.native.isAlive());
  }

  nodeGetInfo(): Promise<NodeInfo> {
    return this.call(() => this.native.nodeGetInfo());
  }

  nodeGetCPUMap(): Promise<{ total: number; online: number[] }> {
    return this.call(() => this.native.nodeGetCPUMap());
  }

  // --- domains ------------------------------------------------------------------------------

  async listAllDomains(flags = 0): Promise<DomainRef[]> {
    return (await this.call(() => this.native.listAllDomains(flags))).map(toRef);
  }

  async lookupDomainByName(name: string): Promise<DomainRef> {
    return toRef(await this.call(() => this.native.lookupDomainByName(name)));
  }

  async lookupDomainByUUID(uuid: string): Promise<DomainRef> {
    return toRef(await this.call(() => this.native.lookupDomainByUUID(uuid)));
  }

  async domainGetInfo(uuid: string): Promise<DomainInfo> {
    const info = await this.call(() => this.native.domainGetInfo(uuid));
    return { ...info, id: info.id >= 0 ? info.id : null };
  }

  domainGetState(uuid: string): Promise<{ state: number; reason: number }> {
    return this.call(() => this.native.domainGetState(uuid));
  }

  domainGetXMLDesc(uuid: string, flags = 0): Promise<string> {
    return this.call(() => this.native.domainGetXMLDesc(uuid, flags));
  }

  async domainDefineXML(xml: string): Promise<DomainRef> {
    return toRef(await this.call(() => this.native.domainDefineXML(xml)));
  }

  domainCreate(uuid: string): Promise<void> {
    return this.call(() => this.native.domainCreate(uuid));
  }

  domainDestroy(uuid: string): Promise<void> {
    return this.call(() => this.native.domainDestroy(uuid));
  }

  domainUndefine(uuid: string, flags = 0): Promise<void> {
    return this.call(() => this.native.domainUndefine(uuid, flags));
  }

  // --- pinning ------------------------------------------------------------------------------

  /** The test driver accepts only AFFECT_CURRENT (0) here. */
  domainPinVcpu(uuid: string, vcpu: number, cpus: readonly number[], flags = 0): Promise<void> {
    return this.call(() => this.native.domainPinVcpu(uuid, vcpu, [...cpus], flags));
  }

  /** One CPU list per vCPU. */
  domainGetVcpuPinInfo(uuid: string, flags = 0): Promise<number[][]> {
    return this.call(() => this.native.domainGetVcpuPinInfo(uuid, flags));
  }

  domainPinEmulator(uuid: string, cpus: readonly number[], flags = 0): Promise<void> {
    return this.call(() => this.native.domainPinEmulator(uuid, [...cpus], flags));
  }

  domainGetEmulatorPinInfo(uuid: string, flags = 0): Promise<number[]> {
    return this.call(() => this.native.domainGetEmulatorPinInfo(uuid, flags));
  }

  // --- IOThreads ----------------------------------------------------------------------------

  domainAddIOThread(uuid: string, id: number, flags = 0): Promise<void> {
    return this.call(() => this.native.domainAddIOThread(uuid, id, flags));
  }

  domainDelIOThread(uuid: string, id: number, flags = 0): Promise<void> {
    return this.call(() => this.native.domainDelIOThread(uuid, id, flags));
  }

  domainPinIOThread(uuid: string, id: number, cpus: readonly number[], flags = 0): Promise<void> {
    return this.call(() => this.native.domainPinIOThread(uuid, id, [...cpus], flags));
  }

  domainGetIOThreadInfo(uuid: string, flags = 0): Promise<IOThreadInfo[]> {
    return this.call(() => this.native.domainGetIOThreadInfo(uuid, flags));
  }

  /** Live only before libvirt 9.4: the values return to defaults at the next start. */
  domainSetIOThreadParams(uuid: string, id: number, params: IOThreadParams, flags = 0): Promise<void> {
    const p: { poll_max_ns?: bigint | number; poll_grow?: number; poll_shrink?: number } = {};
    if (params.pollMaxNs !== undefined) p.poll_max_ns = params.pollMaxNs;
    if (params.pollGrow !== undefined) p.poll_grow = params.pollGrow;
    if (params.pollShrink !== undefined) p.poll_shrink = params.pollShrink;
    return this.call(() => this.native.domainSetIOThreadParams(uuid, id, p, flags));
  }

  // --- metadata -----------------------------------------------------------------------------

  /**
   * Sets (or with `metadata` null removes) metadata. For ELEMENT, `key` is the namespace prefix
   * and `uri` the namespace.
   */
  domainSetMetadata(
    uuid: string,
    type: number,
    metadata: string | null,
    key: string | null,
    uri: string | null,
    flags = 0,
  ): Promise<void> {
    return this.call(() => this.native.domainSetMetadata(uuid, type, metadata, key, uri, flags));
  }

  /** Rejects with NO_DOMAIN_METADATA (see isNoMetadata) when absent. */
  domainGetMetadata(uuid: string, type: number, uri: string | null, flags = 0): Promise<string> {
    return this.call(() => this.native.domainGetMetadata(uuid, type, uri, flags));
  }

  // --- stats --------------------------------------------------------------------------------

  /** One virConnectGetAllDomainStats call; `stats` from DomainStatsTypes, flags from GetAllDomainStatsFlags. */
  async getAllDomainStats(stats: number, flags = 0): Promise<DomainStatsRecord[]> {
    const records = await this.call(() => this.native.getAllDomainStats(stats >>> 0, flags >>> 0));
    return records.map((r) => ({ ...toRef(r), stats: r.stats }));
  }

  /** virDomainListGetStats for the given domains (the per-domain form that exporters use). */
  async domainListGetStats(uuids: readonly string[], stats: number, flags = 0): Promise<DomainStatsRecord[]> {
    const records = await this.call(() => this.native.domainListGetStats([...uuids], stats >>> 0, flags >>> 0));
    return records.map((r) => ({ ...toRef(r), stats: r.stats }));
  }
}
