// The plan: what applying (or removing) a policy does to one domain on this host. Produced by the
// pure XML engine (src/xml/), executed by src/apply/, shown by `?dryRun=true` and `es2ctl plan`.

/** A live libvirt operation, in the order src/apply/ executes them. CPU lists are sorted arrays. */
export type LiveOp =
  | { op: 'iothread-add'; id: number }
  | { op: 'iothread-del'; id: number }
  | { op: 'iothread-pin'; id: number; cpus: number[] }
  | { op: 'iothread-poll'; id: number; pollMaxNs?: number; pollGrow?: number; pollShrink?: number }
  | { op: 'vcpu-pin'; vcpu: number; cpus: number[] }
  | { op: 'metadata-set'; key: 'es2'; uri: 'urn:x-es2:policy:1'; xml: string }
  | { op: 'metadata-remove'; key: 'es2'; uri: 'urn:x-es2:policy:1' };

/** One change to the persistent domain definition, for people to read (the XML itself is the truth). */
export interface XmlChange {
  /** Location in the domain XML, e.g. `/domain/cputune/vcpupin[@vcpu='0']`. */
  path: string;
  action: 'add' | 'set' | 'remove';
  before?: string;
  after?: string;
}

/** A host-global knob es2 holds for this domain (journaled with the original value). */
export interface KnobChange {
  knob: 'halt_poll_ns';
  value: number;
}

/** Per-VM files of the ES2 kernel interface (`sys/kernel/es2/vms/<pid>/`), when present. */
export interface Es2KernelSettings {
  enabled: boolean;
  kickRateThreshold?: number;
  idleTimeoutUs?: number;
  redirect?: 'off' | 'running' | 'labeled';
  redirectVcpus?: number[];
  haltPollNs?: number;
}

/** A requested setting that cannot act on this host, and why. Never dropped silently. */
export interface NotApplicable {
  /** JSON pointer into the policy, e.g. `/hybridIo/kickRateThreshold`. */
  setting: string;
  reason: string;
}

export interface Plan {
  live: LiveOp[];
  persistent: XmlChange[];
  hostKnobs: KnobChange[];
  /** null when the host has no ES2 kernel interface or the policy asks nothing of it. */
  es2Kernel: Es2KernelSettings | null;
  notApplicable: NotApplicable[];
  warnings: string[];
  /**
   * True when applying changes nothing (already applied): the definition already matches. `live`
   * may still hold `iothread-poll` operations: before libvirt 9.4 poll parameters exist only in the
   * running domain and no XML shows them, so plans always (re)set them; repeating them is harmless.
   */
  noop: boolean;
}
