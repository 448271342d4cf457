// es2ctl: the operator CLI. Online commands talk to es2d over --endpoint; `xml ...` and
// `savings analyze` work offline. Exit status: 0 ok, 1 failed (error code printed), 2 usage.
import { Command, CommanderError } from 'commander';

import { Es2Error } from '../errors/index.js';
import { registerDomainCommands } from './cmd-domains.js';
import { registerHostCommands } from './cmd-host.js';
import { registerPolicyCommands } from './cmd-policy.js';
import { registerSavingsCommands } from './cmd-savings.js';
import { withExamples } from './online.js';
import { registerSavingsAnalyze } from './savings-analyze.js';
import { UsageError } from './usage.js';
import { registerXmlCommands } from './xml.js';

export const EXIT_OK = 0;
export const EXIT_FAILED = 1;
export const EXIT_USAGE = 2;

export function buildProgram(): Command {
  const program = new Command('es2ctl')
    .description('Operator CLI for es2, the ES2 control plane on a libvirt/KVM host')
    .option('--endpoint <endpoint>', 'es2d endpoint: unix:PATH or http://HOST:PORT', 'unix:/run/es2/es2d.sock')
    .option('--token-file <file>', 'bearer token for a TCP endpoint')
    .option('-o, --output <format>', 'output format: table or json', 'table')
    .exitOverride()
    .showHelpAfterError();
  withExamples(program, 'es2ctl domains', 'es2ctl enable test --pin 0=2,1=3-4 --iothreads 1',
    'es2ctl --endpoint http://compute-1:9474 --token-file /etc/es2/api.token -o json host');
  registerHostCommands(program);
  registerDomainCommands(program);
  registerPolicyCommands(program);
  // One `savings` command: its own action reads es2d, its `analyze` subcommand reads files.
  const savings = program.command('savings');
  registerSavingsCommands(program, savings);
  registerSavingsAnalyze(savings);
  registerXmlCommands(program);
  return program;
}

function printError(err: unknown): number {
  if (err instanceof CommanderError) {
    // Help and version requests also arrive here, with exit code 0.
    return err.exitCode === 0 ? EXIT_OK : EXIT_USAGE;
  }
  if (err instanceof UsageError) {
    process.stderr.write(`es2ctl: ${err.message}\n`);
    return EXIT_USAGE;
  }
  if (err instanceof Es2Error) {
    process.stderr.write(`es2ctl: ${err.code}: ${err.message}\n`);
    for (const d of err.details) process.stderr.write(`  ${d.path}: ${d.message}\n`);
    return EXIT_FAILED;
  }
  process.stderr.write(`es2ctl: INTERNAL: ${err instanceof Error ? err.message : String(err)}\n`);
  return EXIT_FAILED;
}

export async function main(argv: string[]): Promise<number> {
  try {
    await buildProgram().parseAsync(argv, { from: 'user' });
    return EXIT_OK;
  } catch (err) {
    return printError(err);
  }
}
