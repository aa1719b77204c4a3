// Adoption in the DynamoDB ledger (Ledger.adopt, Ledger.release): an existing
// policy recorded as the last applied state, its revision unknown, and given
// back. Each is one conditional UpdateItem, so a re-run or a race with a
// worker's claim is answered by the item itself.
import { ConditionalCheckFailedException, UpdateItemCommand } from '@aws-sdk/client-dynamodb';
import { TransientError } from '../faults/errors.js';
import type { AdoptionRequest, AdoptionResult, ReleaseResult } from './ledger.js';
import { adoptionRefusal } from './ledger.js';
import type { LedgerStore } from './dynamodb-epochs.js';
import { toEntry } from './dynamodb-item.js';
import { LEDGER_KEY } from './table.js';

/** Ledger.adopt: records an existing policy's document as applied, unless the ledger already knows the policy as the processor's. */
export async function adoptEntry(store: LedgerStore, request: AdoptionRequest): Promise<AdoptionResult> {
  // adoptionRefusal (ledger.ts) as a condition: no entry; or no claim and no
  // applied state; or an adoption that no event has followed (a re-run).
  const condition =
    'attribute_not_exists(#key) OR (attribute_not_exists(claimOwner) AND (' +
    'attribute_not_exists(policyState) OR policyState IN (:unknown, :deleted)' +
    ' OR (policyState = :present AND attribute_exists(adoptedAt))))';
  try {
    const result = await store.dynamodb.send(
      new UpdateItemCommand({
        TableName: store.tableName,
        Key: { [LEDGER_KEY]: { S: request.policy } },
        UpdateExpression:
          'SET epoch = if_not_exists(epoch, :epoch), policyState = :present, docHash = :hash, desired = :desired, adoptedAt = :at, adoptedBy = :by, updatedAt = :at' + ' REMOVE revision, iamVersions',
        ConditionExpression: condition,
        ExpressionAttributeNames: { '#key': LEDGER_KEY },
        ExpressionAttributeValues: {
          ':epoch': { N: String(request.epoch) },
          ':present': { S: 'present' },
          ':unknown': { S: 'unknown' },
          ':deleted': { S: 'deleted' },
          ':hash': { S: request.docHash },
          ':desired': { S: JSON.stringify(request.desired) },
          ':at': { S: new Date(store.now()).toISOString() },
          ':by': { S: request.by },
        },
        ReturnValues: 'ALL_OLD',
        ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
      }),
    );
    return { recorded: true, previous: result.Attributes ? toEntry(result.Attributes) : undefined };
  } catch (error) {
    if (!(error instanceof ConditionalCheckFailedException)) throw error;
    if (!error.Item) throw new TransientError('ledger-unexplained', 'adoption refused without the item', { cause: error });
    const entry = toEntry(error.Item);
    return { recorded: false, because: adoptionRefusal(entry) ?? 'claim-in-flight', entry };
  }
}

/** Ledger.release: forgets what the ledger knew of the policy's state, unless a claim is in flight. */
export async function releaseEntry(store: LedgerStore, policy: string): Promise<ReleaseResult> {
  try {
    const result = await store.dynamodb.send(
      new UpdateItemCommand({
        TableName: store.tableName,
        Key: { [LEDGER_KEY]: { S: policy } },
        UpdateExpression: 'SET policyState = :unknown, updatedAt = :at REMOVE desired, docHash, iamVersions, revision, adoptedAt, adoptedBy',
        ConditionExpression: 'attribute_exists(#key) AND attribute_not_exists(claimOwner)',
        ExpressionAttributeNames: { '#key': LEDGER_KEY },
        ExpressionAttributeValues: { ':unknown': { S: 'unknown' }, ':at': { S: new Date(store.now()).toISOString() } },
        ReturnValues: 'ALL_OLD',
        ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
      }),
    );
    return { forgotten: true, previous: result.Attributes ? toEntry(result.Attributes) : undefined };
  } catch (error) {
    if (!(error instanceof ConditionalCheckFailedException)) throw error;
    // No item: nothing to forget (the condition keeps the update from making one).
    if (!error.Item) return { forgotten: true, previous: undefined };
    return { forgotten: false, because: 'claim-in-flight', entry: toEntry(error.Item) };
  }
}
