// What the earlier events of a policy's batch add to the ledger's knowledge
// once they take effect (their eventIds and revisions), so that each event is
// judged as the in-order fold would judge it (ledger/verdict.ts), and which
// verdicts must wait until the IAM step says which events took effect.
// Pure: no I/O.
import { maxOf } from './completion-plan.js';
import type { ValidRecord } from './types.js';
import { verdictOf } from '../ledger/verdict.js';
import type { Knowledge, KnownVerdict } from '../ledger/verdict.js';

/** A verdict and what it rests on: the ledger's knowledge alone, or earlier live events of the batch. */
export interface Judged {
  /** None: nothing known stands in the event's way, unless an earlier waiting event takes effect (`onWaiting`). */
  verdict: KnownVerdict | undefined;
  /** Rests on the batch's live events: the eventId's first one (event-id verdicts), or any of the first `liveBefore` with a revision at or above the event's (stale). */
  onBatch?: { mate: ValidRecord | undefined; liveBefore: number };
  /**
   * An earlier waiting event, should it take effect after all (a cut before
   * it), would change the verdict: its eventId would come before a `stale`
   * or before nothing, its revision would make the event `stale`.
   */
  onWaiting?: boolean;
}

/** An event whose verdict rests on earlier events of its batch that are to take effect. */
export interface Waiting extends Judged {
  item: ValidRecord;
}

const NOTHING_KNOWN: Knowledge = { covered: false, remembered: undefined, revision: undefined };

/** An event as verdictOf reads it. */
export function screened(item: ValidRecord): { payloadHash: string; revision: number | undefined } {
  return { payloadHash: item.payloadHash, revision: item.event.revision };
}

/**
 * What the live events of a batch, met so far, will add to the ledger's
 * knowledge once they take effect: their eventIds and revisions, and which
 * event added each; and what the waiting ones might add.
 */
export class BatchKnowledge {
  private readonly byEventId = new Map<string, ValidRecord>();
  private readonly live: ValidRecord[] = [];
  private maxRevision: number | undefined;
  private readonly waitingEventIds = new Set<string>();
  private waitingMaxRevision: number | undefined;

  /**
   * An event that waits: whether it takes effect is known only after the IAM
   * step (it does if the batch is cut before it), so a later verdict that its
   * eventId or revision would change waits too.
   */
  pend(item: ValidRecord): void {
    this.waitingEventIds.add(item.event.eventId);
    const revision = item.event.revision;
    if (revision !== undefined) this.waitingMaxRevision = Math.max(this.waitingMaxRevision ?? revision, revision);
  }

  add(item: ValidRecord): void {
    if (!this.byEventId.has(item.event.eventId)) this.byEventId.set(item.event.eventId, item);
    this.live.push(item);
    const revision = item.event.revision;
    if (revision !== undefined) this.maxRevision = Math.max(this.maxRevision ?? revision, revision);
  }

  /**
   * The verdict of the ledger's knowledge and the batch's together
   * (verdict.ts), whether it rests on the batch's live events, and whether an
   * earlier waiting event would change it. Undefined: the event is live.
   */
  judge(item: ValidRecord, ledger: Knowledge = NOTHING_KNOWN): Judged | undefined {
    const mate = this.byEventId.get(item.event.eventId);
    const known: Knowledge = {
      covered: ledger.covered,
      remembered: ledger.remembered ?? mate,
      revision: maxOf([ledger.revision, this.maxRevision].filter((r): r is number => r !== undefined)),
    };
    const verdict = verdictOf(known, screened(item));
    // Only rules 3 and 4 can still change (a duplicate stays, and an eventId already remembered
    // comes before a waiting event's): a waiting event's eventId comes before a `stale` or nothing,
    // its revision makes stale what nothing stood in the way of.
    const revision = item.event.revision;
    const onWaiting =
      !known.covered &&
      known.remembered === undefined &&
      (this.waitingEventIds.has(item.event.eventId) || (verdict === undefined && revision !== undefined && this.waitingMaxRevision !== undefined && revision <= this.waitingMaxRevision));
    if (verdict === undefined) return onWaiting ? { verdict, onWaiting } : undefined;
    const waits = onWaiting ? { onWaiting } : {};
    if (verdict === verdictOf(ledger, screened(item))) return { verdict, ...waits };
    return { verdict, onBatch: { mate, liveBefore: this.live.length }, ...waits };
  }

  /**
   * Whether a verdict that rests on the batch holds, once the IAM step has
   * run and every earlier waiting event was settled without effect: one of
   * the live events it rests on took effect (`tookEffect` must not change
   * between calls).
   */
  holds(item: ValidRecord, judged: Judged, tookEffect: (item: ValidRecord) => boolean): boolean {
    if (!judged.onBatch) return true; // the ledger's own verdict
    const { mate, liveBefore } = judged.onBatch;
    if (judged.verdict !== 'stale-revision') return tookEffect(mate!);
    // The highest revision among the first k live events that took effect, for every k.
    if (!this.effectiveRevisionUpTo) {
      const upTo: (number | undefined)[] = [undefined];
      for (const live of this.live) {
        const before = upTo[upTo.length - 1];
        const revision = tookEffect(live) ? live.event.revision : undefined;
        upTo.push(revision === undefined ? before : Math.max(before ?? revision, revision));
      }
      this.effectiveRevisionUpTo = upTo;
    }
    const highest = this.effectiveRevisionUpTo[liveBefore];
    return highest !== undefined && highest >= item.event.revision!;
  }

  private effectiveRevisionUpTo: (number | undefined)[] | undefined;
}
