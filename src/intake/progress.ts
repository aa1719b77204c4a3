// Shard progress items: where each shard stands, for `ips status`.
//
// A record-processor child writes one small item per shard into the ledger
// table, under the key `#progress#<shardId>` (`#` is in no IAM policy name,
// so no policy entry can collide with it): the batch in flight, its oldest
// record without an outcome and the policy that record belongs to, and the
// outcomes of the last minute. It writes every IPS_PROGRESS_REPORT_MS while
// it has news (a batch in flight, outcomes in the last minute changing), and
// once a minute otherwise, so a reader can tell a quiet shard from a dead
// child by `updatedAt`. A child whose shard ended says so one last time; one
// that lost its lease stops writing (the next owner writes the same key).
//
// One UpdateItem per shard every few seconds at most: nothing next to the
// ledger's own traffic, and no permission a worker does not already have on
// the ledger (GetItem, UpdateItem: no PutItem, no DeleteItem).
import { BatchGetItemCommand, UpdateItemCommand } from '@aws-sdk/client-dynamodb';
import type { AttributeValue, BatchGetItemCommandOutput, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { AGAIN, retry } from '../faults/retry.js';
import { RETRY } from '../faults/retry-policies.js';
import { LEDGER_KEY } from '../ledger/table.js';
import type { Logger } from '../log/logger.js';
import { METRIC, parseKey } from '../metrics/metrics.js';
import type { Metrics } from '../metrics/metrics.js';
import type { ShardProgress } from './record-processor.js';

export const PROGRESS_KEY_PREFIX = '#progress#';
export const progressKey = (shardId: string) => `${PROGRESS_KEY_PREFIX}${shardId}`;

/** The outcomes of the last minute are counted over this window. */
export const OUTCOME_WINDOW_MS = 60_000;
/** A quiet shard's item is written at least this often. */
const HEARTBEAT_MS = 60_000;

/** What a progress item holds. */
export interface ProgressItem extends ShardProgress {
  /** Who wrote it: the worker (IPS_WORKER_ID) and the child's pid. */
  worker: string;
  /** When it was written, epoch ms. */
  updatedAt: number;
  /** Outcomes counted over the last `windowMs` (up to a minute; from the child's start while it is younger than that). */
  outcomes: Record<string, number>;
  windowMs: number;
}

export interface ProgressReporterOptions {
  dynamodb: DynamoDBClient;
  tableName: string;
  worker: string;
  /** Where the shard stands now (the record processor's progress()). */
  source: () => ShardProgress;
  /** The child's metrics: outcomes are read from METRIC.outcomes. */
  metrics: Metrics;
  intervalMs: number;
  logger: Logger;
  now?: () => number;
}

export class ProgressReporter {
  private timer: NodeJS.Timeout | undefined;
  private readonly samples: { at: number; counts: Record<string, number> }[] = [];
  private last: { at: number; batch: boolean; outcomes: string; state: string } | undefined;
  private writing = false;
  private done = false;
  private readonly now: () => number;

  constructor(private readonly options: ProgressReporterOptions) {
    this.now = options.now ?? Date.now;
    // The child's outcomes count from zero when it starts: that is the first
    // baseline, so what settles before the first report (an interval later)
    // is counted too, not taken as the baseline itself.
    this.samples.push({ at: this.now(), counts: {} });
  }

  start(): void {
    this.timer = setInterval(() => void this.tick(), this.options.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    this.done = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** One look at the shard: writes its item if there is news. Never throws. */
  async tick(): Promise<void> {
    if (this.writing || this.done) return;
    this.writing = true;
    try {
      const now = this.now();
      const outcomes = this.outcomesOfLastMinute(now);
      const progress = this.options.source();
      if (progress.state === 'initializing') return;
      if (progress.state === 'lease-lost' || progress.state === 'stopped') return this.stop();
      // The shard's last word: ended (its children carry on).
      if (progress.state === 'shard-ended') this.stop();
      const outcomesKey = JSON.stringify(outcomes.counts);
      const last = this.last;
      const news = !last || progress.batch !== undefined || last.batch || last.outcomes !== outcomesKey || last.state !== progress.state || now - last.at >= HEARTBEAT_MS;
      if (!news) return;
      const item: ProgressItem = { ...progress, worker: `${this.options.worker}/${process.pid}`, updatedAt: now, outcomes: outcomes.counts, windowMs: outcomes.windowMs };
      await this.options.dynamodb.send(
        new UpdateItemCommand({
          TableName: this.options.tableName,
          Key: { [LEDGER_KEY]: { S: progressKey(progress.shardId) } },
          UpdateExpression: 'SET shardId = :shard, updatedAt = :at, progress = :progress',
          ExpressionAttributeValues: { ':shard': { S: progress.shardId }, ':at': { N: String(item.updatedAt) }, ':progress': { S: JSON.stringify(item) } },
        }),
      );
      this.last = { at: now, batch: progress.batch !== undefined, outcomes: outcomesKey, state: progress.state };
    } catch (error) {
      this.options.logger.warn({ err: error }, 'shard progress not written');
    } finally {
      this.writing = false;
    }
  }

  /** Outcomes counted since the sample taken a minute ago (the oldest kept), by outcome. */
  private outcomesOfLastMinute(now: number): { counts: Record<string, number>; windowMs: number } {
    const counts = outcomeCounts(this.options.metrics);
    this.samples.push({ at: now, counts });
    // Keep one sample at or before the window's start as the baseline.
    while (this.samples.length > 1 && this.samples[1]!.at <= now - OUTCOME_WINDOW_MS) this.samples.shift();
    const baseline = this.samples[0]!;
    const delta: Record<string, number> = {};
    for (const [outcome, count] of Object.entries(counts)) {
      const gained = count - (baseline.counts[outcome] ?? 0);
      if (gained > 0) delta[outcome] = gained;
    }
    return { counts: delta, windowMs: now - baseline.at };
  }
}

function outcomeCounts(metrics: Metrics): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const [key, value] of Object.entries(metrics.snapshot())) {
    const { name, labels } = parseKey(key);
    // One series per outcome and account (and reason): an outcome's count is their sum.
    if (name === METRIC.outcomes && labels.outcome) counts[labels.outcome] = (counts[labels.outcome] ?? 0) + value;
  }
  return counts;
}

/** The progress items of the given shards (none for a shard no child reported on). */
export async function readProgress(dynamodb: DynamoDBClient, tableName: string, shardIds: string[]): Promise<Map<string, ProgressItem>> {
  const found = new Map<string, ProgressItem>();
  for (let i = 0; i < shardIds.length; i += 100) {
    let keys: Record<string, AttributeValue>[] | undefined = shardIds.slice(i, i + 100).map((shardId) => ({ [LEDGER_KEY]: { S: progressKey(shardId) } }));
    await retry(
      RETRY.progressUnprocessed,
      async () => {
        if (!keys || keys.length === 0) return keys;
        const result: BatchGetItemCommandOutput = await dynamodb.send(new BatchGetItemCommand({ RequestItems: { [tableName]: { Keys: keys, ConsistentRead: true } } }));
        for (const item of result.Responses?.[tableName] ?? []) {
          try {
            const progress = JSON.parse(item.progress?.S ?? '') as ProgressItem;
            found.set(progress.shardId, progress);
          } catch {
            /* an item this version cannot read: as if absent */
          }
        }
        keys = result.UnprocessedKeys?.[tableName]?.Keys;
        return keys && keys.length > 0 ? AGAIN : keys;
      },
      { retriable: () => false },
    );
  }
  return found;
}
