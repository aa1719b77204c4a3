// What the baseline record processors share with each other and with the real
// one, so that one measurement reads all three the same way:
//
//   - the same logger (src/log/logger.ts: pino JSON on stderr; stdout is the
//     daemon's protocol and nothing else),
//   - one `"msg":"outcome"` line per record with the fields
//     src/pipeline/shard-pipeline.ts report() writes (shard, sequenceNumber,
//     partitionKey, eventId, outcome, latencyMs = now - approximateArrivalTimestamp,
//     processingMs = now - when the batch reached the child),
//   - the same AWS clients (src/aws/clients.ts) counted by the same observer
//     (Metrics.awsCallCounter(): aws_calls{operation,outcome,service}),
//   - one `"msg":"metrics"` line when the daemon closes stdin, as
//     src/intake/main.ts logs it.
import type { Checkpointer, KclRecord } from 'aws-kcl';
import { loadConfig } from '../../src/config/config.js';
import { createLogger } from '../../src/log/logger.js';
import type { Logger } from '../../src/log/logger.js';
import { Metrics } from '../../src/metrics/metrics.js';

export interface BaselineProcess {
  logger: Logger;
  metrics: Metrics;
  config: ReturnType<typeof loadConfig>;
}

export function baselineProcess(component: string): BaselineProcess {
  const config = loadConfig();
  const logger = createLogger(config.logLevel, { app: config.appName, component });
  const metrics = new Metrics();
  // rssBytes as src/intake/main.ts logs it. Not resourceUsage().maxRSS: on
  // Linux it survives exec, so a child forked from the JVM reports the JVM's size.
  const logMetrics = () => logger.info({ metrics: metrics.snapshot(), rssBytes: process.memoryUsage().rss }, 'metrics');
  setInterval(logMetrics, 60_000).unref();
  process.on('SIGUSR2', logMetrics); // as src/intake/main.ts: a reading on demand
  process.on('uncaughtException', (error) => logger.fatal({ err: error }, 'uncaught exception (the child keeps running)'));
  process.on('unhandledRejection', (error) => logger.fatal({ err: error }, 'unhandled rejection (the child keeps running)'));
  process.stdin.on('end', () => {
    logMetrics();
    logger.flush();
    setTimeout(() => process.exit(0), 50).unref();
  });
  return { logger, metrics, config };
}

export interface BatchRecord {
  shardId: string;
  sequenceNumber: string;
  partitionKey: string;
  data: Buffer;
  arrivedAt?: number;
  receivedAt: number;
}

export function toBatchRecords(shardId: string, records: KclRecord[], receivedAt: number): BatchRecord[] {
  return records.map((record) => ({
    shardId,
    sequenceNumber: record.sequenceNumber,
    partitionKey: record.partitionKey,
    data: Buffer.from(record.data ?? '', 'base64'),
    ...(typeof record.approximateArrivalTimestamp === 'number' ? { arrivedAt: record.approximateArrivalTimestamp } : {}),
    receivedAt,
  }));
}

/** The outcome line, field for field as ShardPipeline.report() writes it. */
export function reportOutcome(child: BaselineProcess, record: BatchRecord, outcome: string, extra: { eventId?: string; reason?: string } = {}): void {
  const now = Date.now();
  child.metrics.increment('outcomes', { outcome });
  child.logger.info(
    {
      shard: record.shardId,
      sequenceNumber: record.sequenceNumber,
      partitionKey: record.partitionKey.slice(0, 256),
      eventId: extra.eventId,
      outcome,
      reason: extra.reason,
      latencyMs: record.arrivedAt !== undefined ? now - record.arrivedAt : undefined,
      processingMs: now - record.receivedAt,
    },
    'outcome',
  );
}

/** Checkpoints at a sequence number (or SHARD_END when null); logs and carries on when refused. */
export function checkpointAt(checkpointer: Checkpointer, sequenceNumber: string | null, logger: Logger): Promise<void> {
  return new Promise((resolve) => {
    const callback = (error: string | null | undefined) => {
      if (error) logger.warn({ checkpoint: sequenceNumber ?? 'SHARD_END', err: String(error) }, 'checkpoint not taken');
      resolve();
    };
    if (sequenceNumber === null) checkpointer.checkpoint(callback);
    else checkpointer.checkpoint(sequenceNumber, callback);
  });
}
