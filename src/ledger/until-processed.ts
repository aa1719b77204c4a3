// A DynamoDB batch call (BatchGetItem, BatchWriteItem) may leave part of its
// batch unprocessed (throttling): sent again, with backoff, by every caller alike.
import { TransientError } from '../faults/errors.js';
import { AGAIN, retry } from '../faults/retry.js';
import { RETRY } from '../faults/retry-policies.js';

/**
 * Sends a batch, then what DynamoDB left unprocessed (throttling), with
 * backoff (RETRY.batchUnprocessed); then the fault goes up as transient.
 */
export async function untilProcessed<T>(batch: T[], what: string, send: (pending: T[]) => Promise<T[] | undefined>): Promise<void> {
  let pending: T[] = batch;
  await retry(RETRY.batchUnprocessed, async () => {
    if (pending.length > 0) pending = (await send(pending)) ?? [];
    return pending.length > 0 ? AGAIN : pending;
  });
  if (pending.length > 0) throw new TransientError('ledger-batch-unprocessed', `${pending.length} ${what} left unprocessed by DynamoDB`);
}
