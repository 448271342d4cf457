// The operations of openapi/es2.yaml. Handlers only throw Es2Error; src/api/http-errors.ts maps.
import { Es2Error } from '../errors/index.js';
import { OPERATOR_HOLDER, type KnobManager } from '../host/index.js';
import { isKnobName, type KnobName } from '../host/index.js';
import { ConnectListDomains, DomainState, DomainXMLFlags, type Connection } from '../libvirt/index.js';
import { formatCpuset, openApiDocument, validatePolicy, type Policy } from '../policy/index.js';
import type { Controller } from '../reconcile/controller.js';
import { canonicalUuid, isUuid } from '../reconcile/controller.js';
import type { HookRequest, HookService } from '../reconcile/hook.js';
import type { LibvirtLink } from '../reconcile/link.js';
import type { Metrics } from '../report/metrics.js';
import type { Reports } from '../report/reports.js';
import { ABSENT_ETAG, type Store } from '../store/index.js';
import { readRecordedPolicy } from '../xml/index.js';
import type { ApiRequest, ApiResponse, Handler } from './app.js';

export interface HandlerDeps {
  uri: string;
  link: LibvirtLink;
  store: Store;
  controller: Controller;
  knobs: KnobManager;
  reports: Reports;
  metrics: Metrics;
  hooks: HookService;
  cpuPool?: string | undefined;
}

const STATE_NAMES = Object.fromEntries(Object.entries(DomainState).map(([k, v]) => [v, k.toLowerCase()])) as Record<number, string>;

/**
 * The `If-Match` precondition (RFC 9110 13.1.1) against the policy's current ETag (the store keeps
 * it bare, `none` when no policy is stored): `*` or a list of quoted tags, compared strongly, so a
 * weak tag never matches. Returns what the store re-checks atomically at the write (`*` or the
 * matching tag); undefined without the header. The spec's pattern has vetted the syntax.
 */
function ifMatch(header: string | string[] | undefined, uuid: string, current: string): string | undefined {
  if (header === undefined) return undefined;
  const value = (Array.isArray(header) ? header.join(', ') : header).trim();
  if (value === '*') {
    if (current === ABSENT_ETAG) throw new Es2Error('PRECONDITION_FAILED', `If-Match *: no policy is stored for ${uuid}`);
    return '*';
  }
  const strong = [...value.matchAll(/(W\/)?"([^"]*)"/g)].filter((m) => m[1] === undefined).map((m) => m[2]!);
  if (strong.includes(current)) return current;
  throw new Es2Error('PRECONDITION_FAILED', strong.length === 0
    ? `If-Match ${value}: a weak ETag never matches (strong comparison); send the ETag of GET /v1/domains/{ref}`
    : `If-Match ${value} does not match the policy of ${uuid} (ETag ${quote(current)}): it changed since it was read`);
}

const quote = (etag: string): string => `"${etag}"`;

export function createHandlers(deps: HandlerDeps): Record<string, Handler> {
  const { link, store, controller, knobs, reports, metrics, hooks } = deps;

  const knobList = (): ReturnType<KnobManager['list']> => knobs.list();

  /** `{ref}` → a domain libvirt knows, or an unknown UUID (null `name`, `known` false). */
  async function lookup(ref: string): Promise<{ conn: Connection; uuid: string; name: string | null; known: boolean }> {
    const conn = link.require();
    const found = await controller.resolve(conn, ref);
    if (found !== null) return { conn, uuid: found.uuid, name: found.name, known: true };
    return { conn, uuid: canonicalUuid(ref), name: null, known: false };
  }

  function etagOf(uuid: string): string {
    return store.getPolicy(uuid)?.etag ?? ABSENT_ETAG;
  }

  /** The store's write options for `If-Match`; throws PRECONDITION_FAILED when it fails now. */
  function precondition(req: ApiRequest, uuid: string): { ifMatch?: string } {
    const tag = ifMatch(req.headers['if-match'], uuid, etagOf(uuid));
    return tag === undefined ? {} : { ifMatch: tag };
  }

  async function domainView(ref: string): Promise<ApiResponse> {
    const { conn, uuid, name, known } = await lookup(ref);
    const stored = store.getPolicy<Policy>(uuid);
    const applied = store.getApplied(uuid);
    const etag = stored?.etag ?? ABSENT_ETAG;
    const appliedView = applied === undefined ? null : {
      at: applied.appliedAt, result: applied.result, error: applied.error, plan: applied.plan,
    };
    if (!known) {
      if (stored === undefined) throw new Es2Error('DOMAIN_NOT_FOUND', `libvirt has no domain ${uuid} and no policy is stored for it`);
      return {
        headers: { ETag: quote(etag) },
        body: {
          uuid, name: stored.name, state: 'absent', active: false, persistent: null, nova: null,
          storedPolicy: stored.policy, effective: null, recorded: null, applied: appliedView,
          drift: null, etag,
        },
      };
    }
    const info = await conn.domainGetInfo(uuid);
    const persistentXml = info.persistent ? await conn.domainGetXMLDesc(uuid, DomainXMLFlags.INACTIVE) : null;
    const liveXml = info.active ? await conn.domainGetXMLDesc(uuid) : persistentXml;
    const identity = await controller.identity(conn, uuid);
    let effective = null;
    try {
      effective = controller.effective(uuid, persistentXml ?? liveXml);
    } catch {
      // Bad flavor extra specs or config rules: the domain is still shown, without an effective policy.
    }
    let recorded = null;
    try {
      recorded = liveXml === null ? null : readRecordedPolicy(liveXml);
    } catch {
      // A corrupt record is what drift repair replaces.
    }
    const nova = identity.nova;
    return {
      headers: { ETag: quote(etag) },
      body: {
        uuid, name, state: STATE_NAMES[info.state] ?? 'nostate', active: info.active, persistent: info.persistent,
        nova: nova === null ? null : {
          instance: nova.name ?? null, project: nova.project?.name ?? null, projectId: nova.project?.uuid ?? null,
          flavor: nova.flavor?.name ?? null,
        },
        storedPolicy: stored?.policy ?? null, effective, recorded, applied: appliedView,
        drift: (applied?.drift ?? null) as object | null, etag,
      },
    };
  }

  async function putPolicy(req: ApiRequest): Promise<ApiResponse> {
    const policy = validatePolicy(req.body);
    const dryRun = req.query.dryRun === true;
    const ref = req.params.ref!;
    if (!link.connected) {
      // Accepted during a libvirt outage when addressed by UUID: stored, applied on reconnect.
      if (!isUuid(ref) || dryRun) throw new Es2Error('LIBVIRT_UNAVAILABLE', 'libvirt is not connected; a policy can be stored by UUID only');
      const uuid = canonicalUuid(ref);
      const rec = store.putPolicy(uuid, policy, precondition(req, uuid));
      return { status: 202, headers: { ETag: quote(rec.etag) }, body: { uuid: rec.uuid, name: rec.name, status: 'pending', plan: null, etag: rec.etag } };
    }
    const { uuid, name, known } = await lookup(ref);
    const options = precondition(req, uuid);
    if (!known) {
      if (dryRun) throw new Es2Error('DOMAIN_NOT_FOUND', `libvirt has no domain ${uuid}: nothing to plan against`);
      const rec = store.putPolicy(uuid, policy, options);
      return { status: 202, headers: { ETag: quote(rec.etag) }, body: { uuid, name: null, status: 'pending', plan: null, etag: rec.etag } };
    }
    if (dryRun) {
      const planned = await controller.converge(uuid, 'api dry run', { dryRun: true, candidate: { policy } });
      const etag = etagOf(uuid);
      return { headers: { ETag: quote(etag) }, body: { uuid, name, status: 'planned', plan: planned.plan, etag } };
    }
    // Stored once the plan is computed and before anything changes: a policy this domain or host
    // refuses is not stored, and If-Match is checked again atomically at the write.
    let etag: string | undefined;
    const commit = (): void => {
      etag = store.putPolicy(uuid, policy, { name, ...options }).etag;
    };
    const outcome = await controller.converge(uuid, 'api policy', { candidate: { policy, commit } });
    // The converge runs commit before its first change, and a plan with nothing to change still
    // reaches it: only a refusal (thrown above) skips it.
    return { headers: { ETag: quote(etag!) }, body: { uuid, name, status: outcome.status, plan: outcome.plan, etag: etag! } };
  }

  async function deletePolicy(req: ApiRequest): Promise<ApiResponse> {
    const dryRun = req.query.dryRun === true;
    const { uuid, name, known } = await lookup(req.params.ref!);
    if (!known) {
      if (dryRun) throw new Es2Error('DOMAIN_NOT_FOUND', `libvirt has no domain ${uuid}: nothing to plan against`);
      // Nothing to delete is a 404 whatever If-Match says (RFC 9110 13.2.2: preconditions apply
      // only to requests that would otherwise succeed).
      if (store.getPolicy(uuid) === undefined) {
        throw new Es2Error('DOMAIN_NOT_FOUND', `libvirt has no domain ${uuid} and no policy is stored for it`);
      }
      if (!store.deletePolicy(uuid, precondition(req, uuid))) {
        throw new Es2Error('DOMAIN_NOT_FOUND', `libvirt has no domain ${uuid} and no policy is stored for it`);
      }
      return { body: { uuid, name: null, status: 'removed', plan: null, etag: ABSENT_ETAG } };
    }
    const options = precondition(req, uuid);
    if (dryRun) {
      const planned = await controller.converge(uuid, 'api dry run', { dryRun: true, candidate: { policy: null } });
      return { body: { uuid, name, status: 'planned', plan: planned.plan, etag: etagOf(uuid) } };
    }
    store.deletePolicy(uuid, options);
    const outcome = await controller.converge(uuid, 'api policy removed');
    return { body: { uuid, name, status: 'removed', plan: outcome.plan, etag: ABSENT_ETAG } };
  }

  async function listDomains(): Promise<ApiResponse> {
    const conn = link.require();
    const domains = await conn.listAllDomains(ConnectListDomains.PERSISTENT | ConnectListDomains.TRANSIENT);
    const seen = new Set<string>();
    const out = [];
    for (const d of domains) {
      seen.add(d.uuid);
      let effective = null;
      try {
        effective = controller.effective(d.uuid, await conn.domainGetXMLDesc(d.uuid, DomainXMLFlags.INACTIVE));
      } catch {
        // Shown without an effective policy; GET /v1/domains/{ref} says more.
      }
      const state = await conn.domainGetState(d.uuid).catch(() => ({ state: 0 }));
      const drift = store.getApplied(d.uuid)?.drift as { items?: unknown[] } | null | undefined;
      out.push({
        uuid: d.uuid, name: d.name, state: STATE_NAMES[state.state] ?? 'nostate',
        enabled: effective?.policy.enabled ?? false, source: effective?.sources.enabled ?? null,
        pending: false, drift: (drift?.items?.length ?? 0) > 0,
      });
    }
    for (const p of store.listPolicies<Policy>()) {
      if (seen.has(p.uuid)) continue;
      out.push({ uuid: p.uuid, name: p.name, state: 'absent', enabled: p.policy.enabled, source: 'api', pending: true, drift: false });
    }
    return { body: { domains: out } };
  }

  async function savingsOf(ref: string): Promise<string> {
    // A UUID the last stats cycle returned is a domain libvirt listed as running one interval ago
    // at most. GET savings is polled, and the libvirt round trip was most of its latency (bench
    // api-read); names and other UUIDs are still resolved through libvirt.
    if (isUuid(ref) && reports.sampledLastCycle(canonicalUuid(ref))) return canonicalUuid(ref);
    const { uuid, known } = await lookup(ref);
    if (!known) throw new Es2Error('DOMAIN_NOT_FOUND', `libvirt has no domain ${uuid}`);
    return uuid;
  }

  return {
    getHost: async () => {
      const facts = controller.knownFacts;
      const caps = controller.capabilities;
      return {
        body: {
          hostname: link.connected ? await link.require().getHostname().catch(() => null) : null,
          uri: deps.uri, connected: link.connected, ready: controller.ready, backend: caps.backend,
          cpus: facts === null ? null : formatCpuset(facts.cpus), cpuPool: deps.cpuPool ?? null,
          capabilities: caps, knobs: knobList(),
        },
      };
    },
    putHostKnobs: (req) => {
      // All or nothing: a knob that fails puts back the operator's earlier holds on the others,
      // so an error answer means the host is as it was.
      const earlier = new Map(knobList().map((k) => [k.knob, k.holders[OPERATOR_HOLDER]]));
      const held: KnobName[] = [];
      try {
        for (const [knob, value] of Object.entries(req.body as Record<string, number>)) {
          if (!isKnobName(knob)) continue;
          knobs.hold(OPERATOR_HOLDER, knob, value);
          held.push(knob);
        }
      } catch (err) {
        for (const knob of held.reverse()) {
          const previous = earlier.get(knob);
          if (previous === undefined) knobs.release(OPERATOR_HOLDER, knob);
          else knobs.hold(OPERATOR_HOLDER, knob, previous);
        }
        throw err;
      }
      return { body: { knobs: knobList() } };
    },
    restoreHostKnobs: () => {
      const restored = knobs.restoreAll();
      return { body: { knobs: knobList(), restored } };
    },
    listDomains,
    getDomain: (req) => domainView(req.params.ref!),
    putDomainPolicy: putPolicy,
    deleteDomainPolicy: deletePolicy,
    getDomainSavings: async (req) => ({ body: reports.report(await savingsOf(req.params.ref!)) }),
    captureBaseline: async (req) => ({ status: 201, body: reports.captureBaseline(await savingsOf(req.params.ref!)) }),
    listSavings: () => ({ body: reports.all() }),
    libvirtHook: (req) => ({ body: hooks.handle(req.body as HookRequest) }),
    libvirtHookXml: (req) => {
      const answer = hooks.handle({
        name: '', op: req.params.op!, subop: String(req.query.subop ?? '-'), extra: String(req.query.extra ?? '-'),
        xml: typeof req.body === 'string' ? req.body : '',
      });
      return answer.xml === null ? { status: 204 } : { body: answer.xml, contentType: 'application/xml' };
    },
    getMetrics: async () => ({ body: await metrics.render(), contentType: metrics.contentType }),
    getOpenApi: () => ({ body: openApiDocument }),
    getHealth: () => ({ body: { status: 'ok', checks: { process: true } } }),
    getReady: () => {
      const checks = { libvirt: link.connected, reconciled: controller.ready };
      const ok = checks.libvirt && checks.reconciled;
      return { status: ok ? 200 : 503, body: { status: ok ? 'ok' : 'unavailable', checks } };
    },
  };
}
