// The contract is openapi/es2.yaml: validators are compiled from its `components.schemas` and the
// TypeScript types in schema.gen.ts are generated from it. This module reads that one file of the
// package itself, once, when first imported; the rest of src/policy stays free of I/O.
import { readFileSync } from 'node:fs';

import { Ajv2020, type ErrorObject, type Options, type ValidateFunction } from 'ajv/dist/2020.js';
import { parse as parseYaml } from 'yaml';

import type { ErrorDetail } from '../errors/index.js';
import { packageFile } from '../package/root.js';

export const OPENAPI_PATH = packageFile('openapi', 'es2.yaml');

/** The parsed OpenAPI document. */
export const openApiDocument = parseYaml(readFileSync(OPENAPI_PATH, 'utf8')) as Record<string, unknown>;

export const DOCUMENT_ID = 'urn:x-es2:openapi';

/**
 * An ajv instance that knows the whole OpenAPI document, so `${DOCUMENT_ID}#/components/...`
 * references resolve inside it. The API compiles its parameter validators with type coercion on
 * another instance made here.
 */
export function documentAjv(options: Options = {}): Ajv2020 {
  const instance = new Ajv2020({ allErrors: true, strict: true, ...options });
  // The top-level OpenAPI fields and the Schema Object's `example` are not JSON Schema keywords.
  instance.addVocabulary(['openapi', 'info', 'servers', 'paths', 'webhooks', 'components', 'security', 'tags',
    'externalDocs', 'jsonSchemaDialect', 'example']);
  instance.addSchema(openApiDocument, DOCUMENT_ID);
  return instance;
}

const ajv = documentAjv();

const compiled = new Map<string, ValidateFunction>();

/** The validator of `components.schemas[name]`, compiled on first use. */
export function schemaValidator(name: string): ValidateFunction {
  let validate = compiled.get(name);
  if (validate === undefined) {
    validate = ajv.compile({ $ref: `${DOCUMENT_ID}#/components/schemas/${name}` });
    compiled.set(name, validate);
  }
  return validate;
}

function describe(error: ErrorObject): { path: string; message: string } {
  const at = error.instancePath;
  const field = at.slice(at.lastIndexOf('/') + 1);
  const params = error.params as Record<string, unknown>;
  switch (error.keyword) {
    case 'additionalProperties':
      return { path: `${at}/${String(params.additionalProperty)}`, message: `unknown field "${String(params.additionalProperty)}"` };
    case 'required':
      return { path: `${at}/${String(params.missingProperty)}`, message: `required field "${String(params.missingProperty)}" is missing` };
    case 'enum':
      return { path: at, message: `"${field}" must be one of ${(params.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(', ')}` };
    default:
      return { path: at, message: at === '' ? `the document ${error.message ?? 'is invalid'}` : `"${field}" ${error.message ?? 'is invalid'}` };
  }
}

/**
 * ajv errors as error details: JSON pointers (prefixed with `prefix`) and messages that name the
 * field. Errors of combinators (`if`, `allOf`) only repeat the errors of their branches and are dropped.
 */
export function schemaErrorDetails(errors: readonly ErrorObject[] | null | undefined, prefix = ''): ErrorDetail[] {
  const details: ErrorDetail[] = [];
  const seen = new Set<string>();
  for (const error of errors ?? []) {
    if (error.keyword === 'if' || error.keyword === 'allOf') continue;
    const { path, message } = describe(error);
    const key = `${path}\n${message}`;
    if (seen.has(key)) continue;
    seen.add(key);
    details.push({ path: prefix + path, message });
  }
  return details;
}
