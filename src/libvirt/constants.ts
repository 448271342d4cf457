// Typed libvirt flags and enums (values from libvirt 9.0's public headers). Callers use these
// names, never bare numbers.

export const ConnectListDomains = {
  ACTIVE: 1 << 0,
  INACTIVE: 1 << 1,
  PERSISTENT: 1 << 2,
  TRANSIENT: 1 << 3,
  RUNNING: 1 << 4,
  PAUSED: 1 << 5,
  SHUTOFF: 1 << 6,
  OTHER: 1 << 7,
} as const;

export const DomainModificationImpact = {
  AFFECT_CURRENT: 0,
  AFFECT_LIVE: 1 << 0,
  AFFECT_CONFIG: 1 << 1,
} as const;

export const DomainXMLFlags = {
  SECURE: 1 << 0,
  INACTIVE: 1 << 1,
  UPDATE_CPU: 1 << 2,
  MIGRATABLE: 1 << 3,
} as const;

export const DomainUndefineFlags = {
  MANAGED_SAVE: 1 << 0,
  SNAPSHOTS_METADATA: 1 << 1,
  NVRAM: 1 << 2,
  KEEP_NVRAM: 1 << 3,
  CHECKPOINTS_METADATA: 1 << 4,
} as const;

export const DomainMetadataType = {
  DESCRIPTION: 0,
  TITLE: 1,
  ELEMENT: 2,
} as const;

export const DomainStatsTypes = {
  STATE: 1 << 0,
  CPU_TOTAL: 1 << 1,
  BALLOON: 1 << 2,
  VCPU: 1 << 3,
  INTERFACE: 1 << 4,
  BLOCK: 1 << 5,
  PERF: 1 << 6,
  IOTHREAD: 1 << 7,
  MEMORY: 1 << 8,
  DIRTYRATE: 1 << 9,
  VM: 1 << 10,
} as const;

export const GetAllDomainStatsFlags = {
  ACTIVE: ConnectListDomains.ACTIVE,
  INACTIVE: ConnectListDomains.INACTIVE,
  PERSISTENT: ConnectListDomains.PERSISTENT,
  TRANSIENT: ConnectListDomains.TRANSIENT,
  RUNNING: ConnectListDomains.RUNNING,
  PAUSED: ConnectListDomains.PAUSED,
  SHUTOFF: ConnectListDomains.SHUTOFF,
  OTHER: ConnectListDomains.OTHER,
  NOWAIT: 1 << 29,
  BACKING: 1 << 30,
  // 1 << 31 does not fit a signed 32-bit shift in JS.
  ENFORCE_STATS: 0x80000000,
} as const;

export const DomainState = {
  NOSTATE: 0,
  RUNNING: 1,
  BLOCKED: 2,
  PAUSED: 3,
  SHUTDOWN: 4,
  SHUTOFF: 5,
  CRASHED: 6,
  PMSUSPENDED: 7,
} as const;

/** Lifecycle event types, index = libvirt's VIR_DOMAIN_EVENT_* value. */
export const LifecycleEventNames = [
  'defined', 'undefined', 'started', 'suspended', 'resumed', 'stopped', 'shutdown', 'pmsuspended', 'crashed',
] as const;
export type LifecycleEventName = (typeof LifecycleEventNames)[number];

/** Detail names for the lifecycle events es2 reacts to. */
export const LifecycleDetailNames: Partial<Record<LifecycleEventName, readonly string[]>> = {
  defined: ['added', 'updated', 'renamed', 'from-snapshot'],
  undefined: ['removed', 'renamed'],
  started: ['booted', 'migrated', 'restored', 'from-snapshot', 'wakeup'],
  stopped: ['shutdown', 'destroyed', 'crashed', 'migrated', 'saved', 'failed', 'from-snapshot'],
};

export const ConnectCloseReasonNames = ['error', 'eof', 'keepalive', 'client'] as const;

/** libvirt error codes (virErrorNumber) that es2 tests for. */
export const ErrorNumber = {
  INTERNAL_ERROR: 1,
  NO_SUPPORT: 3,
  NO_CONNECT: 5,
  INVALID_CONN: 6,
  INVALID_ARG: 8,
  OPERATION_FAILED: 9,
  XML_ERROR: 27,
  SYSTEM_ERROR: 38,
  RPC: 39,
  NO_DOMAIN: 42,
  AUTH_FAILED: 45,
  OPERATION_INVALID: 55,
  CONFIG_UNSUPPORTED: 67,
  OPERATION_TIMEOUT: 68,
  NO_DOMAIN_METADATA: 80,
  OPERATION_UNSUPPORTED: 84,
  AGENT_UNRESPONSIVE: 86,
} as const;
