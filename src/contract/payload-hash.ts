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

export function payloadHash(event: PolicyEvent): string {
  // 128 bits of SHA-256: collisions are out of reach, and the ledger keeps 32 per policy.
  return createHash('sha256').update(canonicalJson(event)).digest('base64url').slice(0, 22);
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
