// The hash of an event's canonical payload, remembered with its eventId. A
// producer that retries re-sends the same event, so the same eventId with the
// same payload is a duplicate; the same eventId with another payload is a
// producer reusing an id for a different event, rejected as
// `event-id-conflict` instead of being dropped in silence.
//
// Canonical: the decoded event (defaults filled in, unknown fields dropped)
// serialized with its object keys sorted, so whitespace, key order and an
// explicit default do not make two sends of one event differ.
import { createHash } from 'node:crypto';
import type { PolicyEvent } from './event.js';

const HASH_LENGTH = 22;

export function payloadHash(event: PolicyEvent): string {
  // 128 bits of SHA-256 (22 base64url characters): collisions are out of
  // reach, and the ledger keeps 32 per policy. Copied out of the digest's
  // text rather than sliced from it: a slice keeps the whole 43-character
  // text alive, twice the memory for each hash the duplicate cache holds.
  const text = createHash('sha256').update(canonicalJson(event)).digest('base64url');
  return Buffer.from(text, 'latin1').toString('latin1', 0, HASH_LENGTH);
}

function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.keys(value as Record<string, unknown>)
      .sort()
      .filter((key) => (value as Record<string, unknown>)[key] !== undefined)
      .map((key) => `${JSON.stringify(key)}:${canonicalJson((value as Record<string, unknown>)[key])}`);
    return `{${entries.join(',')}}`;
  }
  return JSON.stringify(value);
}
