// The operator tool's one way to show record data: every field escaped for
// the terminal, every JSON document free of raw control characters yet the
// same value once parsed.
import test from 'ava';
import fc from 'fast-check';
import { jsonText, table, terminalLines, terminalText } from '../../src/ops/cli/render.js';

const RAW = /[\p{Cc}\p{Bidi_Control}]/u;
const everyControl = [
  ...Array.from({ length: 0x20 }, (_, i) => i),
  ...Array.from({ length: 0x21 }, (_, i) => 0x7f + i),
  0x061c,
  0x200e,
  0x200f,
  0x202a,
  0x202b,
  0x202c,
  0x202d,
  0x202e,
  0x2066,
  0x2067,
  0x2068,
  0x2069,
].map((code) => String.fromCodePoint(code));

test('every C0, DEL, C1 and bidi control is written out, and nothing else is touched', (t) => {
  for (const c of everyControl) t.false(RAW.test(terminalText(`a${c}b`)), `U+${c.codePointAt(0)!.toString(16)}`);
  t.is(terminalText('evt\u001b[2J\u001b[31m'), 'evt\\x1b[2J\\x1b[31m');
  t.is(terminalText('a\r\n\tb\u009b\u007f\u202e'), 'a\\r\\n\\tb\\x9b\\x7f\\u{202e}');
  t.is(terminalText('plain ünïcödé ✓ 😀 \u00a0'), 'plain ünïcödé ✓ 😀 \u00a0');
});

test('lines keep their line breaks and lose every other control', (t) => {
  t.is(terminalLines('one\u001b[2J\ntwo\u202e'), 'one\\x1b[2J\ntwo\\u{202e}');
});

test('a table cell cannot add a line or hide a column', (t) => {
  const text = table([{ id: 'a\nFAKE  ROW', reason: 'x\u001b[8m' }], ['id', 'reason']);
  t.is(text.split('\n').length, 2);
  t.false(RAW.test(text.replace(/\n/g, '')));
});

test('JSON output has no raw control character and parses to the same value', (t) => {
  fc.assert(
    fc.property(fc.jsonValue({ stringUnit: 'binary' }), fc.constantFrom(undefined, 2), (value, indent) => {
      const text = jsonText(value, indent);
      return !RAW.test(text.replace(/\n/g, '')) && JSON.stringify(JSON.parse(text)) === JSON.stringify(value);
    }),
    { numRuns: 2_000 },
  );
  const all = everyControl.join('');
  t.is((JSON.parse(jsonText({ all })) as { all: string }).all, all);
  t.false(RAW.test(jsonText({ all })));
});
