// The in-process duplicate cache in front of the ledger. It only remembers
// what the ledger has already said (an entry's high-water mark, revision and
// applied eventIds), and within one epoch those only grow, so a cache hit is
// always a true duplicate or stale event: it can answer without DynamoDB.
//
// Memory: with 100,000 policies and as many eventIds this is most of a
// child's heap. The high-water mark is kept as the raw sequence number (the
// string the record already carries, ~56 digits) rather than the ledger's
// 129-digit padded form, which would cost about 75 more bytes per policy.
import { LRUCache } from 'lru-cache';
import { compareSequence } from './sequence.js';

interface PolicyMark {
  epoch: number;
  /** Highest applied sequence number, raw (no padding). */
  last?: string;
  revision?: number;
}

export type CacheVerdict = 'duplicate' | 'stale' | undefined;

export class DedupCache {
  private readonly policies: LRUCache<string, PolicyMark>;
  private readonly events: LRUCache<string, number>;

  constructor(maxEntries: number) {
    this.policies = new LRUCache({ max: maxEntries });
    this.events = new LRUCache({ max: maxEntries });
  }

  /** What the cache knows for sure about this event, or undefined to ask the ledger. */
  verdict(epoch: number, policy: string, sequenceNumber: string, eventId: string, revision?: number): CacheVerdict {
    const mark = this.policies.get(policy);
    if (mark && mark.epoch === epoch) {
      if (mark.last !== undefined && compareSequence(mark.last, sequenceNumber) >= 0) return 'duplicate';
    }
    if (this.events.get(eventId) === epoch) return 'duplicate';
    if (mark && mark.epoch === epoch && revision !== undefined && mark.revision !== undefined && mark.revision >= revision) {
      return 'stale';
    }
    return undefined;
  }

  /**
   * Learns from the ledger: its entry's high-water mark (as a raw sequence
   * number), revision and applied eventIds.
   */
  learn(epoch: number, policy: string, lastSequence: string | undefined, revision: number | undefined, eventIds: string[]): void {
    const known = this.policies.get(policy);
    const fresh = !known || known.epoch !== epoch;
    const mark: PolicyMark = { epoch };
    const bestLast = fresh ? lastSequence : laterSequence(known.last, lastSequence);
    const bestRevision = fresh ? revision : maxDefined(known.revision, revision);
    if (bestLast !== undefined) mark.last = bestLast;
    if (bestRevision !== undefined) mark.revision = bestRevision;
    this.policies.set(policy, mark);
    for (const id of eventIds) this.events.set(id, epoch);
  }

  get size(): number {
    return this.policies.size + this.events.size;
  }
}

function laterSequence(a: string | undefined, b: string | undefined): string | undefined {
  if (a === undefined) return b;
  if (b === undefined) return a;
  return compareSequence(a, b) >= 0 ? a : b;
}

function maxDefined(a: number | undefined, b: number | undefined): number | undefined {
  if (a === undefined) return b;
  if (b === undefined) return a;
  return a >= b ? a : b;
}
