// Fitting a policy that arrived with a domain (migration, restore) to this host: es2 must never
// make a migration fail, so pins that cannot exist here are narrowed or dropped (labels and the
// rest of the policy stay), and a posted-interrupt requirement this host cannot meet is relaxed.
import { describeCpus, formatCpuset, parseCpuset } from './cpuset.js';
import type { HostFacts } from './host-facts.js';
import type { Policy } from './types.js';

export interface FittedPolicy {
  policy: Policy;
  /** What changed and why, for the hook's log and the operator. */
  notes: string[];
}

export function fitPolicyToHost(policy: Policy, host: HostFacts): FittedPolicy {
  const pool = new Set(host.cpuPool ?? host.cpus);
  const notes: string[] = [];
  const fit = (cpuset: string, what: string): string | undefined => {
    let cpus: number[];
    try {
      cpus = parseCpuset(cpuset);
    } catch {
      notes.push(`${what}: cpuset ${JSON.stringify(cpuset)} is malformed, pin dropped`);
      return undefined;
    }
    const kept = cpus.filter((c) => pool.has(c));
    if (kept.length === cpus.length) return cpuset;
    if (kept.length === 0) {
      notes.push(`${what}: none of CPUs ${formatCpuset(cpus)} exists among this host's CPUs ${describeCpus(pool)}, pin dropped`);
      return undefined;
    }
    notes.push(`${what}: narrowed from ${formatCpuset(cpus)} to ${formatCpuset(kept)} (the rest does not exist here)`);
    return formatCpuset(kept);
  };

  const fitted: Policy = structuredClone(policy);
  fitted.vcpus = fitted.vcpus?.map((entry) => {
    if (entry.cpuset === undefined) return entry;
    const { cpuset, ...rest } = entry;
    const kept = fit(cpuset, `vCPU ${entry.vcpu}`);
    return kept === undefined ? rest : { ...rest, cpuset: kept };
  });
  if (fitted.vcpus === undefined) delete fitted.vcpus;
  const io = fitted.hybridIo;
  if (io?.iothreadCpuset !== undefined) {
    const kept = fit(io.iothreadCpuset, 'IOThreads');
    if (kept === undefined) delete io.iothreadCpuset;
    else io.iothreadCpuset = kept;
  }
  if (fitted.postedInterrupts === 'required' && host.postedInterrupts === false) {
    fitted.postedInterrupts = 'preferred';
    notes.push('posted interrupts are required but this host has none: relaxed to preferred so the domain can run here');
  }
  return { policy: fitted, notes };
}
