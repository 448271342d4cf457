// openapi/es2.yaml is the contract: routes, parameters and bodies are validated from it with ajv,
// and tests validate every response against it with the same validators.
import type { Ajv2020, ValidateFunction } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';

import type { ErrorDetail } from '../errors/index.js';
import { documentAjv, DOCUMENT_ID, openApiDocument, schemaErrorDetails } from '../policy/schema.js';

// ajv-formats is CommonJS with a default export.
const addFormats = addFormatsModule as unknown as typeof addFormatsModule.default;

const BODY_TYPES = ['application/json', 'application/xml'] as const;
export type BodyType = (typeof BODY_TYPES)[number];

export type HttpMethod = 'get' | 'put' | 'post' | 'delete' | 'patch';

interface ResponseObject {
  content?: Record<string, { schema?: object }>;
  headers?: Record<string, { required?: boolean } | { $ref: string }>;
}

interface ParameterObject {
  name: string;
  in: 'path' | 'query' | 'header';
  required?: boolean;
  schema: object;
}

/** What the spec declares for one response status of an operation. */
export interface ResponseSpec {
  /** Validator of the JSON body; null when the response has no JSON content. */
  readonly validate: ValidateFunction | null;
  /** Declared media types (`application/json`, `text/plain`); empty: no body. */
  mediaTypes: string[];
  /** Header names (lower case) the response must carry. */
  requiredHeaders: string[];
}

export interface Operation {
  operationId: string;
  method: HttpMethod;
  /** OpenAPI path template, e.g. `/v1/domains/{ref}/policy`. */
  path: string;
  /** Express path, e.g. `/v1/domains/:ref/policy`. */
  expressPath: string;
  /** The raw (still percent-encoded) path parameters when `path` is this operation's; else null. */
  matchPath: (path: string) => Record<string, string> | null;
  validateParams: (input: { path: object; query: object; header: object }) => ErrorDetail[];
  validateBody?: (body: unknown) => ErrorDetail[];
  bodyRequired: boolean;
  /** JSON bodies are parsed; `application/xml` ones are handed over as a string. */
  bodyType: BodyType;
  /** The request body's size limit in bytes (`x-max-bytes`); undefined: the operation takes no body. */
  bodyLimit: number | undefined;
  /** By status code (`default` included); tests validate every response with these. */
  responses: Map<string, ResponseSpec>;
}

export interface Spec {
  document: Record<string, unknown>;
  operations: Operation[];
  /** A validator for `#/components/schemas/<name>`. */
  schema(name: string): ValidateFunction;
}

function newAjv(coerce: boolean): Ajv2020 {
  const ajv = documentAjv({ coerceTypes: coerce });
  addFormats(ajv);
  return ajv;
}

function paramsSchema(params: ParameterObject[], where: ParameterObject['in']): object {
  const mine = params.filter((p) => p.in === where);
  const name = (p: ParameterObject): string => (where === 'header' ? p.name.toLowerCase() : p.name);
  return {
    type: 'object',
    properties: Object.fromEntries(mine.map((p) => [name(p), p.schema])),
    required: mine.filter((p) => p.required === true || where === 'path').map(name),
    // Headers carry much more than the API's parameters; unknown query parameters are refused.
    additionalProperties: where === 'header',
  };
}

/** What a request to `op` without the body it requires is told. */
export function missingBodyMessage(op: Pick<Operation, 'bodyType'>): string {
  return `a ${op.bodyType === 'application/xml' ? 'XML' : 'JSON'} request body is required`;
}

export function loadSpec(): Spec {
  const document = openApiDocument;
  const strictAjv = newAjv(false);
  const coercingAjv = newAjv(true);

  const compile = (ajv: Ajv2020, schema: object): ValidateFunction => ajv.compile(rebase(schema));

  const operations: Operation[] = [];
  const paths = (document.paths ?? {}) as Record<string, Record<string, unknown>>;
  for (const [path, item] of Object.entries(paths)) {
    const shared = (item.parameters ?? []) as ParameterObject[];
    for (const method of ['get', 'put', 'post', 'delete', 'patch'] as const) {
      const op = item[method] as
        | {
            operationId: string;
            parameters?: ParameterObject[];
            requestBody?: { required?: boolean; 'x-max-bytes'?: number; content?: Record<string, { schema?: object }> };
            responses?: Record<string, ResponseObject | { $ref: string }>;
          }
        | undefined;
      if (op === undefined) continue;
      const params = [...shared, ...(op.parameters ?? [])].map((p) => deref<ParameterObject>(document, p));
      const validators = {
        path: compile(coercingAjv, paramsSchema(params, 'path')),
        query: compile(coercingAjv, paramsSchema(params, 'query')),
        header: compile(coercingAjv, paramsSchema(params, 'header')),
      };
      // One media type per request body: JSON, or text for the hook's XML form.
      const bodyTypes = Object.keys(op.requestBody?.content ?? {});
      const bodyType = bodyTypes[0];
      if (bodyTypes.length > 1 || (bodyType !== undefined && !BODY_TYPES.includes(bodyType as BodyType))) {
        throw new Error(`openapi/es2.yaml: ${op.operationId} declares request body type(s) ${bodyTypes.join(', ')}; es2 reads one of ${BODY_TYPES.join(', ')}`);
      }
      const bodySchema = bodyType === undefined ? undefined : op.requestBody!.content![bodyType]!.schema;
      const bodyValidator = bodySchema === undefined ? undefined : compile(strictAjv, bodySchema);
      const bodyLimit = op.requestBody?.['x-max-bytes'];
      // Every body is bounded, and the bound is part of the contract a client reads.
      if (op.requestBody !== undefined && !(Number.isSafeInteger(bodyLimit) && bodyLimit! > 0)) {
        throw new Error(`openapi/es2.yaml: ${op.operationId} has a request body without a positive integer x-max-bytes`);
      }
      const responses = new Map<string, ResponseSpec>();
      for (const [status, ref] of Object.entries(op.responses ?? {})) {
        const r = deref<ResponseObject>(document, ref);
        const content = r.content ?? {};
        const s = content['application/json']?.schema;
        // Compiled on first use: only tests validate responses, and compiling every response
        // schema up front was most of es2d's start-up work and its memory peak.
        let validator: ValidateFunction | null | undefined;
        responses.set(status, {
          get validate() {
            validator ??= s === undefined ? null : compile(strictAjv, s);
            return validator;
          },
          mediaTypes: Object.keys(content),
          requiredHeaders: Object.entries(r.headers ?? {})
            .filter(([, h]) => deref<{ required?: boolean }>(document, h).required === true)
            .map(([name]) => name.toLowerCase()),
        });
      }
      const names = [...path.matchAll(/\{([^}]+)\}/g)].map((m) => m[1]!);
      const pattern = new RegExp(`^${path.split(/\{[^}]+\}/).map(escapeRegExp).join('([^/]+)')}$`);
      operations.push({
        operationId: op.operationId,
        method,
        path,
        expressPath: path.replace(/\{([^}]+)\}/g, ':$1'),
        matchPath: (raw) => {
          const m = pattern.exec(raw);
          return m === null ? null : Object.fromEntries(names.map((n, i) => [n, m[i + 1]!]));
        },
        validateParams: (input) => {
          const out: ErrorDetail[] = [];
          for (const where of ['path', 'query', 'header'] as const) {
            const v = validators[where];
            if (!v(input[where])) out.push(...schemaErrorDetails(v.errors, `/${where}`));
          }
          return out;
        },
        ...(bodyValidator === undefined
          ? {}
          : { validateBody: (body: unknown) => (bodyValidator(body) ? [] : schemaErrorDetails(bodyValidator.errors)) }),
        bodyRequired: op.requestBody?.required === true,
        bodyType: (bodyType ?? 'application/json') as BodyType,
        bodyLimit,
        responses,
      });
    }
  }
  const byName = new Map<string, ValidateFunction>();
  return {
    document,
    operations,
    schema(name) {
      let v = byName.get(name);
      if (v === undefined) {
        v = strictAjv.compile({ $ref: `${DOCUMENT_ID}#/components/schemas/${name}` });
        byName.set(name, v);
      }
      return v;
    },
  };
}

/** Local `#/...` refs in an operation's schemas point into the spec document. */
function rebase(schema: object): object {
  return JSON.parse(JSON.stringify(schema), (key, value: unknown) =>
    key === '$ref' && typeof value === 'string' && value.startsWith('#/') ? `${DOCUMENT_ID}${value}` : value,
  ) as object;
}

/** A Parameter, Response or Header Object, following a local `$ref`. */
function deref<T>(document: Record<string, unknown>, p: T | { $ref: string }): T {
  if (typeof p === 'object' && p !== null && '$ref' in p) {
    const parts = p.$ref.replace(/^#\//, '').split('/');
    let node: unknown = document;
    for (const part of parts) node = (node as Record<string, unknown>)[part];
    if (node === undefined) throw new Error(`openapi/es2.yaml: unresolved $ref ${p.$ref}`);
    return node as T;
  }
  return p as T;
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
