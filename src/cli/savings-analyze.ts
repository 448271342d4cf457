// `es2ctl savings analyze`: savings reports from two capture files, no daemon needed.

import { readFile } from 'node:fs/promises';

import type { Command } from 'commander';

import { buildReport, DEFAULT_MIN_IO_OPS, baselineFromWindow, exitCosts, type SavingsReport } from '../savings/index.js';
import { captureSamples, parseCapture, REASONS, type DomainSample } from '../stats/index.js';
import { UsageError } from './usage.js';

interface AnalyzeOptions {
  baseline: string;
  current: string;
  minIoOps: string;
  cost: string[];
  output: string;
}

const COST_ARG = /^([a-z_]+)=(\d+(?:\.\d+)?)$/;

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

function parseCosts(args: readonly string[]): Record<string, number> {
  const overrides: Record<string, number> = {};
  for (const arg of args) {
    const m = COST_ARG.exec(arg);
    if (m === null) throw new UsageError(`--cost expects REASON=NANOSECONDS, got ${JSON.stringify(arg)}`);
    const reason = m[1] as string;
    if (!(REASONS as readonly string[]).includes(reason)) {
      throw new UsageError(`--cost: unknown exit reason ${JSON.stringify(reason)} (one of ${REASONS.join(', ')})`);
    }
    overrides[reason] = Number(m[2]);
  }
  return overrides;
}

async function loadCapture(flag: string, file: string): Promise<Map<string, DomainSample[]>> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new UsageError(`${flag}: cannot read ${file}: ${(err as Error).message}`);
  }
  return captureSamples(parseCapture(text, file));
}

function fixed(x: number | null, digits: number): string {
  return x === null ? '-' : x.toFixed(digits);
}

function percent(x: number | null, digits: number): string {
  return x === null ? '-' : `${(x * 100).toFixed(digits)}%`;
}

function pair(before: string, after: string): string {
  return before === '-' && after === '-' ? '-' : `${before} -> ${after}`;
}

/** One line per domain with the totals; per-reason figures are in `-o json`. */
function formatTable(reports: readonly SavingsReport[]): string {
  const header = ['DOMAIN', 'CONFIDENCE', 'IO OPS/S', 'EXITS/IO OP', 'REDUCTION', 'AVOIDED/S', 'EHT'];
  const rows = reports.map((r) => [
    r.name,
    r.confidence,
    pair(fixed(r.baseline?.ioOpsPerSecond ?? null, 1), fixed(r.current.ioOpsPerSecond, 1)),
    pair(fixed(r.baseline?.byReason.exits.perIoOp ?? null, 3), fixed(r.current.byReason.exits.perIoOp, 3)),
    percent(r.savings.byReason.exits.reduction, 1),
    fixed(r.savings.byReason.exits.avoidedPerSecond, 1),
    pair(percent(r.savings.ehtBefore, 3), percent(r.savings.ehtAfter, 3)),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => (row[i] as string).length)));
  return [header, ...rows]
    .map((row) => row.map((cell, i) => cell.padEnd(widths[i] as number)).join('  ').trimEnd())
    .join('\n');
}

async function analyze(options: AnalyzeOptions): Promise<void> {
  if (options.output !== 'table' && options.output !== 'json') {
    throw new UsageError(`-o must be table or json, got ${JSON.stringify(options.output)}`);
  }
  if (!/^\d+$/.test(options.minIoOps)) {
    throw new UsageError(`--min-io-ops expects a whole number, got ${JSON.stringify(options.minIoOps)}`);
  }
  const minIoOps = Number(options.minIoOps);
  const costs = exitCosts(parseCosts(options.cost));
  const before = await loadCapture('--baseline', options.baseline);
  const after = await loadCapture('--current', options.current);

  const reports: SavingsReport[] = [];
  for (const [name, current] of after) {
    const baselineSamples = before.get(name);
    if (baselineSamples === undefined) {
      process.stderr.write(`es2ctl: ${name} is only in --current, not reported\n`);
      continue;
    }
    const baseline = baselineFromWindow(baselineSamples);
    reports.push(buildReport({ uuid: null, name, baseline, current, costs, minIoOps }));
  }
  for (const name of before.keys()) {
    if (!after.has(name)) process.stderr.write(`es2ctl: ${name} is only in --baseline, not reported\n`);
  }

  if (options.output === 'json') {
    process.stdout.write(`${JSON.stringify(reports, null, 2)}\n`);
  } else if (reports.length === 0) {
    process.stdout.write('no domain appears in both captures\n');
  } else {
    process.stdout.write(`${formatTable(reports)}\n`);
  }
}

export function registerSavingsAnalyze(savings: Command): void {
  savings
    .command('analyze')
    .description('compare two capture files (no daemon): one report per domain found in both')
    .requiredOption('--baseline <file>', 'capture taken before ES2 was enabled')
    .requiredOption('--current <file>', 'capture taken with ES2 enabled')
    .option('--min-io-ops <n>', 'fewer I/O ops in a capture make the report insufficient-data', String(DEFAULT_MIN_IO_OPS))
    .option('--cost <reason=ns>', 'handling cost of one exit of REASON in nanoseconds (repeatable)', collect, [])
    .addHelpText('after', '\nExample:\n  $ es2ctl -o json savings analyze --baseline before.cap --current after.cap --cost io_exits=2500\n')
    .action(async (_opts: unknown, cmd: Command) => {
      await analyze(cmd.optsWithGlobals<AnalyzeOptions>());
    });
}
