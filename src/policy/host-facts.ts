// Facts about the host that the pure core (policy, xml) needs. Probed by src/host/ and passed in
// as arguments; the core never probes anything itself.

export interface HostFacts {
  /** Host CPUs that exist and are online, sorted ascending. */
  cpus: number[];
  /** CPUs es2 may pin to (es2d config `cpuPool`); undefined means all of `cpus`. */
  cpuPool?: number[];
  /** Connected libvirt version, libvirt encoding (9.0.0 = 9000000). */
  libvirtVersion: number;
  /** An ES2-patched KVM is present (`<host-root>/sys/kernel/es2/version`). */
  es2Kernel: boolean;
  /** Posted interrupts (APICv posted_intr / AVIC): true, false, or null when it cannot be told. */
  postedInterrupts: boolean | null;
  /** `kvm.halt_poll_ns` exists and can be written. */
  haltPollKnob: boolean;
}

/** libvirt gained `<poll>` under `<iothread>` in 9.4.0; before it poll params are live-only. */
export const LIBVIRT_IOTHREAD_POLL_XML = 9_004_000;
