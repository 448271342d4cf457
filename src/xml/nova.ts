// Reading what OpenStack Nova writes into a domain's <metadata>: who owns the instance and which
// flavor it has, with the flavor's extra specs (Nova 32+ writes them under <nova:extraSpecs>).
import type { Element } from '@xmldom/xmldom';

import { child, children, parseDomainXml, root } from './dom.js';

export const NOVA_NS = 'http://openstack.org/xmlns/libvirt/nova/1.1';

export interface NovaIdentity {
  uuid?: string;
  name?: string;
}

export interface NovaInstance {
  /** The instance's display name (`<nova:name>`). */
  name?: string;
  project?: NovaIdentity;
  user?: NovaIdentity;
  flavor?: {
    name?: string;
    /** All extra specs of the flavor, `es2:*` and others; empty when Nova wrote none. */
    extraSpecs: Record<string, string>;
  };
}

function nova(parent: Element | null, name: string): Element | null {
  return parent === null ? null : child(parent, name, NOVA_NS);
}

function identity(el: Element | null): NovaIdentity | undefined {
  if (el === null) return undefined;
  const id: NovaIdentity = {};
  const uuid = el.getAttribute('uuid');
  if (uuid) id.uuid = uuid;
  const name = el.textContent?.trim();
  if (name) id.name = name;
  return id;
}

/**
 * The Nova instance metadata of a domain, or null when Nova did not create it.
 * @throws Es2Error VALIDATION_FAILED for malformed domain XML.
 */
export function readNovaInstance(domainXml: string): NovaInstance | null {
  const metadata = child(root(parseDomainXml(domainXml)), 'metadata');
  const instance = nova(metadata, 'instance');
  if (instance === null) return null;
  const result: NovaInstance = {};
  const name = nova(instance, 'name')?.textContent?.trim();
  if (name) result.name = name;
  const owner = nova(instance, 'owner');
  const project = identity(nova(owner, 'project'));
  if (project) result.project = project;
  const user = identity(nova(owner, 'user'));
  if (user) result.user = user;
  const flavor = nova(instance, 'flavor');
  if (flavor !== null) {
    const extraSpecs: Record<string, string> = {};
    const specs = nova(flavor, 'extraSpecs');
    for (const spec of specs === null ? [] : children(specs, 'extraSpec', NOVA_NS)) {
      const key = spec.getAttribute('name');
      if (key) extraSpecs[key] = spec.textContent ?? '';
    }
    result.flavor = { extraSpecs };
    const flavorName = flavor.getAttribute('name');
    if (flavorName) result.flavor.name = flavorName;
  }
  return result;
}
