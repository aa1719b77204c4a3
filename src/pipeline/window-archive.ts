// The policy batch's reads and writes of the ledger's archive: the eventIds
// that leave an entry's window of recent ones are archived before the
// completion that drops them, and looked up only while the window is full
// (else nothing was archived).
import type { Ledger, LedgerEntry, RememberedEvent } from '../ledger/ledger.js';
import { windowFull } from '../ledger/ledger.js';
import { covers } from '../ledger/position.js';
import type { LedgerPosition } from '../ledger/position.js';
import type { ValidRecord } from './types.js';

/** Archives the events that leave the window: those completed earlier as they are, this step's own (`ours`) tagged with its completion's position. */
export async function archiveForgotten(ledger: Ledger, policy: string, forgotten: RememberedEvent[], ours: Set<string>, settledBy: LedgerPosition, epoch: number): Promise<void> {
  const earlier = forgotten.filter((event) => !ours.has(event.eventId));
  const own = forgotten.filter((event) => ours.has(event.eventId));
  await Promise.all([earlier.length > 0 ? ledger.archiveEvents(policy, epoch, earlier) : undefined, own.length > 0 ? ledger.archiveEvents(policy, epoch, own, settledBy) : undefined]);
}

/** The archived events among the records' eventIds, when the entry's window is full (else none were archived). */
export async function archivedAmong(ledger: Ledger, policy: string, records: ValidRecord[], previous: LedgerEntry | undefined, recentEventIds: number): Promise<RememberedEvent[]> {
  if (!previous || !windowFull(previous, recentEventIds)) return [];
  const unknown = records.filter((item) => !covers(previous.position, item.record) && !previous.events.some((event) => event.eventId === item.event.eventId));
  if (unknown.length === 0) return [];
  // Of the entry's epoch: what an older epoch archived was forgotten with it (a re-apply replay).
  return ledger.archivedEvents(
    policy,
    previous.epoch,
    unknown.map((item) => item.event.eventId),
    previous.position,
  );
}
