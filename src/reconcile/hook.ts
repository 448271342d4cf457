// Answers the libvirt qemu hook (POST /v1/hooks/libvirt). libvirt is blocked on the hook while
// es2d answers, so nothing here calls libvirt: knob holds use the store and the XML on stdin,
// migrate/restore rewrites are pure, and work for `started` is queued for after the answer.
import type { KnobManager } from '../host/index.js';
import { isKnobName } from '../host/index.js';
import { fitPolicyToHost, type HostFacts } from '../policy/index.js';
import { apply as applyXml, plan as planXml, readRecordedPolicy, remove as removeXml } from '../xml/index.js';
import { parseXml } from '../xml/dom.js';
import type { Logger } from '../daemon/logger.js';
import type { Controller } from './controller.js';

export interface HookRequest {
  name: string;
  op: string;
  subop: string;
  extra: string;
  xml: string;
}

export interface HookAnswer {
  /** Printed by the hook for migrate/restore; null = nothing (unchanged). */
  xml: string | null;
  notes: string[];
}

/** The domain's UUID and name from its XML; nulls when it is not domain XML es2 can read. */
function identityOf(xml: string): { uuid: string | null; name: string | null } {
  try {
    const root = parseXml(xml, 'domain XML').documentElement;
    const child = (tag: string): string | null => {
      for (let n = root?.firstChild ?? null; n !== null; n = n.nextSibling) {
        if (n.nodeName === tag) return n.textContent?.trim() ?? null;
      }
      return null;
    };
    const uuid = child('uuid')?.toLowerCase() ?? '';
    return { uuid: /^[0-9a-f-]{32,36}$/.test(uuid) ? uuid : null, name: child('name') };
  } catch {
    return { uuid: null, name: null };
  }
}

/**
 * The domain XML rewritten for this host: es2's pins re-validated against this host's CPUs and
 * pool, the policy recorded in the es2 metadata kept (minus pins that cannot exist here). Never
 * throws: what cannot be fitted is taken out of es2's hands rather than failing the migration.
 */
export function rewriteForHost(xml: string, facts: HostFacts): HookAnswer {
  let recorded;
  try {
    recorded = readRecordedPolicy(xml);
  } catch (err) {
    return stripEs2(xml, facts, [`es2 metadata unreadable: ${(err as Error).message}`]);
  }
  if (recorded === null) return { xml: null, notes: [] };
  const { policy, notes } = fitPolicyToHost(recorded, facts);
  try {
    const out = applyXml(xml, policy, facts);
    return notes.length === 0 && out.plan.noop ? { xml: null, notes } : { xml: out.xml, notes };
  } catch (err) {
    return stripEs2(xml, facts, [...notes, `es2 settings removed for this host: ${(err as Error).message}`]);
  }
}

function stripEs2(xml: string, facts: HostFacts, notes: string[]): HookAnswer {
  try {
    return { xml: removeXml(xml, facts).xml, notes };
  } catch (err) {
    return { xml: null, notes: [...notes, `left unchanged: ${(err as Error).message}`] };
  }
}

export class HookService {
  constructor(
    private readonly controller: Controller,
    private readonly knobs: KnobManager,
    private readonly logger: Logger,
  ) {}

  handle(req: HookRequest): HookAnswer {
    const facts = this.controller.knownFacts;
    const { uuid, name: xmlName } = req.xml === '' ? { uuid: null, name: null } : identityOf(req.xml);
    // The shell hook does not send the name argument; libvirt's XML carries it.
    const name = req.name !== '' ? req.name : (xmlName ?? '');
    const log = (action: string, extra: Record<string, unknown> = {}): void => {
      this.logger.info('hook', { domain: name, uuid, op: req.op, subop: req.subop, action, ...extra });
    };
    switch (req.op) {
      case 'migrate':
      case 'restore': {
        if (facts === null || req.xml === '') {
          log('unchanged: host facts not known yet');
          return { xml: null, notes: [] };
        }
        const answer = rewriteForHost(req.xml, facts);
        log(answer.xml === null ? 'unchanged' : 'rewritten', { notes: answer.notes });
        return answer;
      }
      case 'prepare': {
        if (facts === null || uuid === null) return { xml: null, notes: [] };
        const held = this.holdKnobs(uuid, req.xml, facts);
        log('knob holds', { held });
        return { xml: null, notes: [] };
      }
      case 'started':
        if (uuid !== null) {
          // After the answer: libvirt waits for the hook, and converging calls libvirt.
          setImmediate(() => {
            this.controller.converge(uuid, 'hook started').catch((err: unknown) => {
              this.logger.warn('re-apply after start failed', { domain: name, uuid, error: (err as Error).message });
            });
          });
          log('re-apply queued');
        }
        return { xml: null, notes: [] };
      case 'stopped':
      case 'release':
        if (uuid !== null) log('knob holds released', { writes: this.knobs.release(uuid) });
        return { xml: null, notes: [] };
      default:
        return { xml: null, notes: [] };
    }
  }

  private holdKnobs(uuid: string, xml: string, facts: HostFacts): string[] {
    try {
      const policy = this.controller.effective(uuid, xml)?.policy ?? readRecordedPolicy(xml);
      if (policy === null || !policy.enabled) return [];
      const held: string[] = [];
      for (const change of planXml(xml, fitPolicyToHost(policy, facts).policy, facts).hostKnobs) {
        if (!isKnobName(change.knob)) continue;
        this.knobs.hold(uuid, change.knob, change.value);
        held.push(`${change.knob}=${change.value}`);
      }
      return held;
    } catch (err) {
      // A start must not fail because of es2; the start event converges again.
      this.logger.warn('hook could not take knob holds', { uuid, error: (err as Error).message });
      return [];
    }
  }
}
