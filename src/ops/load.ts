// Contract events for load and tests: seeded, so a run can be reproduced.
// Besides fresh upserts and deletes it can mix in producer retries (the same
// eventId again), late revisions (stale) and malformed records.
import type { OutgoingRecord } from './producer.js';
import { deletedEvent, upsertedEvent } from '../contract/wire-event.js';
import { policyKey } from '../contract/policy-key.js';

export interface LoadSpec {
  policies: number;
  events: number;
  seed?: number;
  /** Share of events that delete instead of upsert. */
  deleteRatio?: number;
  /** Share of records that re-send an earlier event (same eventId). */
  duplicateRatio?: number;
  /** Share of records that re-send an older revision with a new eventId. */
  staleRatio?: number;
  /** Share of records that are malformed. */
  malformedRatio?: number;
  /** Policy name prefix (names are `${prefix}-${i}`). */
  prefix?: string;
  /** Distinct documents per policy to draw from (few means many unchanged updates). */
  documentsPerPolicy?: number;
  /**
   * Paths events name (each under the managed prefix): policy i's events name
   * paths[i % length], none when that entry is undefined. Default: no event names a path.
   */
  paths?: (string | undefined)[];
  /** Share of the events of a policy with a path that name none anyway (where the policy is, or the prefix for a new one). */
  pathOmitRatio?: number;
  /**
   * Target accounts events name: policy i's events name accounts[i % length]
   * (partition key `<account>/<name>`). Default: no event names an account
   * (the worker's own).
   */
  accounts?: string[];
}

export type LoadKind = 'upsert' | 'delete' | 'duplicate' | 'stale' | 'malformed';

export interface LoadRecord extends OutgoingRecord {
  kind: LoadKind;
  policy: string;
  /** The account the event names, if any. */
  account?: string;
  eventId?: string;
  revision?: number;
}

/** mulberry32: small, fast, good enough for test data. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function policyDocument(policy: string, variant: number): Record<string, unknown> {
  return {
    Version: '2012-10-17',
    Statement: [
      {
        Sid: `V${variant}`,
        Effect: 'Allow',
        Action: ['s3:GetObject', 's3:ListBucket'],
        Resource: [`arn:aws:s3:::${policy}-bucket-${variant}`, `arn:aws:s3:::${policy}-bucket-${variant}/*`],
      },
    ],
  };
}

const MALFORMED = [
  () => Buffer.from('{"specVersion":"1",'),
  () => Buffer.from([0xff, 0xfe, 0x00, 0x01]),
  () => Buffer.from(JSON.stringify({ specVersion: '2', eventId: 'x', type: 'policy.deleted', policy: { name: 'x' } })),
  () => Buffer.from(JSON.stringify({ specVersion: '1', type: 'policy.deleted', policy: { name: 'x' } })),
];

export function generateLoad(spec: LoadSpec): LoadRecord[] {
  const random = seededRandom(spec.seed ?? 1);
  const prefix = spec.prefix ?? 'load';
  const variants = spec.documentsPerPolicy ?? 1_000_000;
  const revisions = new Map<string, number>();
  const sent: LoadRecord[] = [];
  const records: LoadRecord[] = [];
  const pick = <T>(items: T[]): T => items[Math.floor(random() * items.length)]!;
  // The policy object of an event; draws from the random stream only when paths are asked for.
  const policyField = (policy: string): { name: string; path?: string } => {
    if (!spec.paths?.length) return { name: policy };
    const path = spec.paths[Number(policy.slice(prefix.length + 1)) % spec.paths.length];
    if (path === undefined || random() < (spec.pathOmitRatio ?? 0)) return { name: policy };
    return { name: policy, path };
  };
  // The account policy i's events name; no draw from the random stream, so a seed gives the same events with or without accounts.
  const accountOf = (policy: string): { account?: string } => {
    if (!spec.accounts?.length) return {};
    return { account: spec.accounts[Number(policy.slice(prefix.length + 1)) % spec.accounts.length]! };
  };
  for (let i = 0; i < spec.events; i++) {
    const roll = random();
    const dup = spec.duplicateRatio ?? 0;
    const stale = spec.staleRatio ?? 0;
    const bad = spec.malformedRatio ?? 0;
    if (roll < bad) {
      records.push({ kind: 'malformed', policy: `${prefix}-bad`, partitionKey: `${prefix}-bad`, data: pick(MALFORMED)() });
      continue;
    }
    if (roll < bad + dup && sent.length > 0) {
      const original = pick(sent);
      records.push({ ...original, kind: 'duplicate' });
      continue;
    }
    const policy = `${prefix}-${Math.floor(random() * spec.policies)}`;
    const current = revisions.get(policy) ?? 0;
    if (roll < bad + dup + stale && current > 1) {
      const revision = current - 1 - Math.floor(random() * Math.min(current - 1, 3));
      const eventId = `${prefix}-e${i}-stale`;
      const target = accountOf(policy);
      const event = upsertedEvent({ eventId, ...target, ...policyField(policy), revision, document: policyDocument(policy, revision) });
      records.push({ kind: 'stale', policy, ...target, eventId, revision, partitionKey: policyKey({ ...target, policyName: policy }), data: Buffer.from(JSON.stringify(event)) });
      continue;
    }
    const revision = current + 1;
    revisions.set(policy, revision);
    const eventId = `${prefix}-e${i}`;
    const remove = random() < (spec.deleteRatio ?? 0);
    const target = accountOf(policy);
    const event = remove
      ? deletedEvent({ eventId, ...target, ...policyField(policy), revision })
      : upsertedEvent({ eventId, ...target, ...policyField(policy), revision, document: policyDocument(policy, revision % variants) });
    const partitionKey = policyKey({ ...target, policyName: policy });
    const record: LoadRecord = { kind: remove ? 'delete' : 'upsert', policy, ...target, eventId, revision, partitionKey, data: Buffer.from(JSON.stringify(event)) };
    records.push(record);
    sent.push(record);
  }
  return records;
}
