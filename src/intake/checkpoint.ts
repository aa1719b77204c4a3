// A checkpoint through the daemon. Throttling and dependency errors are worth
// retrying; the others mean the lease is gone or the shard is shutting down,
// and retrying cannot help (the next owner redelivers, and the ledger drops
// what was already applied as duplicates).
import type { Checkpointer } from 'aws-kcl';
import { retry } from '../faults/retry.js';
import { RETRY } from '../faults/retry-policies.js';
import type { Logger } from '../log/logger.js';

const RETRYABLE = /Throttling|KinesisClientLibDependency/i;

function once(checkpointer: Checkpointer, sequenceNumber: string | null): Promise<void> {
  return new Promise((resolve, reject) => {
    const callback = (error: string | null | undefined) => (error ? reject(new Error(String(error))) : resolve());
    if (sequenceNumber === null) checkpointer.checkpoint(callback);
    else checkpointer.checkpoint(sequenceNumber, callback);
  });
}

/** Checkpoints at `sequenceNumber`, or at SHARD_END when null. Gives up quietly when the lease is gone. */
export async function checkpoint(checkpointer: Checkpointer, sequenceNumber: string | null, log: Logger, options: { attempts: number; signal?: AbortSignal }): Promise<void> {
  const { attempts, signal } = options;
  try {
    // The signal only stops the retrying; a wait under way ends on its own.
    await retry({ ...RETRY.checkpoint, attempts }, () => once(checkpointer, sequenceNumber), { retriable: (error) => RETRYABLE.test((error as Error).message) && !signal?.aborted });
    log.debug({ checkpoint: sequenceNumber ?? 'SHARD_END' }, 'checkpointed');
  } catch (error) {
    log.warn({ checkpoint: sequenceNumber ?? 'SHARD_END', err: (error as Error).message }, 'checkpoint not taken');
  }
}
