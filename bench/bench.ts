// The shape every benchmark module has, and what a row of the results carries.
import type { Context } from './context.js';

/** One entry of bench/results.json. */
export interface Result {
  name: string;
  /** The figure: subject over anchor, or an absolute figure where the anchor says so. */
  ratio: number;
  /** What the ratio is measured against, in the same run. */
  anchor: string;
  detail: string;
}

export interface Goal {
  op: '<=' | '>=' | '<';
  value: number;
  /** Shown in the table ("<= 1.3", "< 120 MB"). */
  text: string;
}

export interface Row extends Result {
  /** Absent for a figure the issue asks to report without a goal. */
  goal?: Goal;
  /** Unit of an absolute figure, shown after it in the table. */
  unit?: string;
}

export interface Bench {
  /** The name `--only` selects; a module may produce rows with other names (es2d-resources). */
  name: string;
  /** Row names this module produces, so `--only` can name a row. */
  rows: string[];
  run(ctx: Context): Promise<Row[]>;
}

export function met(row: Row): boolean | null {
  const g = row.goal;
  if (g === undefined) return null;
  switch (g.op) {
    case '<=':
      return row.ratio <= g.value;
    case '>=':
      return row.ratio >= g.value;
    case '<':
      return row.ratio < g.value;
  }
}
