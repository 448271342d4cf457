// openapi/es2.yaml is the contract: routes, parameters and bodies are validated from it with ajv,
// and tests validate every response against it with the same validators.
import type { Ajv2020, ValidateFunction } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';

import type { ErrorDetail } from '../errors/index.js';
import { documentAjv, DOCUMENT_ID, openApiDocument, schemaErrorDetails } from '../policy/schema.js';

// ajv-formats is CommonJS with a default export.
const addFormats = addFormatsModule as unknown as typeof addFormatsModule.default;

export type HttpMethod = 'get' | 'put' | 'post' | 'delete' | 'patch';

interface ParameterObject {
  name: string;
  in: 'path' | 'query' | 'header';
  required?: boolean;
  schema: object;
}

export interface Operation {
  operationId: string;
  method: HttpMethod;
  /** OpenAPI path template, e.g. `/v1/domains/{ref}/policy`. */
  path: string;
  /** Express path, e.g. `/v1/domains/:ref/policy`. */
  expressPath: string;
  validateParams: (input: { path: object; query: object; header: object }) => ErrorDetail[];
  validateBody?: (body: unknown) => ErrorDetail[];
  bodyRequired: boolean;
  /** Validators for JSON responses by status code (`default` included); used by tests. */
  responses: Map<string, ValidateFunction | null>;
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
            requestBody?: { required?: boolean; content?: Record<string, { schema?: object }> };
            responses?: Record<string, { content?: Record<string, { schema?: object }> }>;
          }
        | undefined;
      if (op === undefined) continue;
      const params = [...shared, ...(op.parameters ?? [])].map((p) => derefParam(document, p));
      const validators = {
        path: compile(coercingAjv, paramsSchema(params, 'path')),
        query: compile(coercingAjv, paramsSchema(params, 'query')),
        header: compile(coercingAjv, paramsSchema(params, 'header')),
      };
      const bodySchema = op.requestBody?.content?.['application/json']?.schema;
      const bodyValidator = bodySchema === undefined ? undefined : compile(strictAjv, bodySchema);
      const responses = new Map<string, ValidateFunction | null>();
      for (const [status, r] of Object.entries(op.responses ?? {})) {
        const s = r.content?.['application/json']?.schema;
        responses.set(status, s === undefined ? null : compile(strictAjv, s));
      }
      operations.push({
        operationId: op.operationId,
        method,
        path,
        expressPath: path.replace(/\{([^}]+)\}/g, ':$1'),
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

function derefParam(document: Record<string, unknown>, p: ParameterObject | { $ref: string }): ParameterObject {
  if ('$ref' in p) {
    const parts = p.$ref.replace(/^#\//, '').split('/');
    let node: unknown = document;
    for (const part of parts) node = (node as Record<string, unknown>)[part];
    return node as ParameterObject;
  }
  return p;
}
