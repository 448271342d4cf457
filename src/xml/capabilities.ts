// Reading libvirt's host capabilities XML (virConnectGetCapabilities).
import { parseXml } from './dom.js';

/**
 * The host's CPUs from `<host><topology><cells>`: what exists to pin to. libvirt lists one cell
 * even on hosts without NUMA; offline CPUs are absent (or carry no socket_id).
 */
export function hostCpusFromCapabilities(xml: string): number[] {
  const doc = parseXml(xml, 'capabilities');
  const cpus = new Set<number>();
  const nodes = doc.getElementsByTagName('cpu');
  for (let k = 0; k < nodes.length; k++) {
    const cpu = nodes.item(k)!;
    // <host><cpu> (the model) has no id; topology CPUs do.
    const id = cpu.getAttribute('id');
    if (id === null || !/^\d+$/.test(id) || cpu.parentNode?.nodeName !== 'cpus') continue;
    if (cpu.hasAttribute('core_id') && !cpu.hasAttribute('socket_id')) continue;
    cpus.add(Number(id));
  }
  return [...cpus].sort((a, b) => a - b);
}
