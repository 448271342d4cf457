// The contract is openapi/es2.yaml: validators are compiled from its `components.schemas` and the
// TypeScript types in schema.gen.ts are generated from it. This module reads that one file of the
// package itself, once, when first imported; the rest of src/policy stays free of I/O.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { Ajv2020, type ErrorObject, type ValidateFunction } from 'ajv/dist/2020.js';
import { parse as parseYaml } from 'yaml';

import type { ErrorDetail } from '../errors/index.js';

function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const parent = dirname(dir);
    if (parent === dir) throw new Error('es2: package.json not found above ' + fileURLToPath(import.meta.url));
    dir = parent;
  }
  return dir;
}

export const OPENAPI_PATH = join(packageRoot(), 'openapi', 'es2.yaml');

/** The parsed OpenAPI document. */
export const openApiDocument = parseYaml(readFileSync(OPENAPI_PATH, 'utf8')) as Record<string, unknown>;

const DOCUMENT_ID = 'urn:x-es2:openapi';

const ajv = new Ajv2020({ allErrors: true, strict: true });
// The OpenAPI document is added whole so `$ref: '#/components/schemas/...'` resolves inside it; its
// top-level OpenAPI fields and the Schema Object's `example` are not JSON Schema keywords.
ajv.addVocabulary(['openapi', 'info', 'servers', 'paths', 'webhooks', 'components', 'security', 'tags',
  'externalDocs', 'jsonSchemaDialect', 'example']);
ajv.addSchema(openApiDocument, DOCUMENT_ID);

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
