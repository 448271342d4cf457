// The shape of the native addon's exports, as native/src/addon.cc defines them.

export type TypedParamValue = number | bigint | boolean | string;

export interface NativeDomainRef {
  name: string;
  uuid: string;
  /** -1 when the domain is not running. */
  id: number;
}

export interface NativeStatsRecord extends NativeDomainRef {
  stats: Record<string, TypedParamValue>;
}

export type NativeEvent =
  | { type: 'lifecycle'; domain: NativeDomainRef; event: number; detail: number }
  | { type: 'tunable'; domain: NativeDomainRef; params: Record<string, TypedParamValue> }
  | { type: 'metadata'; domain: NativeDomainRef; metadataType: number; nsuri: string | null }
  | { type: 'closed'; reason: number };

export interface NativeConnection {
  open(uri: string, readOnly: boolean): Promise<void>;
  close(): Promise<void>;
  isOpen(): boolean;
  /** Returns the messages of event registrations the driver refused. */
  setEventHandler(handler: (event: NativeEvent) => void): string[];
  getLibVersion(): Promise<number>;
  getVersion(): Promise<number>;
  getType(): Promise<string>;
  getHostname(): Promise<string>;
  getCapabilities(): Promise<string>;
  isAlive(): Promise<boolean>;
  nodeGetInfo(): Promise<{
    model: string; memoryKiB: number; cpus: number; mhz: number;
    nodes: number; sockets: number; cores: number; threads: number;
  }>;
  nodeGetCPUMap(): Promise<{ total: number; online: number[] }>;
  listAllDomains(flags: number): Promise<NativeDomainRef[]>;
  lookupDomainByName(name: string): Promise<NativeDomainRef>;
  lookupDomainByUUID(uuid: string): Promise<NativeDomainRef>;
  domainGetInfo(uuid: string): Promise<NativeDomainRef & {
    state: number; maxMemKiB: number; memoryKiB: number; vcpus: number; cpuTimeNs: bigint;
    active: boolean; persistent: boolean;
  }>;
  domainGetState(uuid: string): Promise<{ state: number; reason: number }>;
  domainGetXMLDesc(uuid: string, flags: number): Promise<string>;
  domainDefineXML(xml: string): Promise<NativeDomainRef>;
  domainCreate(uuid: string): Promise<void>;
  domainDestroy(uuid: string): Promise<void>;
  domainUndefine(uuid: string, flags: number): Promise<void>;
  domainPinVcpu(uuid: string, vcpu: number, cpus: number[], flags: number): Promise<void>;
  domainGetVcpuPinInfo(uuid: string, flags: number): Promise<number[][]>;
  domainPinEmulator(uuid: string, cpus: number[], flags: number): Promise<void>;
  domainGetEmulatorPinInfo(uuid: string, flags: number): Promise<number[]>;
  domainAddIOThread(uuid: string, id: number, flags: number): Promise<void>;
  domainDelIOThread(uuid: string, id: number, flags: number): Promise<void>;
  domainPinIOThread(uuid: string, id: number, cpus: number[], flags: number): Promise<void>;
  domainGetIOThreadInfo(uuid: string, flags: number): Promise<{ id: number; cpus: number[] }[]>;
  domainSetIOThreadParams(
    uuid: string, id: number,
    params: { poll_max_ns?: bigint | number; poll_grow?: number; poll_shrink?: number }, flags: number,
  ): Promise<void>;
  domainSetMetadata(
    uuid: string, type: number, metadata: string | null, key: string | null, uri: string | null, flags: number,
  ): Promise<void>;
  domainGetMetadata(uuid: string, type: number, uri: string | null, flags: number): Promise<string>;
  getAllDomainStats(stats: number, flags: number): Promise<NativeStatsRecord[]>;
  domainListGetStats(uuids: string[], stats: number, flags: number): Promise<NativeStatsRecord[]>;
}

export interface NativeModule {
  Connection: new () => NativeConnection;
  /** LIBVIR_VERSION_NUMBER the addon was compiled against. */
  version: number;
}
