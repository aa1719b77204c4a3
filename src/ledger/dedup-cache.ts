// The in-process duplicate cache in front of the ledger. It only remembers
// what the ledger has already said (an entry's position and applied events),
// and within one epoch those only grow. It knows part of the ledger's state,
// so it gives only the verdict that the rest of that state cannot change:
// `duplicate` (a record at or before the remembered position, or an eventId
// remembered with the same payload), in the order of verdict.ts. Everything
// else goes to the ledger: a record on another shard than the remembered
// position, an eventId remembered with another payload (the ledger's position
// may cover the record, which makes it a duplicate), and a revision not above
// the applied one (the ledger may remember its eventId, which makes it a
// duplicate or a conflict rather than stale).
//
// Its memory of eventIds is per policy, like the ledger's: the same eventId
// under two policies is two events, whichever worker sees them. It is keyed
// by the eventId alone and holds the payload hash, which covers the policy's
// name (src/contract/payload-hash.ts): the same eventId under another policy
// never matches, and the later of the two replaces the earlier (which then
// goes to the ledger, as any eventId the cache has forgotten).
//
// Memory: with 100,000 policies and as many eventIds this is most of a
// child's heap, so every field counts. The position keeps the raw sequence
// number (the string the record already carries, ~56 digits) rather than the
// ledger's 129-digit padded form; the shard id is the string every record of
// the shard shares; an eventId's key is the eventId string itself (a key
// built from epoch, policy and eventId took about twice its size).
import { LRUCache } from 'lru-cache';
import type { RecordPosition } from '../contract/record-id.js';
import type { RememberedEvent } from './ledger.js';
import { compareWithin } from './position.js';
import { isDuplicate, verdictOf } from './verdict.js';

/**
 * Flat (no nested position object) and with shard ids interned: a cache of
 * 100,000 policies holds one of these per policy, so each field counts.
 */
interface PolicyMark {
  epoch: number;
  /** Last settled record of the policy, as the ledger holds it. */
  shardId: string | undefined;
  sequenceNumber: string | undefined;
  subSequenceNumber: number | undefined;
}

export type CacheVerdict = 'duplicate' | undefined;

export class DedupCache {
  private readonly policies: LRUCache<string, PolicyMark>;
  /** eventId -> payload hash, for events of `eventsEpoch` only. */
  private readonly events: LRUCache<string, string>;
  /**
   * The newest epoch learned. Events of older epochs are forgotten when it
   * moves (a replay makes them new again), and events of an older epoch than
   * it are neither learned nor answered: the ledger judges them.
   */
  private eventsEpoch: number | undefined;
  /** One copy of each shard id (a child sees a handful; every record carries its own copy). */
  private readonly shardIds = new Map<string, string>();

  constructor(maxEntries: number) {
    this.policies = new LRUCache({ max: maxEntries });
    this.events = new LRUCache({ max: maxEntries });
  }

  /** `duplicate` when what the cache knows makes the event one (verdict.ts), else undefined: ask the ledger. */
  verdict(epoch: number, policy: string, record: RecordPosition, eventId: string, payloadHash: string): CacheVerdict {
    const mark = this.policies.get(policy);
    const last = positionOf(mark !== undefined && mark.epoch === epoch ? mark : undefined);
    const hash = epoch === this.eventsEpoch ? this.events.get(eventId) : undefined;
    const known = {
      covered: last !== undefined && last.shardId === record.shardId && compareWithin(last, record) >= 0,
      remembered: hash === undefined ? undefined : { payloadHash: hash },
      revision: undefined,
    };
    return isDuplicate(verdictOf(known, { payloadHash })) ? 'duplicate' : undefined;
  }

  /** Learns from the ledger: its entry's position and applied events. */
  learn(epoch: number, policy: string, last: RecordPosition | undefined, events: RememberedEvent[]): void {
    const known = this.policies.get(policy);
    const fresh = !known || known.epoch !== epoch;
    const bestLast = fresh ? last : laterOnSameShard(positionOf(known), last);
    // Every field in the literal: one object of fixed shape (adding fields
    // later gives it a second backing store, about 36 B more per policy).
    const mark: PolicyMark = {
      epoch,
      shardId: bestLast === undefined ? undefined : this.intern(bestLast.shardId),
      sequenceNumber: bestLast?.sequenceNumber,
      subSequenceNumber: bestLast?.subSequenceNumber,
    };
    this.policies.set(policy, mark);
    if (this.eventsEpoch === undefined || epoch > this.eventsEpoch) {
      this.events.clear();
      this.eventsEpoch = epoch;
    }
    if (epoch < this.eventsEpoch) return;
    for (const event of events) {
      if (event.payloadHash !== undefined) this.events.set(event.eventId, event.payloadHash);
    }
  }

  private intern(shardId: string): string {
    const known = this.shardIds.get(shardId);
    if (known !== undefined) return known;
    this.shardIds.set(shardId, shardId);
    return shardId;
  }

  get size(): number {
    return this.policies.size + this.events.size;
  }
}

function positionOf(mark: PolicyMark | undefined): RecordPosition | undefined {
  if (mark?.shardId === undefined || mark.sequenceNumber === undefined) return undefined;
  return { shardId: mark.shardId, sequenceNumber: mark.sequenceNumber, subSequenceNumber: mark.subSequenceNumber ?? 0 };
}

/** The later of two positions; across shards the newer learning wins (the ledger moved on). */
function laterOnSameShard(a: RecordPosition | undefined, b: RecordPosition | undefined): RecordPosition | undefined {
  if (a === undefined) return b;
  if (b === undefined) return a;
  if (a.shardId !== b.shardId) return b;
  return compareWithin(a, b) >= 0 ? a : b;
}
