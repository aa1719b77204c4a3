// A checkpoint through the daemon. Throttling and dependency errors are worth
// retrying; the others mean the lease is gone or the shard is shutting down,
// and retrying cannot help (the next owner redelivers, and the ledger drops
// what was already applied as duplicates).
import { setTimeout as sleep } from 'node:timers/promises';
import type { Checkpointer } from 'aws-kcl';
import { backoffDelay } from '../faults/backoff.js';
import type { Logger } from '../log/logger.js';

const RETRYABLE = /Throttling|KinesisClientLibDependency/i;
/** The daemon's checkpoint write to its lease table: a short wait is enough. */
const CHECKPOINT_BACKOFF = { baseMs: 200, capMs: 5_000 };

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
  for (let attempt = 1; ; attempt++) {
    try {
      await once(checkpointer, sequenceNumber);
      log.debug({ checkpoint: sequenceNumber ?? 'SHARD_END' }, 'checkpointed');
      return;
    } catch (error) {
      const message = (error as Error).message;
      if (!RETRYABLE.test(message) || attempt >= attempts || signal?.aborted) {
        log.warn({ checkpoint: sequenceNumber ?? 'SHARD_END', err: message }, 'checkpoint not taken');
        return;
      }
      await sleep(backoffDelay(attempt, CHECKPOINT_BACKOFF));
    }
  }
}
