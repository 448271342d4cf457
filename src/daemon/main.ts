#!/usr/bin/env -S node --max-semi-space-size=4
// es2d entry point: flags (DESIGN.md, Interfaces) over the YAML config, then run until SIGTERM.
// (The #! line caps V8's young generation as deploy/systemd/es2d.service does: see the note there.)
import { Command, CommanderError, InvalidArgumentError } from 'commander';

import { Es2Error } from '../errors/index.js';
import { resolveConfig, type ConfigFlags } from './config.js';
import { Daemon } from './daemon.js';
import { createLogger, LOG_LEVELS, type LogLevel } from './logger.js';

function positive(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError('must be a positive number of seconds');
  return n;
}

function logLevel(value: string): LogLevel {
  if (!(LOG_LEVELS as readonly string[]).includes(value)) throw new InvalidArgumentError(`one of ${LOG_LEVELS.join(', ')}`);
  return value as LogLevel;
}

export function parseFlags(argv: string[]): ConfigFlags {
  const program = new Command('es2d')
    .description('es2d: the ES2 control plane daemon of one libvirt/KVM host')
    .option('--config <file>', 'YAML config file (flags win over it)')
    .option('--uri <uri>', 'libvirt URI (default qemu:///system)')
    .option('--listen <addr>', 'unix:PATH or HOST:PORT, repeatable (default unix:/run/es2/es2d.sock)',
      (v: string, prev: string[] | undefined) => [...(prev ?? []), v])
    .option('--state-dir <dir>', 'state directory for the SQLite store (default /var/lib/es2)')
    .option('--host-root <dir>', 'root under which sysfs/procfs knobs are read and written (default /)')
    .option('--stats-interval <seconds>', 'seconds between stats cycles (default 10)', positive)
    .option('--token-file <file>', 'bearer token required on TCP listeners')
    .option('--log-level <level>', `log level: ${LOG_LEVELS.join(', ')}`, logLevel)
    .addHelpText('after', '\nExample:\n  es2d --uri test:///default --listen unix:/tmp/es2d.sock --state-dir /tmp/es2 --host-root /tmp/es2-root')
    .exitOverride()
    .parse(argv, { from: 'user' });
  const o = program.opts<Record<string, unknown>>();
  return {
    config: o.config as string | undefined, uri: o.uri as string | undefined, listen: o.listen as string[] | undefined,
    stateDir: o.stateDir as string | undefined, hostRoot: o.hostRoot as string | undefined,
    statsInterval: o.statsInterval as number | undefined, tokenFile: o.tokenFile as string | undefined,
    logLevel: o.logLevel as LogLevel | undefined,
  };
}

async function main(): Promise<number> {
  let flags: ConfigFlags;
  try {
    flags = parseFlags(process.argv.slice(2));
  } catch (err) {
    return err instanceof CommanderError && err.exitCode === 0 ? 0 : 2;
  }
  let daemon: Daemon;
  try {
    const config = resolveConfig(flags);
    daemon = await Daemon.start(config, createLogger(config.logLevel));
  } catch (err) {
    const e = err instanceof Es2Error ? err : new Es2Error('INTERNAL', (err as Error).message, { cause: err });
    process.stderr.write(`es2d: ${e.code}: ${e.message}\n`);
    for (const d of e.details) process.stderr.write(`  ${d.path}: ${d.message}\n`);
    return e.code === 'VALIDATION_FAILED' ? 2 : 1;
  }
  await new Promise<void>((resolve) => {
    // Handlers stay installed: a second signal during shutdown must not cut in-flight work short.
    const stop = (signal: string): void => {
      daemon.logger.info('shutting down', { signal });
      void daemon.stop().then(resolve);
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
  });
  return 0;
}

process.exitCode = await main();
