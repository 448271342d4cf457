// Human output of es2ctl. Every online command prints through these few functions so that columns
// line up the same way everywhere; `-o json` bypasses them and prints the API body untouched.

export type Cell = string | number | boolean | null | undefined;

/** Missing values print as `-`, never as an empty column or the word "null". */
export function cell(value: Cell): string {
  if (value === null || value === undefined || value === '') return '-';
  if (typeof value === 'boolean') return value ? 'yes' : 'no';
  return String(value);
}

function align(rows: readonly (readonly string[])[], gap: string): string {
  const widths: number[] = [];
  for (const row of rows) row.forEach((text, i) => (widths[i] = Math.max(widths[i] ?? 0, text.length)));
  return rows.map((row) => row.map((text, i) => text.padEnd(widths[i] ?? 0)).join(gap).trimEnd()).join('\n') + '\n';
}

/** Columns separated by two spaces, a header row first; ends with a newline. */
export function formatTable(header: readonly string[], rows: readonly (readonly Cell[])[]): string {
  return align([header, ...rows.map((row) => row.map(cell))], '  ');
}

/** `key:  value` lines with the values in one column. */
export function formatFields(fields: readonly (readonly [string, Cell])[]): string {
  return align(fields.map(([key, value]) => [`${key}:`, cell(value)]), ' ');
}

/** A titled list, one item a line indented by two; `(none)` says the list is empty rather than missing. */
export function formatList(title: string, items: readonly string[]): string {
  return `${title}:\n${(items.length === 0 ? ['(none)'] : items).map((item) => `  ${item}\n`).join('')}`;
}

/** Indents every line of a block (a table under a heading). */
export function indent(block: string, by = '  '): string {
  return block.split('\n').map((line) => (line === '' ? line : by + line)).join('\n');
}
