// Policy documents compared by meaning, not by bytes: statement order, key
// order, whitespace, a string versus a one-element array and the order of
// Action/Resource lists do not make two documents different. An update is
// written to IAM only when the canonical forms differ.
import { createHash } from 'node:crypto';

/** Keys whose value is a set: a string equals a one-element array, order is irrelevant. */
const SET_VALUED = new Set(['Action', 'NotAction', 'Resource', 'NotResource']);

function canonical(value: unknown, key?: string): unknown {
  if (Array.isArray(value)) {
    const items = value.map((item) => canonical(item));
    if (key && SET_VALUED.has(key)) return [...new Set(items.map((item) => JSON.stringify(item)))].sort().map((item) => JSON.parse(item));
    return items;
  }
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(value as Record<string, unknown>).sort()) {
      out[k] = canonical((value as Record<string, unknown>)[k], k);
    }
    return out;
  }
  if (key && SET_VALUED.has(key)) return [value];
  return value;
}

/** Condition values are sets too: {"StringEquals": {"k": "v"}} equals {"k": ["v"]}. */
function canonicalCondition(condition: unknown): unknown {
  if (condition === null || typeof condition !== 'object' || Array.isArray(condition)) return canonical(condition);
  const out: Record<string, unknown> = {};
  for (const operator of Object.keys(condition).sort()) {
    const block = (condition as Record<string, unknown>)[operator];
    if (block === null || typeof block !== 'object' || Array.isArray(block)) {
      out[operator] = canonical(block);
      continue;
    }
    const keys: Record<string, unknown> = {};
    for (const k of Object.keys(block).sort()) {
      const v = (block as Record<string, unknown>)[k];
      const list = (Array.isArray(v) ? v : [v]).map((item) => JSON.stringify(item));
      keys[k] = [...new Set(list)].sort().map((item) => JSON.parse(item));
    }
    out[operator] = keys;
  }
  return out;
}

/** The canonical form of a policy document as a string. */
export function canonicalDocument(document: unknown): string {
  if (document === null || typeof document !== 'object' || Array.isArray(document)) return JSON.stringify(canonical(document));
  const source = document as Record<string, unknown>;
  const statements = Array.isArray(source.Statement) ? source.Statement : source.Statement === undefined ? [] : [source.Statement];
  const canonicalStatements = statements
    .map((statement) => {
      if (statement === null || typeof statement !== 'object' || Array.isArray(statement)) return canonical(statement);
      const { Condition, ...rest } = statement as Record<string, unknown>;
      const result = canonical(rest) as Record<string, unknown>;
      if (Condition !== undefined) result.Condition = canonicalCondition(Condition);
      return result;
    })
    .map((statement) => JSON.stringify(statement))
    .sort();
  const { Statement: _statement, ...top } = source;
  const head = canonical({ Version: '2008-10-17', ...top }) as Record<string, unknown>;
  return JSON.stringify({ ...head, Statement: canonicalStatements.map((s) => JSON.parse(s)) });
}

export function documentsEqual(a: unknown, b: unknown): boolean {
  return canonicalDocument(a) === canonicalDocument(b);
}

export function documentHash(document: unknown): string {
  return createHash('sha256').update(canonicalDocument(document)).digest('hex');
}

/**
 * A policy version's document as IAM returns it: URL-encoded by real IAM, raw
 * JSON by some emulators. Decoded only when it is not JSON already.
 */
export function decodePolicyVersionDocument(text: string): unknown {
  const trimmed = text.trim();
  if (trimmed.startsWith('{')) return JSON.parse(trimmed);
  return JSON.parse(decodeURIComponent(trimmed));
}
