// What an update would change, by meaning: the document statement by
// statement (in the canonical form the reconciler compares, iam/document.ts:
// statement order, key order, a string versus a one-item list and the order
// of Action/Resource lists make no difference), and the tags as the
// reconciler syncs them (a set; `managed-by` is the processor's and kept).
import { OWNER_TAG } from '../contract/ownership.js';
import { canonicalDocument } from '../iam/document.js';

export interface StatementChange {
  sid: string;
  before: unknown;
  after: unknown;
}

export interface DocumentDiff {
  /** Statements only the new document has. */
  added: unknown[];
  /** Statements only IAM's document has. */
  removed: unknown[];
  /** Statements with the same Sid in both whose content differs. */
  changed: StatementChange[];
  /** Top-level keys other than Statement (Version, Id) that differ. */
  top: { key: string; before: unknown; after: unknown }[];
}

export interface TagDiff {
  /** Tags the policy gains. */
  added: Record<string, string>;
  /** Tags the policy loses (with the value it had). */
  removed: Record<string, string>;
  changed: Record<string, { before: string; after: string }>;
}

/** A document's canonical statements (each as JSON, sorted) and the rest of it. */
function canonicalParts(document: unknown): { statements: string[]; top: Record<string, unknown> } {
  const canonical = JSON.parse(canonicalDocument(document)) as unknown;
  if (canonical === null || typeof canonical !== 'object' || Array.isArray(canonical)) return { statements: [], top: {} };
  const { Statement, ...top } = canonical as Record<string, unknown>;
  return { statements: (Array.isArray(Statement) ? Statement : []).map((statement) => JSON.stringify(statement)), top };
}

function sidOf(statement: string): string | undefined {
  const parsed = JSON.parse(statement) as { Sid?: unknown };
  return typeof parsed.Sid === 'string' && parsed.Sid !== '' ? parsed.Sid : undefined;
}

/** The statements (as a multiset) in `from` and not in `than`. */
function without(from: string[], than: string[]): string[] {
  const left = new Map<string, number>();
  for (const item of than) left.set(item, (left.get(item) ?? 0) + 1);
  return from.filter((item) => {
    const count = left.get(item) ?? 0;
    if (count === 0) return true;
    left.set(item, count - 1);
    return false;
  });
}

/** How `after` differs from `before` by meaning; empty when documentsEqual. */
export function diffDocuments(before: unknown, after: unknown): DocumentDiff {
  const was = canonicalParts(before);
  const will = canonicalParts(after);
  const removed = without(was.statements, will.statements);
  const added = without(will.statements, was.statements);
  // A statement whose Sid both sides name once is one statement changed, not one removed and one added.
  const changed: StatementChange[] = [];
  const once = (list: string[]) => {
    const bySid = new Map<string, string[]>();
    for (const statement of list) {
      const sid = sidOf(statement);
      if (sid !== undefined) bySid.set(sid, [...(bySid.get(sid) ?? []), statement]);
    }
    return new Map([...bySid].filter(([, statements]) => statements.length === 1).map(([sid, [statement]]) => [sid, statement!]));
  };
  const removedBySid = once(removed);
  const addedBySid = once(added);
  for (const [sid, statement] of removedBySid) {
    const counterpart = addedBySid.get(sid);
    if (counterpart === undefined) continue;
    changed.push({ sid, before: JSON.parse(statement), after: JSON.parse(counterpart) });
    removed.splice(removed.indexOf(statement), 1);
    added.splice(added.indexOf(counterpart), 1);
  }
  const keys = [...new Set([...Object.keys(was.top), ...Object.keys(will.top)])].sort();
  const top = keys.filter((key) => JSON.stringify(was.top[key]) !== JSON.stringify(will.top[key])).map((key) => ({ key, before: was.top[key], after: will.top[key] }));
  return { added: added.map((s) => JSON.parse(s) as unknown), removed: removed.map((s) => JSON.parse(s) as unknown), changed, top };
}

/** How the tags change when `wanted` replaces `current` (IAM's, `managed-by` left out of both: the processor keeps it). */
export function diffTags(current: Record<string, string>, wanted: Record<string, string>): TagDiff {
  // Without a prototype: a tag key such as `__proto__` is a plain key here, as it is in the event (contract/decode.ts).
  const diff: TagDiff = { added: Object.create(null) as TagDiff['added'], removed: Object.create(null) as TagDiff['removed'], changed: Object.create(null) as TagDiff['changed'] };
  for (const [key, value] of Object.entries(wanted)) {
    if (key === OWNER_TAG) continue;
    if (!Object.hasOwn(current, key)) diff.added[key] = value;
    else if (current[key] !== value) diff.changed[key] = { before: current[key]!, after: value };
  }
  for (const [key, value] of Object.entries(current)) if (key !== OWNER_TAG && !Object.hasOwn(wanted, key)) diff.removed[key] = value;
  return diff;
}

export function isEmptyDocumentDiff(diff: DocumentDiff): boolean {
  return diff.added.length === 0 && diff.removed.length === 0 && diff.changed.length === 0 && diff.top.length === 0;
}

export function isEmptyTagDiff(diff: TagDiff): boolean {
  return Object.keys(diff.added).length === 0 && Object.keys(diff.removed).length === 0 && Object.keys(diff.changed).length === 0;
}
