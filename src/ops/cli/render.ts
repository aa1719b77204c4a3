// Output of the operator tool: aligned tables for people, JSON for scripts.
// Results go to stdout; progress, prompts and errors to stderr.
//
// Much of what the tool prints comes from records a producer wrote (an
// eventId, a partition key, a dead letter's bytes, a tag value). A terminal
// acts on control characters instead of showing them: ESC [2J clears the
// screen, ESC [31m recolours it, ESC ]0; sets the window title, a C1 CSI
// (U+009B) does the same on some terminals, and a bidi override (U+202E)
// makes a line read other than it is. So every field is shown escaped
// (terminalText), every line printed is escaped but for its line breaks, and
// JSON output escapes what JSON.stringify leaves raw. What is shown stays
// readable (`evt\x1b[2J`); --json gives the exact value back.

export type Row = Record<string, string | number | boolean | undefined>;

/** C0 and C1 controls and DEL (\p{Cc}), and the bidi embeddings, overrides, isolates and marks. */
const CONTROL = /[\p{Cc}\p{Bidi_Control}]/gu;
/** The same, but for the line feed: a line printed keeps its line breaks. */
const CONTROL_BUT_LINE_FEED = /(?!\n)[\p{Cc}\p{Bidi_Control}]/gu;
/** What JSON.stringify leaves raw in a string: DEL, C1 and the bidi controls (it escapes C0 itself). */
const JSON_RAW = /[\u007f-\u009f\p{Bidi_Control}]/gu;
const NAMED: Record<string, string> = { '\n': '\\n', '\r': '\\r', '\t': '\\t' };

function escapeControl(c: string): string {
  const code = c.codePointAt(0)!;
  return NAMED[c] ?? (code <= 0xff ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u{${code.toString(16)}}`);
}

/** A field as a terminal may show it: every control character written out (`\x1b`, `\n`, `\u{202e}`), so it stays on its line and acts on nothing. */
export function terminalText(value: unknown): string {
  return String(value).replace(CONTROL, escapeControl);
}

/** Lines as a terminal may show them: their line breaks kept, every other control character written out. */
export function terminalLines(text: string): string {
  return text.replace(CONTROL_BUT_LINE_FEED, escapeControl);
}

/** JSON with no raw control character: the same value once parsed. */
export function jsonText(value: unknown, indent?: number): string {
  return JSON.stringify(value, null, indent).replace(JSON_RAW, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

export function table(rows: Row[], columns: string[]): string {
  if (rows.length === 0) return '(none)';
  const cell = (row: Row, column: string) => terminalText(row[column] ?? '-');
  const widths = columns.map((column) => Math.max(column.length, ...rows.map((row) => cell(row, column).length)));
  const line = (values: string[]) =>
    values
      .map((value, i) => value.padEnd(widths[i]!))
      .join('  ')
      .trimEnd();
  return [line(columns.map((c) => c.toUpperCase())), ...rows.map((row) => line(columns.map((c) => cell(row, c))))].join('\n');
}

export function printJson(value: unknown): void {
  process.stdout.write(`${jsonText(value, 2)}\n`);
}

export function print(text: string): void {
  process.stdout.write(`${terminalLines(text)}\n`);
}

export function note(text: string): void {
  process.stderr.write(`${terminalLines(text)}\n`);
}
