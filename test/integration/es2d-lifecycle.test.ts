// The es2d process: SIGTERM finishes the work in flight before exiting (and rolls no knob back),
// bad flags and config are refused with their code before anything starts.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';

import { startEs2d } from '../helpers/es2d.js';
import { bin } from '../helpers/paths.js';
import { tempDir } from '../helpers/temp.js';

describe('es2d process', () => {
  it('finishes a policy write in flight when SIGTERM arrives, then exits 0 without rolling knobs back', async () => {
    const es2d = await startEs2d();
    const write = es2d.client.send<{ status: string }>('PUT', '/v1/domains/test/policy', {
      enabled: true, vcpus: [{ vcpu: 0, cpuset: '2' }], haltPollNs: 300000,
    });
    // Let the request reach es2d, then stop it while the apply is under way.
    await new Promise((r) => setTimeout(r, 5));
    es2d.child.kill('SIGTERM');
    const res = await write;
    assert.equal(res.body.status, 'applied');
    assert.equal(await es2d.stop(), 0);
    assert.match(es2d.logs(), /"message":"es2d stopped"/);
    assert.equal(readFileSync(join(es2d.hostRoot, 'sys/module/kvm/parameters/halt_poll_ns'), 'utf8').trim(), '300000');
  });

  it('refuses a bad config file with VALIDATION_FAILED and the path of the bad key (exit 2)', () => {
    const file = join(tempDir(), 'es2d.yaml');
    writeFileSync(file, 'uri: test:///default\nstatsIntervall: 5\nrules:\n  - flavor: m1.*\n    policy: { enabled: true, vcpus: [{ vcpu: 0, cpuset: "2-" }] }\n');
    const r = spawnSync(process.execPath, [bin.es2d, '--config', file], { encoding: 'utf8', timeout: 30_000 });
    assert.equal(r.status, 2);
    assert.match(r.stderr, /es2d: VALIDATION_FAILED: config file .*\/statsIntervall: unknown key/);
  });

  it('refuses a TCP listener without a token file, and a bad flag, with exit 2', () => {
    const tcp = spawnSync(process.execPath, [bin.es2d, '--uri', 'test:///default', '--listen', '127.0.0.1:0'], { encoding: 'utf8', timeout: 30_000 });
    assert.equal(tcp.status, 2);
    assert.match(tcp.stderr, /VALIDATION_FAILED: a TCP listener accepts writes and needs --token-file/);
    const flag = spawnSync(process.execPath, [bin.es2d, '--stats-interval', '-1'], { encoding: 'utf8', timeout: 30_000 });
    assert.equal(flag.status, 2);
    assert.match(flag.stderr, /stats-interval/);
  });
});
