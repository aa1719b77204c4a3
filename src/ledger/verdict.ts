// What is already known about an event decides its verdict, in one order
// that the duplicate cache, the batch and the ledger all follow
// (docs/ledger.md, "One verdict, whichever layer meets the event"):
//
//   1. the record lies at or before the policy's last settled record:
//      `duplicate` (a redelivery or a replay of a record already settled);
//   2. the eventId was applied with the same payload: `duplicate` (a producer
//      retry);
//   3. the eventId was applied with another payload: `rejected`,
//      `event-id-conflict` (a producer reusing an id: it must be seen, so it
//      is dead-lettered rather than dropped as stale);
//   4. the revision is not above the applied one: `stale`. An entry with no
//      revision (none applied yet, or an adopted policy's, which is unknown:
//      Ledger.adopt) makes no event stale: the first event of any revision is
//      applied, and its revision is known from then on.
//
// Each layer knows part of the ledger's state: the cache what it learned, the
// batch what its earlier events will add, the ledger all of it. Only a
// verdict that more knowledge cannot change may be given from part of it:
// knowledge only grows, and only `duplicate` (rules 1 and 2) stays whatever a
// rule above it would add. So the cache answers duplicates only; the batch's
// own verdicts hold only once the events they rest on took effect.

export type KnownVerdict = 'duplicate-sequence' | 'duplicate-event-id' | 'event-id-conflict' | 'stale-revision';

export interface Knowledge {
  /** The record lies at or before the policy's last settled record (ledger/position.ts). */
  covered: boolean;
  /** What was applied under the event's eventId, if anything; no payload hash: remembered before hashes were kept, taken as the same. */
  remembered: { payloadHash?: string } | undefined;
  /** The highest revision applied. */
  revision: number | undefined;
}

/** The verdict what is known gives an event, or undefined: nothing known stands in its way. */
export function verdictOf(known: Knowledge, event: { payloadHash: string; revision?: number | undefined }): KnownVerdict | undefined {
  if (known.covered) return 'duplicate-sequence';
  if (known.remembered) {
    const hash = known.remembered.payloadHash;
    return hash === undefined || hash === event.payloadHash ? 'duplicate-event-id' : 'event-id-conflict';
  }
  if (event.revision !== undefined && known.revision !== undefined && event.revision <= known.revision) return 'stale-revision';
  return undefined;
}

/** A `duplicate`: the one verdict that part of the ledger's state gives for all of it (see above). */
export function isDuplicate(verdict: KnownVerdict | undefined): boolean {
  return verdict === 'duplicate-sequence' || verdict === 'duplicate-event-id';
}
