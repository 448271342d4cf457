// Prints the figures of the reliability suite: the JSON lines the test files appended to
// $ES2_RELIABILITY_FIGURES (or the file given as the argument), summed over scenarios.
//   node dist/test/reliability/summary.js [FILE]
import { existsSync, readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';

import { FIGURE_NAMES, FIGURES_ENV, type FigureLine, type Figures } from './figures.js';

const KEYS = Object.keys(FIGURE_NAMES) as (keyof Figures)[];

export function readFigures(file: string): FigureLine[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8').split('\n').filter((l) => l.trim() !== '').map((l) => JSON.parse(l) as FigureLine);
}

export function totals(lines: readonly FigureLine[]): Figures {
  const sum = Object.fromEntries(KEYS.map((k) => [k, 0])) as unknown as Figures;
  for (const line of lines) for (const k of KEYS) sum[k] += line[k];
  return sum;
}

export function formatSummary(lines: readonly FigureLine[]): string {
  if (lines.length === 0) return 'es2 reliability figures: none recorded (did the reliability tier run?)\n';
  const sum = totals(lines);
  const width = Math.max(...lines.map((l) => l.scenario.length), 'scenario'.length);
  const heads = KEYS.map((k) => FIGURE_NAMES[k]);
  const row = (name: string, values: (string | number)[]): string =>
    `  ${name.padEnd(width)}  ${values.map((v, i) => String(v).padStart(heads[i]!.length)).join('  ')}`;
  const out = [`es2 reliability figures (${lines.length} scenario runs)`, row('scenario', heads)];
  for (const line of lines) out.push(row(line.scenario, KEYS.map((k) => line[k])));
  out.push(row('total', KEYS.map((k) => sum[k])));
  for (const line of lines) {
    if (Object.keys(line.notes).length > 0) out.push(`  ${line.scenario}: ${JSON.stringify(line.notes)}`);
  }
  return `${out.join('\n')}\n`;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const file = process.argv[2] ?? process.env[FIGURES_ENV];
  if (file === undefined || file === '') {
    process.stderr.write(`usage: summary.js FILE (or set ${FIGURES_ENV})\n`);
    process.exitCode = 2;
  } else {
    process.stdout.write(formatSummary(readFigures(file)));
  }
}
