// The record processor the MultiLangDaemon runs, one child process per shard
// lease. Its life cycle, step by step:
//
//   initialize         learn the shard, read the ledger epoch, build the pipeline
//   processRecords     run the batch through the pipeline; while it runs,
//                      checkpoint the settled prefix now and then; when every
//                      record has its outcome, checkpoint the batch's last
//                      record; then answer
//   leaseLost          another worker owns the shard now: stop, no checkpoint
//                      (the ledger's claim tokens fence anything left over)
//   shardEnded         the shard is closed (reshard): checkpoint SHARD_END so
//                      its children can start
//   shutdownRequested  the worker is stopping: checkpoint what is settled
//
// The daemon sends one message at a time and waits for the answer, so no
// batch is in flight when leaseLost, shardEnded or shutdownRequested arrive.
import type { Checkpointer, CheckpointingInput, InitializeInput, KclRecord, ProcessRecordsInput, RecordProcessor } from 'aws-kcl';
import type { Logger } from '../log/logger.js';
import { METRIC } from '../metrics/metrics.js';
import type { Metrics } from '../metrics/metrics.js';
import { CheckpointTracker } from '../pipeline/checkpoint-tracker.js';
import type { ShardPipeline } from '../pipeline/shard-pipeline.js';
import type { Settlement, StreamRecord } from '../pipeline/types.js';
import { checkpoint } from './checkpoint.js';
import { retry } from '../faults/retry.js';
import { RETRY } from '../faults/retry-policies.js';
import { StoppedError } from '../faults/errors.js';

export interface ShardRuntime {
  pipeline: ShardPipeline;
}

export interface RecordProcessorOptions {
  logger: Logger;
  /** Builds what a shard needs once its id is known (ledger epoch, claim owner, pipeline). */
  startShard(shardId: string, onSettled: (settlement: Settlement) => void, signal: AbortSignal): Promise<ShardRuntime>;
  /** How often a long batch checkpoints its settled prefix (Config.progressCheckpointMs). */
  progressCheckpointMs: number;
  /** Attempts of a checkpoint the daemon answers with throttling (Config.checkpointAttempts). */
  checkpointAttempts: number;
  /** Counts batches: their duration and size. */
  metrics?: Metrics;
}

/** Where a shard stands, for the progress item (progress.ts) and the oldest-unsettled gauge. */
export interface ShardProgress {
  shardId: string;
  /** `ready` once the pipeline is built; `lease-lost`, `shard-ended` and `stopped` are final. */
  state: 'initializing' | 'ready' | 'lease-lost' | 'shard-ended' | 'stopped';
  /** The batch being processed, if any. */
  batch?: {
    receivedAt: number;
    records: number;
    settled: number;
    /** The first record without an outcome: nothing after it is checkpointed. */
    oldestUnsettled?: { sequenceNumber: string; subSequenceNumber: number; partitionKey: string; arrivedAt?: number; receivedAt: number };
  };
}

export function toStreamRecord(shardId: string, record: KclRecord, index: number, receivedAt: number): StreamRecord {
  return {
    shardId,
    sequenceNumber: record.sequenceNumber,
    // A user record of a KPL aggregate: its place in the aggregate. 0 otherwise.
    subSequenceNumber: typeof record.subSequenceNumber === 'number' ? record.subSequenceNumber : 0,
    partitionKey: record.partitionKey,
    data: Buffer.from(record.data ?? '', 'base64'),
    index,
    ...(typeof record.approximateArrivalTimestamp === 'number' ? { arrivedAt: record.approximateArrivalTimestamp } : {}),
    receivedAt,
  };
}

export class PolicyRecordProcessor implements RecordProcessor {
  private shardId = 'unknown';
  private runtime: ShardRuntime | undefined;
  private tracker: CheckpointTracker | undefined;
  private lastCheckpointed: string | undefined;
  private lastProcessed: string | undefined;
  private readonly stopping = new AbortController();
  private log: Logger;
  private state: ShardProgress['state'] = 'initializing';
  /** The batch in flight and when it arrived. */
  private batch: { records: StreamRecord[]; receivedAt: number } | undefined;

  constructor(private readonly options: RecordProcessorOptions) {
    this.log = options.logger;
  }

  /** Aborts in-flight retries (stdin closed: the daemon is gone). */
  stop(): void {
    if (this.state !== 'lease-lost' && this.state !== 'shard-ended') this.state = 'stopped';
    this.stopping.abort();
  }

  /** Where the shard stands now: the batch in flight and its oldest record without an outcome. */
  progress(): ShardProgress {
    const progress: ShardProgress = { shardId: this.shardId, state: this.state };
    const { batch, tracker } = this;
    // A child that lost its lease or stopped settles nothing more: its batch is someone else's now.
    if (batch && tracker && this.state === 'ready') {
      const first = tracker.firstUnsettled();
      const record = first === undefined ? undefined : batch.records[first];
      progress.batch = {
        receivedAt: batch.receivedAt,
        records: batch.records.length,
        settled: tracker.settledCount,
        ...(record
          ? {
              oldestUnsettled: {
                sequenceNumber: record.sequenceNumber,
                subSequenceNumber: record.subSequenceNumber,
                partitionKey: record.partitionKey,
                ...(record.arrivedAt !== undefined ? { arrivedAt: record.arrivedAt } : {}),
                receivedAt: record.receivedAt,
              },
            }
          : {}),
      };
    }
    return progress;
  }

  /**
   * How long the oldest record without an outcome has waited: since it
   * reached the stream (or, if the daemon did not say, since it was
   * received). 0 when every record delivered has its outcome.
   */
  oldestUnsettledAgeMs(now = Date.now()): number {
    const oldest = this.progress().batch?.oldestUnsettled;
    return oldest ? Math.max(0, now - (oldest.arrivedAt ?? oldest.receivedAt)) : 0;
  }

  initialize(input: InitializeInput, done: () => void): void {
    this.shardId = input.shardId;
    this.log = this.options.logger.child({ shard: input.shardId });
    this.log.info({ startingAt: input.sequenceNumber }, 'initialize');
    void this.startShard(input.shardId).then((runtime) => {
      if (!runtime) return; // stopping
      this.runtime = runtime;
      if (this.state === 'initializing') this.state = 'ready';
      done();
    });
  }

  /**
   * Builds the shard's pipeline, retrying with backoff until it succeeds or
   * the processor stops: answering `initialize` without a pipeline would let
   * the daemon deliver records this child cannot settle.
   */
  private async startShard(shardId: string): Promise<ShardRuntime | undefined> {
    try {
      return await retry(RETRY.shardStart, () => this.options.startShard(shardId, (settlement) => this.tracker?.markSettled(settlement.record.index), this.stopping.signal), {
        signal: this.stopping.signal,
        retriable: () => true,
        onRetry: (error, { index }, delayMs) => this.log.error({ err: error, attempt: index, delayMs }, 'shard start-up failed; retrying'),
      });
    } catch (error) {
      if (error instanceof StoppedError) return undefined;
      throw error;
    }
  }

  processRecords(input: ProcessRecordsInput, done: () => void): void {
    this.processBatch(input)
      .then(done)
      .catch((error: unknown) => {
        if (error instanceof StoppedError) return this.log.warn('batch abandoned: processor stopping');
        this.log.fatal({ err: error }, 'batch failed unexpectedly; not answering so no checkpoint passes it');
      });
  }

  private async processBatch(input: ProcessRecordsInput): Promise<void> {
    const runtime = this.runtime;
    if (!runtime) throw new Error('processRecords before initialize completed');
    const receivedAt = Date.now();
    const records = input.records.map((record, index) => toStreamRecord(this.shardId, record, index, receivedAt));
    if (records.length === 0) return;
    this.tracker = new CheckpointTracker(records);
    this.batch = { records, receivedAt };
    const progress = setInterval(() => void this.checkpointProgress(input.checkpointer), this.options.progressCheckpointMs);
    try {
      await runtime.pipeline.processBatch(records);
    } finally {
      clearInterval(progress);
    }
    const last = records[records.length - 1]!.sequenceNumber;
    this.lastProcessed = last;
    await this.checkpointAt(input.checkpointer, last);
    this.batch = undefined;
    this.options.metrics?.observe(METRIC.batchDurationMs, Date.now() - receivedAt);
    this.options.metrics?.observe(METRIC.batchRecords, records.length);
  }

  /** During a long batch: checkpoint the settled prefix so a restart redoes less. */
  private async checkpointProgress(checkpointer: Checkpointer): Promise<void> {
    const safe = this.tracker?.safePosition()?.sequenceNumber;
    if (safe && safe !== this.lastCheckpointed && !this.checkpointing) await this.checkpointAt(checkpointer, safe);
  }

  private checkpointing = false;

  private async checkpointAt(checkpointer: Checkpointer, sequenceNumber: string | null): Promise<void> {
    while (this.checkpointing) await new Promise((resolve) => setTimeout(resolve, 10));
    this.checkpointing = true;
    try {
      await checkpoint(checkpointer, sequenceNumber, this.log, { attempts: this.options.checkpointAttempts, signal: this.stopping.signal });
      if (sequenceNumber) this.lastCheckpointed = sequenceNumber;
    } finally {
      this.checkpointing = false;
    }
  }

  leaseLost(_input: Record<string, never>, done: () => void): void {
    this.log.warn('lease lost: stopping without a checkpoint');
    this.state = 'lease-lost';
    this.stopping.abort();
    done();
  }

  shardEnded(input: CheckpointingInput, done: () => void): void {
    this.log.info('shard ended: checkpointing SHARD_END');
    this.state = 'shard-ended';
    this.checkpointAt(input.checkpointer, null)
      .catch((error: unknown) => this.log.error({ err: error }, 'SHARD_END checkpoint failed'))
      .finally(done);
  }

  shutdownRequested(input: CheckpointingInput, done: () => void): void {
    this.log.info({ lastProcessed: this.lastProcessed }, 'shutdown requested');
    const finish = this.lastProcessed ? this.checkpointAt(input.checkpointer, this.lastProcessed) : Promise.resolve();
    finish.catch((error: unknown) => this.log.error({ err: error }, 'shutdown checkpoint failed')).finally(done);
  }
}
