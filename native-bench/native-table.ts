/**
 * The rows of `native.ts` and their table: for each comparable pair the raftline figure,
 * the native figure and their ratio (raftline / native), in one unit per row; rows with
 * only one side are raftline-only (or native-only) figures. Pure: rows in, text out.
 */

/** One side of a row: a figure, or why there is none. */
export interface Side {
  /** The figure in the row's unit; null when it could not be measured. */
  readonly value: number | null;
  /** What was measured, and secondary figures (p50, MB/s beside entries/s, ...). */
  readonly detail?: string;
  /** Why `value` is null: "cc not found", the error of a failed run. */
  readonly missing?: string;
}

/** One line of the table. */
export interface Row {
  /** Stable key for --json and tests, e.g. `disk.prealloc.4096`. */
  readonly id: string;
  /** disk, ring, tcp, crc32c, entry. */
  readonly section: string;
  /** What the row measures, short. */
  readonly label: string;
  /** Unit of both figures, e.g. `MB/s`, `msgs/s`, `µs`. */
  readonly unit: string;
  /** raftline's figure; absent for a native-only row. */
  readonly raftline?: Side;
  /** The native (C) figure; absent for a raftline-only row. */
  readonly native?: Side;
  /**
   * True when a smaller figure is better (a latency in µs): the ratio is still
   * raftline / native, so above 1 means raftline is slower.
   */
  readonly lowerIsBetter?: boolean;
}

/** raftline / native, or null unless both figures exist and the native one is not zero. */
export function ratioOf(row: Row): number | null {
  const r = row.raftline?.value;
  const n = row.native?.value;
  if (r === null || r === undefined || n === null || n === undefined || n === 0) return null;
  return r / n;
}

/** A figure with three significant digits and k/M/G for thousands, millions, billions. */
export function formatFigure(value: number): string {
  const abs = Math.abs(value);
  const scaled = (v: number, suffix: string): string => `${v.toPrecision(3)}${suffix}`;
  if (abs >= 1e9) return scaled(value / 1e9, 'G');
  if (abs >= 1e6) return scaled(value / 1e6, 'M');
  if (abs >= 1e4) return scaled(value / 1e3, 'k');
  if (abs >= 100) return value.toFixed(0);
  if (abs >= 1) return value.toPrecision(3);
  return value.toPrecision(2);
}

/** A ratio with two significant digits (three at and above 100). */
export function formatRatio(ratio: number): string {
  return ratio >= 100 ? ratio.toFixed(0) : ratio.toPrecision(2);
}

function sideText(side: Side | undefined): string {
  if (side === undefined) return '-';
  if (side.value === null) return 'n/a';
  return formatFigure(side.value);
}

/**
 * The table: a header, then per section its rows, each followed by indented lines with the
 * details of each side and why a figure is missing. Ratios are raftline / native.
 */
export function formatTable(rows: readonly Row[]): string {
  const labelWidth = Math.max(40, ...rows.map((r) => r.label.length + 2));
  const unitWidth = Math.max(10, ...rows.map((r) => r.unit.length + 2));
  const lines: string[] = [];
  const header = `${'row'.padEnd(labelWidth)}${'unit'.padEnd(unitWidth)}${'raftline'.padStart(10)}${'native'.padStart(10)}${'ratio'.padStart(8)}`;
  lines.push(header, '-'.repeat(header.length));
  let section = '';
  for (const row of rows) {
    if (row.section !== section) {
      section = row.section;
      lines.push(`[${section}]`);
    }
    const ratio = ratioOf(row);
    lines.push(
      `${row.label.padEnd(labelWidth)}${row.unit.padEnd(unitWidth)}${sideText(row.raftline).padStart(10)}` +
        `${sideText(row.native).padStart(10)}${(ratio === null ? '' : formatRatio(ratio)).padStart(8)}`,
    );
    for (const [name, side] of [
      ['raftline', row.raftline],
      ['native', row.native],
    ] as const) {
      if (side === undefined) continue;
      const text = side.value === null ? `n/a: ${side.missing ?? 'not measured'}` : side.detail;
      if (text !== undefined && text !== '') lines.push(`    ${name}: ${text}`);
    }
  }
  lines.push(
    '-'.repeat(header.length),
    'ratio = raftline / native; for rates above 1 means raftline is faster, for µs rows above 1 means slower.',
    "'-' = no such side (a raftline-only or native-only row); n/a = not measured (reason below the row).",
  );
  return lines.join('\n');
}
