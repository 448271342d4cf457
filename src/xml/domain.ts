// Reading the parts of a libvirt domain definition that es2 works with, and where libvirt puts them.
import type { Document, Element } from '@xmldom/xmldom';

import { validationFailed } from '../errors/index.js';
import type { DomainShape } from '../policy/decide.js';
import { child, children, root, textOf } from './dom.js';

// libvirt's formatter order (virDomainDefFormatInternal) for the top-level elements es2 inserts
// next to. libvirt's schema interleaves most of them, but keeping its order keeps diffs against
// `virsh dumpxml` small and people's expectations met.
export const DOMAIN_ORDER = [
  'name', 'uuid', 'genid', 'title', 'description', 'metadata', 'maxMemory', 'memory', 'currentMemory',
  'blkiotune', 'memtune', 'memoryBacking', 'vcpu', 'vcpus', 'iothreads', 'iothreadids', 'defaultiothread',
  'cputune', 'numatune', 'resource', 'sysinfo', 'bootloader', 'bootloader_args', 'os', 'idmap',
  'features', 'cpu', 'clock', 'on_poweroff', 'on_reboot', 'on_crash', 'on_lockfailure', 'pm', 'perf',
  'devices', 'seclabel', 'keywrap', 'launchSecurity',
] as const;

// virDomainCputuneDefFormat's order: all vcpupin, then emulatorpin, then all iothreadpin, ...
export const CPUTUNE_ORDER = [
  'shares', 'period', 'quota', 'global_period', 'global_quota', 'emulator_period', 'emulator_quota',
  'iothread_period', 'iothread_quota', 'vcpupin', 'emulatorpin', 'iothreadpin', 'emulatorsched',
  'vcpusched', 'iothreadsched', 'cachetune', 'memorytune',
] as const;

function xmlNumber(text: string | null, path: string): number | null {
  if (text === null) return null;
  const trimmed = text.trim();
  if (!/^[0-9]+$/.test(trimmed)) throw validationFailed(`domain XML: ${path} is not a number: "${trimmed}"`, [{ path, message: 'not a number' }]);
  return Number(trimmed);
}

/** `<vcpu>`: the maximum vCPU count (libvirt's default is 1). */
export function vcpuCount(doc: Document): number {
  return xmlNumber(textOf(child(root(doc), 'vcpu')), '/domain/vcpu') ?? 1;
}

/**
 * More IOThreads than any real domain has (QEMU runs a host thread for each); a count beyond it
 * is refused rather than enumerated id by id.
 */
export const MAX_IOTHREADS = 4096;

/**
 * The domain's IOThread ids: those `<iothreadids>` lists, then, when `<iothreads>` counts more,
 * the smallest free ids, as libvirt assigns them. An id listed twice is refused (libvirt refuses
 * it as well, and es2's record could not tell the two apart).
 */
export function iothreadIds(doc: Document): number[] {
  const count = xmlNumber(textOf(child(root(doc), 'iothreads')), '/domain/iothreads') ?? 0;
  if (count > MAX_IOTHREADS) {
    throw validationFailed(`domain XML: ${count} IOThreads is more than es2 handles (${MAX_IOTHREADS})`, [{ path: '/domain/iothreads', message: 'too many' }]);
  }
  const listedIn = child(root(doc), 'iothreadids');
  const listed = (listedIn === null ? [] : children(listedIn, 'iothread'))
    .map((el) => xmlNumber(el.getAttribute('id'), '/domain/iothreadids/iothread/@id') ?? 0);
  const ids = new Set(listed);
  if (ids.size < listed.length) {
    const twice = listed.find((id, i) => listed.indexOf(id) !== i);
    throw validationFailed(`domain XML: IOThread id ${twice} is listed twice`, [{ path: `/domain/iothreadids/iothread[@id='${twice}']`, message: 'duplicate id' }]);
  }
  for (let id = 1; ids.size < count; id++) ids.add(id);
  return [...ids].sort((a, b) => a - b);
}

/**
 * `<disk>` elements whose `<target bus='virtio'>`: the only ones that take an IOThread. es2's
 * record names a disk by its target, so a target used twice (libvirt refuses such a definition
 * too) is refused rather than recorded ambiguously.
 */
export function virtioDisks(doc: Document): Element[] {
  const devices = child(root(doc), 'devices');
  if (devices === null) return [];
  const disks = children(devices, 'disk').filter((disk) => {
    const target = child(disk, 'target');
    return target !== null && target.getAttribute('bus') === 'virtio' && target.getAttribute('dev') !== '';
  });
  const seen = new Set<string>();
  for (const disk of disks) {
    const dev = diskTarget(disk);
    if (seen.has(dev)) {
      throw validationFailed(`domain XML: two disks have target dev "${dev}"`, [{ path: `/domain/devices/disk/target[@dev='${dev}']`, message: 'duplicate target' }]);
    }
    seen.add(dev);
  }
  return disks;
}

export function diskTarget(disk: Element): string {
  return child(disk, 'target')?.getAttribute('dev') ?? '';
}

function virtioInterfaces(doc: Document): string[] {
  const devices = child(root(doc), 'devices');
  if (devices === null) return [];
  return children(devices, 'interface')
    .filter((nic) => child(nic, 'model')?.getAttribute('type') === 'virtio')
    .map((nic, i) => {
      const mac = child(nic, 'mac')?.getAttribute('address');
      return mac ? `interface ${mac}` : `interface #${i}`;
    });
}

/** What the policy engine needs to know about the domain. */
export function readDomainShape(doc: Document): DomainShape {
  return {
    vcpus: vcpuCount(doc),
    iothreadIds: iothreadIds(doc),
    virtioDisks: virtioDisks(doc).map(diskTarget),
    virtioInterfaces: virtioInterfaces(doc),
  };
}
