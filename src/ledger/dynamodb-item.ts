// A ledger entry as DynamoDB holds it: the item's attributes read into a
// LedgerEntry, and a completion written as an update (docs/ledger.md has the
// schema).
import type { AttributeValue } from '@aws-sdk/client-dynamodb';
import type { CompletionRequest, DesiredState, LedgerEntry, PolicyState } from './ledger.js';
import { fromLedgerSequence, toLedgerSequence } from './sequence.js';
import { LEDGER_KEY } from './table.js';

export type Item = Record<string, AttributeValue>;

/** Whether the item a failed completion returned shows that completion applied: its token is the last completed one. */
export function completedBy(item: Item | undefined, token: string): boolean {
  return item?.completedToken?.S === token;
}

export function toEntry(item: Item): LedgerEntry {
  const entry: LedgerEntry = {
    policy: item[LEDGER_KEY]?.S ?? '',
    epoch: item.epoch?.N ? Number(item.epoch.N) : 0,
    events: (item.eventIds?.L ?? []).map((value, i) => {
      const hash = item.eventHashes?.L?.[i]?.S;
      return { eventId: value.S ?? '', ...(hash ? { payloadHash: hash } : {}) };
    }),
  };
  if (item.hwm?.S) {
    entry.position = {
      shardId: item.hwmShard?.S ?? '',
      sequenceNumber: fromLedgerSequence(item.hwm.S),
      // No hwmSub: written before subsequences were kept; the mark covers the whole record.
      subSequenceNumber: item.hwmSub?.N !== undefined ? Number(item.hwmSub.N) : Number.MAX_SAFE_INTEGER,
      lineage: (item.hwmLineage?.L ?? []).map((value) => value.S ?? ''),
    };
  }
  if (item.revision?.N) entry.revision = Number(item.revision.N);
  if (item.docHash?.S) entry.docHash = item.docHash.S;
  if (item.policyState?.S) entry.state = item.policyState.S as PolicyState;
  if (item.desired?.S) entry.desired = JSON.parse(item.desired.S) as DesiredState;
  if (item.iamVersions?.L) entry.iamVersions = item.iamVersions.L.map((value) => value.S ?? '');
  if (item.verifyRequested?.N) entry.verifyRequested = Number(item.verifyRequested.N);
  if (item.verifyAfter?.N) entry.verifyAfter = Number(item.verifyAfter.N);
  if (item.updatedAt?.S) entry.updatedAt = item.updatedAt.S;
  if (item.lastOutcome?.S) entry.lastOutcome = item.lastOutcome.S;
  if (item.verifiedUpTo?.N) entry.verifiedUpTo = Number(item.verifiedUpTo.N);
  if (item.adoptedAt?.S) entry.adopted = { at: item.adoptedAt.S, by: item.adoptedBy?.S ?? '' };
  if (item.claimOwner?.S && item.claimToken?.S) {
    entry.claim = {
      owner: item.claimOwner.S,
      token: item.claimToken.S,
      expiresAt: Number(item.claimExpires?.N ?? 0),
      sequence: item.claimSeq?.S ?? '',
    };
  }
  return entry;
}

/**
 * The UpdateItem a completion makes (conditional on its claim token, which
 * the caller adds): the position, the window of eventIds with their payload
 * hashes, and what the step leaves IAM as; the claim is removed.
 */
export function completionUpdate(request: CompletionRequest, now: number): { expression: string; values: Item } {
  const { position } = request;
  const values: Item = {
    ':token': { S: request.token },
    ':hwm': { S: toLedgerSequence(position.sequenceNumber) },
    ':sub': { N: String(position.subSequenceNumber) },
    ':shard': { S: position.shardId },
    ':lineage': { L: position.lineage.map((shard) => ({ S: shard })) },
    ':epoch': { N: String(request.epoch) },
    // Two lists in step: eventIds for the claim's `contains` condition, the
    // payload hashes beside them to tell a retry from a reused eventId.
    ':ids': { L: request.events.map((event) => ({ S: event.eventId })) },
    ':hashes': { L: request.events.map((event) => ({ S: event.payloadHash ?? '' })) },
    ':state': { S: request.state },
    ':outcome': { S: request.outcome },
    ':at': { S: new Date(now).toISOString() },
  };
  const sets = [
    // Whose completion this is: the SDK's retry of a completion whose answer was lost fails the token check, and the item tells it was ours.
    'completedToken = :token',
    'hwm = :hwm',
    'hwmSub = :sub',
    'hwmShard = :shard',
    'hwmLineage = :lineage',
    'epoch = :epoch',
    'eventIds = :ids',
    'eventHashes = :hashes',
    'policyState = :state',
    'lastOutcome = :outcome',
    'updatedAt = :at',
  ];
  // The versions are the step's knowledge or nothing: a value the step cannot vouch for is removed.
  const removes = ['claimOwner', 'claimToken', 'claimExpires', 'claimSeq'];
  // An event took effect: the state is the processor's now, no longer the adoption's (Ledger.adopt).
  if (request.outcome !== 'rejected') removes.push('adoptedAt', 'adoptedBy');
  // The revision is the epoch's: a completion that carries none moves an entry of an older
  // epoch to this one without one (its revision would make the epoch's events stale).
  if (request.revision !== undefined) {
    values[':rev'] = { N: String(request.revision) };
    sets.push('revision = :rev');
  } else removes.push('revision');
  if (request.docHash !== undefined) {
    values[':hash'] = { S: request.docHash };
    sets.push('docHash = :hash');
  }
  if (request.desired !== undefined) {
    values[':desired'] = { S: JSON.stringify(request.desired) };
    sets.push('desired = :desired');
  }
  if (request.verifiedUpTo !== undefined) {
    values[':verified'] = { N: String(request.verifiedUpTo) };
    sets.push('verifiedUpTo = :verified');
  }
  if (request.iamVersions !== undefined) {
    values[':versions'] = { L: request.iamVersions.map((id) => ({ S: id })) };
    sets.push('iamVersions = :versions');
  } else removes.push('iamVersions');
  return { expression: `SET ${sets.join(', ')} REMOVE ${removes.join(', ')}`, values };
}
