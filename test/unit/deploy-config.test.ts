// The deployment artefacts: the example es2d.yaml is a valid config that documents every option,
// the systemd unit has what a compute host needs (and agrees with the config), and install.sh
// is idempotent.
import assert from 'node:assert/strict';
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  chmodSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';

import { parse as parseYaml } from 'yaml';

import { DEFAULTS, readConfigFile, resolveConfig } from '../../src/daemon/config.js';
import { matchFlavorRule, parseCpuset, validatePolicyLayer } from '../../src/policy/index.js';
import { DEFAULT_EXIT_COSTS_NS, exitCosts } from '../../src/savings/costs.js';
import { REASONS } from '../../src/stats/counters.js';
import { HOOK_SCRIPT as HOOK } from '../helpers/hook.js';
import { repoRoot } from '../helpers/paths.js';
import { tempDir } from '../helpers/temp.js';

const CONFIG = join(repoRoot, 'deploy', 'es2d.yaml');
const UNIT = join(repoRoot, 'deploy', 'systemd', 'es2d.service');
const INSTALL = join(repoRoot, 'deploy', 'install.sh');

/** A systemd unit file: section → key → values, in file order (keys may repeat). */
function parseUnit(text: string): Map<string, Map<string, string[]>> {
  const sections = new Map<string, Map<string, string[]>>();
  let current: Map<string, string[]> | undefined;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const header = /^\[(.+)\]$/.exec(line);
    if (header !== null) {
      current = new Map();
      sections.set(header[1]!, current);
      continue;
    }
    const eq = line.indexOf('=');
    assert.ok(current !== undefined && eq > 0, `not a unit line: ${raw}`);
    const key = line.slice(0, eq);
    current.set(key, [...(current.get(key) ?? []), line.slice(eq + 1)]);
  }
  return sections;
}

describe('deploy/es2d.yaml', () => {
  const text = readFileSync(CONFIG, 'utf8');

  it('is a valid es2d config, and es2d starts from it with no flags', () => {
    const file = readConfigFile(CONFIG);
    assert.equal(file.uri, 'qemu:///system');
    const cfg = resolveConfig({ config: CONFIG });
    assert.deepEqual(cfg.listen, ['unix:/run/es2/es2d.sock']);
    assert.equal(cfg.socketMode, 0o660);
    assert.equal(cfg.socketGroup, 'es2');
    assert.equal(cfg.hostRoot, '/');
    assert.equal(cfg.statsReplay, undefined, 'statsReplay replays a capture instead of libvirt: never on in the example');
  });

  it('documents every option with a comment', () => {
    const lines = text.split('\n');
    const documented = (key: string, indent: string): boolean => {
      const at = lines.findIndex((l) => new RegExp(`^${indent}(# )?${key}:`).test(l));
      if (at < 0) return false;
      // The key's paragraph (back to the previous blank line) holds a comment.
      for (let i = at - 1; i >= 0 && lines[i]!.trim() !== ''; i--) if (lines[i]!.trim().startsWith('#')) return true;
      return lines[at]!.includes(' # ');
    };
    const topLevel = [...Object.keys(DEFAULTS), 'tokenFile', 'socketGroup', 'cpuPool', 'orchestrator', 'statsReplay'];
    const nested = ['windowSeconds', 'minIoOps', 'costsNs', 'url', 'token', 'tokenFile', 'header', 'timeoutMs', 'outboxCapacity'];
    assert.deepEqual(topLevel.filter((k) => !documented(k, '')), [], 'top-level keys without a commented entry');
    assert.deepEqual(nested.filter((k) => !documented(k, '  ')), [], 'savings/orchestrator keys without a commented entry');
    // Every key the file sets is one es2d knows (readConfigFile refuses unknown ones).
    const doc = parseYaml(text) as Record<string, unknown>;
    assert.deepEqual(Object.keys(doc).filter((k) => !topLevel.includes(k)), []);
  });

  it('has a TCP listener ready to uncomment: with tokenFile set, es2d accepts it', () => {
    const commented = /^ {2}# - (\S+:\d+)\s*$/m.exec(text);
    assert.ok(commented !== null, 'a commented-out HOST:PORT entry under listen');
    const cfg = resolveConfig({ config: CONFIG, listen: ['unix:/run/es2/es2d.sock', commented[1]!] });
    assert.equal(cfg.tokenFile, '/etc/es2/api.token');
  });

  it('has flavor rules that are valid policies, first match wins', () => {
    const cfg = resolveConfig({ config: CONFIG });
    assert.ok(cfg.rules.length >= 1);
    cfg.rules.forEach((rule, i) => validatePolicyLayer(rule.policy, `/rules/${i}/policy`));
    assert.equal(matchFlavorRule(cfg.rules, 'm1.es2.large')?.interruptRedirection?.targetLabel, 'io');
    assert.equal(matchFlavorRule(cfg.rules, 'm1.es2-latency.large')?.postedInterrupts, 'required');
    assert.equal(matchFlavorRule(cfg.rules, 'm1.small'), null);
  });

  it('lists every exit cost, the documented defaults, with halt exits at 0', () => {
    const cfg = resolveConfig({ config: CONFIG });
    assert.deepEqual(Object.keys(cfg.savings.costsNs).sort(), [...REASONS].sort());
    assert.deepEqual(exitCosts(cfg.savings.costsNs), { ...DEFAULT_EXIT_COSTS_NS });
    assert.equal(cfg.savings.costsNs.halt_exits, 0);
  });

  it('keeps one core and its sibling per NUMA node out of cpuPool', () => {
    const pool = parseCpuset(resolveConfig({ config: CONFIG }).cpuPool!);
    assert.equal(pool.length, 44);
    for (const cpu of [0, 12, 24, 36]) assert.ok(!pool.includes(cpu), `CPU ${cpu} is the host's`);
  });

  it('pushes to the orchestrator with the token in a file', () => {
    const { orchestrator } = resolveConfig({ config: CONFIG });
    assert.ok(orchestrator !== undefined);
    assert.match(orchestrator.url, /^https:\/\//);
    assert.equal(orchestrator.token, undefined);
    assert.equal(orchestrator.tokenFile, '/etc/es2/orchestrator.token');
  });
});

describe('deploy/systemd/es2d.service', () => {
  const text = readFileSync(UNIT, 'utf8');
  const unit = parseUnit(text);
  const section = (name: string): Map<string, string[]> => unit.get(name) ?? new Map();
  const words = (name: string, key: string): string[] => (section(name).get(key) ?? []).flatMap((v) => v.split(/\s+/));
  const one = (name: string, key: string): string | undefined => section(name).get(key)?.at(-1);

  it('starts after libvirtd, restarts on failure, stops with SIGTERM within 30 s', () => {
    assert.ok(words('Unit', 'After').includes('libvirtd.service'));
    assert.ok([...words('Unit', 'Wants'), ...words('Unit', 'Requires')].includes('libvirtd.service'));
    assert.equal(one('Service', 'Type'), 'simple');
    assert.equal(one('Service', 'Restart'), 'on-failure');
    assert.equal(one('Service', 'KillSignal'), 'SIGTERM');
    assert.equal(one('Service', 'TimeoutStopSec'), '30');
    assert.ok(words('Install', 'WantedBy').includes('multi-user.target'));
  });

  it('runs the package bin es2d with /etc/es2/es2d.yaml', () => {
    const pkg = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { bin: Record<string, string> };
    assert.equal(one('Service', 'ExecStart'), `/usr/bin/node --max-semi-space-size=4 /opt/es2/${pkg.bin.es2d} --config /etc/es2/es2d.yaml`);
    // es2d started by hand (its #! line) gets the same Node flags as under systemd.
    const shebang = readFileSync(join(repoRoot, 'src', 'daemon', 'main.ts'), 'utf8').split('\n')[0];
    assert.equal(shebang, '#!/usr/bin/env -S node --max-semi-space-size=4');
  });

  it('rolls nothing back on stop', () => {
    for (const key of ['ExecStop', 'ExecStopPost']) assert.equal(section('Service').get(key), undefined, key);
  });

  it('is sandboxed, yet can write the knobs, the ES2 kernel files, the provider config and its state', () => {
    assert.equal(one('Service', 'ProtectSystem'), 'strict');
    const rw = words('Service', 'ReadWritePaths').map((p) => p.replace(/^-/, ''));
    for (const path of ['/sys/module/kvm/parameters', '/sys/kernel/es2', '/etc/nova/provider_config']) {
      assert.ok(rw.includes(path), `ReadWritePaths= has ${path}`);
    }
    // StateDirectory= and RuntimeDirectory= are writable under ProtectSystem=strict.
    assert.equal(one('Service', 'StateDirectory'), 'es2');
    assert.equal(one('Service', 'RuntimeDirectory'), 'es2');
    assert.equal(one('Service', 'RuntimeDirectoryMode'), '0750');
    for (const key of ['ProtectHome', 'PrivateTmp', 'NoNewPrivileges']) assert.equal(one('Service', key), 'yes', key);
    assert.deepEqual(words('Service', 'RestrictAddressFamilies'), ['AF_UNIX', 'AF_INET', 'AF_INET6']);
    assert.equal(one('Service', 'User'), 'root');
  });

  it('leaves off what would break es2d: read-only /sys, hidden /dev/kvm and /proc/cpuinfo, no JIT', () => {
    for (const key of ['ProtectKernelTunables', 'PrivateDevices', 'MemoryDenyWriteExecute']) {
      assert.ok(!['yes', 'true', '1', 'on'].includes(one('Service', key) ?? 'no'), `${key} must stay off`);
    }
    assert.notEqual(one('Service', 'ProcSubset'), 'pid');
    assert.match(text, /ProtectKernelTunables=yes makes all of \/sys read-only/);
  });

  it('agrees with the example config: socket dir and group, state dir', () => {
    const cfg = resolveConfig({ config: CONFIG });
    assert.ok(cfg.listen.includes(`unix:/run/${one('Service', 'RuntimeDirectory')}/es2d.sock`));
    assert.equal(cfg.stateDir, `/var/lib/${one('Service', 'StateDirectory')}`);
    assert.equal(cfg.socketGroup, one('Service', 'Group'));
  });

  it('passes systemd-analyze verify', (t) => {
    const probe = spawnSync('systemd-analyze', ['--version'], { encoding: 'utf8' });
    if (probe.error !== undefined) {
      t.skip('systemd-analyze is not installed');
      return;
    }
    // verify wants ExecStart's file to exist: point it at a file of the build.
    const dir = tempDir();
    const copy = join(dir, 'es2d.service');
    writeFileSync(copy, text.replace('/opt/es2/dist/src/daemon/main.js', join(repoRoot, 'dist', 'src', 'daemon', 'config.js')));
    const out = spawnSync('systemd-analyze', ['verify', copy], { encoding: 'utf8' });
    assert.equal(out.status, 0, out.stderr);
    assert.deepEqual(out.stderr.split('\n').filter((l) => l.includes(copy)), [], 'warnings about the unit');
  });
});

interface Entry { mode: number; size: number; mtimeMs: number; sha?: string; link?: boolean }

/** Every path under `root` with its mode, size, mtime and content hash. */
function snapshot(root: string, rel = ''): Map<string, Entry> {
  const out = new Map<string, Entry>();
  for (const name of readdirSync(join(root, rel))) {
    const path = join(rel, name);
    const st = lstatSync(join(root, path));
    const entry: Entry = { mode: st.mode, size: st.size, mtimeMs: st.mtimeMs };
    if (st.isFile()) entry.sha = createHash('sha256').update(readFileSync(join(root, path))).digest('hex');
    out.set(path, entry);
    if (st.isDirectory()) for (const [p, e] of snapshot(root, path)) out.set(p, e);
  }
  return out;
}

/** A temp install root with the group files groupadd --prefix expects. */
function installRoot(): string {
  const root = tempDir();
  mkdirSync(join(root, 'etc'));
  writeFileSync(join(root, 'etc', 'group'), 'root:x:0:\n');
  writeFileSync(join(root, 'etc', 'gshadow'), 'root:*::\n', { mode: 0o640 });
  return root;
}

function install(root: string, ...args: string[]): SpawnSyncReturns<string> {
  const out = spawnSync('bash', [INSTALL, ...args], { encoding: 'utf8', env: { ...process.env, ES2_INSTALL_ROOT: root } });
  assert.equal(out.status, 0, `install.sh ${args.join(' ')} failed:\n${out.stdout}${out.stderr}`);
  return out;
}

/** The per-item lines install.sh prints, before its summary. */
function itemLines(stdout: string): string[] {
  return stdout.slice(0, stdout.indexOf('\n\n')).split('\n');
}

const notRoot = process.getuid?.() !== 0 ? 'install.sh writes files owned by root and runs groupadd: run the tests as root' : false;
if (notRoot) console.log(`# skipping deploy/install.sh tests: ${notRoot}`);

describe('deploy/install.sh', { skip: notRoot }, () => {
  it('puts group, hook, unit, es2ctl, config and token in place, and a second run changes nothing', () => {
    const root = installRoot();
    const first = install(root);
    for (const item of ['group es2', '/etc/libvirt/hooks/qemu.d/50-es2', '/etc/systemd/system/es2d.service', '/usr/local/bin/es2ctl']) {
      assert.match(first.stdout, new RegExp(`^${item} +(created|installed)$`, 'm'), item);
    }
    assert.match(first.stdout, /^\/etc\/es2\/es2d\.yaml +installed from /m);
    assert.match(first.stdout, /^\/etc\/es2\/api\.token +created/m);
    assert.match(first.stdout, /systemctl daemon-reload +skipped: the install root is not \//);
    assert.match(first.stdout, /systemctl restart libvirtd: libvirt looks for hook scripts only when it starts/);

    assert.match(readFileSync(join(root, 'etc', 'group'), 'utf8'), /^es2:x:\d+:$/m);
    const hook = join(root, 'etc', 'libvirt', 'hooks', 'qemu.d', '50-es2');
    assert.equal(lstatSync(hook).mode & 0o777, 0o755);
    const [shebang, comment, curl, ...rest] = readFileSync(hook, 'utf8').split('\n');
    assert.equal(shebang, '#!/bin/sh');
    assert.equal(comment, '# Written by deploy/install.sh:');
    assert.match(curl!, /^ES2_CURL=\/\S+\/curl$/, 'curl\'s path: libvirtd\'s PATH need not have it');
    assert.deepEqual(rest, readFileSync(HOOK, 'utf8').split('\n').slice(1), 'the hook is the repository\'s, settings aside');
    const unit = readFileSync(join(root, 'etc', 'systemd', 'system', 'es2d.service'), 'utf8');
    assert.match(unit, new RegExp(`^ExecStart=/\\S+/node --max-semi-space-size=4 ${repoRoot}/dist/src/daemon/main\\.js --config /etc/es2/es2d\\.yaml$`, 'm'));
    assert.equal(readFileSync(join(root, 'etc', 'es2', 'es2d.yaml'), 'utf8'), readFileSync(CONFIG, 'utf8'));
    assert.equal(lstatSync(join(root, 'etc', 'es2', 'es2d.yaml')).mode & 0o777, 0o640);
    const token = join(root, 'etc', 'es2', 'api.token');
    assert.equal(lstatSync(token).mode & 0o777, 0o600);
    assert.match(readFileSync(token, 'utf8'), /^[0-9a-f]{64}\n$/);
    assert.ok(lstatSync(join(root, 'etc', 'nova', 'provider_config')).isDirectory());

    const before = snapshot(root);
    const second = install(root);
    const facts = /^(install root|node|curl|es2 checkout) /;
    assert.deepEqual(itemLines(second.stdout).filter((l) => !facts.test(l) && !/ in place$/.test(l)), []);
    assert.match(second.stdout, /^Nothing to change: everything was already in place\.$/m);
    assert.doesNotMatch(second.stdout, /restart libvirtd/);
    assert.deepEqual(snapshot(root), before);
  });

  it('--dry-run says what it would do and writes nothing', () => {
    const root = installRoot();
    const before = snapshot(root);
    const out = install(root, '--dry-run');
    assert.match(out.stdout, /^group es2 +would be created$/m);
    assert.match(out.stdout, /^\/etc\/systemd\/system\/es2d\.service +would be installed$/m);
    assert.match(out.stdout, /^Dry run: \d+ change\(s\) would be made; nothing was changed\.$/m);
    assert.deepEqual(snapshot(root), before);
  });

  it('keeps an operator\'s config, and puts back a hook or unit that differs', () => {
    const root = installRoot();
    install(root);
    const config = join(root, 'etc', 'es2', 'es2d.yaml');
    writeFileSync(config, 'logLevel: debug\n');
    const hook = join(root, 'etc', 'libvirt', 'hooks', 'qemu.d', '50-es2');
    writeFileSync(hook, '#!/bin/sh\nexit 0\n');
    chmodSync(join(root, 'etc', 'systemd', 'system', 'es2d.service'), 0o600);
    const out = install(root);
    assert.equal(readFileSync(config, 'utf8'), 'logLevel: debug\n');
    assert.match(out.stdout, /^\/etc\/es2\/es2d\.yaml +kept \(yours; compare with /m);
    assert.match(out.stdout, /^\/etc\/libvirt\/hooks\/qemu\.d\/50-es2 +updated$/m);
    assert.match(out.stdout, /^\/etc\/systemd\/system\/es2d\.service +given mode 0644$/m);
    assert.doesNotMatch(out.stdout, /restart libvirtd/, 'an updated hook runs from the next call');
  });

  it('warns when another provider config also names $COMPUTE_NODE', () => {
    const root = installRoot();
    mkdirSync(join(root, 'etc', 'nova', 'provider_config'), { recursive: true });
    writeFileSync(join(root, 'etc', 'nova', 'provider_config', 'site.yaml'),
      "meta: {schema_version: '1.0'}\nproviders:\n  - identification: {uuid: $COMPUTE_NODE}\n    traits: {additional: [CUSTOM_SITE]}\n");
    const out = install(root);
    assert.match(out.stdout, /^\/etc\/nova\/provider_config\/site\.yaml +CONFLICT: also identifies \$COMPUTE_NODE/m);
    assert.match(out.stdout, /Set providerConfig: false/);
  });

  it('bakes --hook-env into the hook, which libvirt\'s scrubbed environment would not pass', () => {
    const root = installRoot();
    const socket = join(root, 'nobody-listens.sock');
    install(root, '--hook-env', `ES2_SOCKET=${socket}`, '--hook-env', 'ES2_HOOK_FAILURE=fail');
    const hook = join(root, 'etc', 'libvirt', 'hooks', 'qemu.d', '50-es2');
    assert.match(readFileSync(hook, 'utf8'), new RegExp(`^#!/bin/sh\\n# Written by deploy/install.sh:\\nES2_CURL=/\\S+\\nES2_SOCKET=${socket}\\nES2_HOOK_FAILURE=fail\\n`));
    // As libvirt runs it: PATH and LC_ALL only, domain XML on stdin.
    const run = spawnSync(hook, ['instance-00000001', 'prepare', 'begin', '-'], {
      input: '<domain/>', encoding: 'utf8', env: { PATH: '/usr/bin:/bin', LC_ALL: 'C' },
    });
    assert.equal(run.status, 1, 'ES2_HOOK_FAILURE=fail refuses when es2d is unreachable');
    assert.match(run.stderr, new RegExp(`es2d is not reachable at ${socket}`));
  });

  it('refuses an unknown --hook-env name before changing anything', () => {
    const root = installRoot();
    const out = spawnSync('bash', [INSTALL, '--hook-env', 'PATH=/tmp'], { encoding: 'utf8', env: { ...process.env, ES2_INSTALL_ROOT: root } });
    assert.equal(out.status, 2);
    assert.match(out.stderr, /--hook-env PATH: expected ES2_SOCKET, ES2_HOOK_TIMEOUT or ES2_HOOK_FAILURE/);
    assert.equal(existsSync(join(root, 'etc', 'es2')), false);
  });
});
