// Output of the operator tool: aligned tables for people, JSON for scripts.
// Results go to stdout; progress, prompts and errors to stderr.

export type Row = Record<string, string | number | boolean | undefined>;

export function table(rows: Row[], columns: string[]): string {
  if (rows.length === 0) return '(none)';
  const cell = (row: Row, column: string) => String(row[column] ?? '-');
  const widths = columns.map((column) => Math.max(column.length, ...rows.map((row) => cell(row, column).length)));
  const line = (values: string[]) => values.map((value, i) => value.padEnd(widths[i]!)).join('  ').trimEnd();
  return [line(columns.map((c) => c.toUpperCase())), ...rows.map((row) => line(columns.map((c) => cell(row, c))))].join('\n');
}

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

export function print(text: string): void {
  process.stdout.write(`${text}\n`);
}

export function note(text: string): void {
  process.stderr.write(`${text}\n`);
}
