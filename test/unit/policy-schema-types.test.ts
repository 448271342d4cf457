import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';

import { OPENAPI_PATH, openApiDocument, schemaValidator } from '../../src/policy/schema.js';
import { repoRoot } from '../helpers/paths.js';

const GENERATED = join(repoRoot, 'src', 'policy', 'schema.gen.ts');
const REGENERATE = 'npx openapi-typescript openapi/es2.yaml -o src/policy/schema.gen.ts';

describe('the policy contract', () => {
  const dir = mkdtempSync(join(tmpdir(), 'es2-schema-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it(`has TypeScript types generated from openapi/es2.yaml that are up to date (${REGENERATE})`, () => {
    const fresh = join(dir, 'schema.gen.ts');
    execFileSync(process.execPath, [join(repoRoot, 'node_modules', 'openapi-typescript', 'bin', 'cli.js'), OPENAPI_PATH, '-o', fresh], { stdio: 'pipe' });
    assert.equal(readFileSync(GENERATED, 'utf8'), readFileSync(fresh, 'utf8'), `src/policy/schema.gen.ts is stale: run ${REGENERATE}`);
  });

  it('is an OpenAPI 3.1 document whose policy schemas compile in ajv strict mode', () => {
    assert.equal(openApiDocument.openapi, '3.1.0');
    for (const name of ['Policy', 'PolicyLayer', 'EffectivePolicy']) assert.equal(typeof schemaValidator(name), 'function');
  });
});
