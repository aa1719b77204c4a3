// Entry point of the record-processor child the MultiLangDaemon starts for
// each shard lease. stdout carries the daemon's protocol and nothing else;
// logs go to stderr. The child never dies on input; it exits when the daemon
// closes its stdin.
import kcl from 'aws-kcl';
import { createAwsClients } from '../aws/clients.js';
import { loadConfig } from '../config/config.js';
import { createLogger } from '../log/logger.js';
import { Metrics } from '../metrics/metrics.js';
import { buildProcessParts } from './process-parts.js';
import { PolicyRecordProcessor } from './record-processor.js';
import { startShardPipeline } from './start-shard.js';

const config = loadConfig();
const logger = createLogger(config.logLevel, { app: config.appName, component: 'record-processor' });
const metrics = new Metrics();
const clients = createAwsClients(config, { observers: [metrics.awsCallCounter()] });
const parts = buildProcessParts(config, clients, logger, metrics);

const processor = new PolicyRecordProcessor({
  logger,
  progressCheckpointMs: config.progressCheckpointMs,
  checkpointAttempts: config.checkpointAttempts,
  startShard: async (shardId, onSettled, signal) => ({
    pipeline: await startShardPipeline(parts, shardId, onSettled, signal),
  }),
});

const logMetrics = () => logger.info({ metrics: metrics.snapshot(), rssBytes: process.memoryUsage().rss }, 'metrics');
setInterval(logMetrics, 60_000).unref();
// `kill -USR2 <child pid>`: the metrics line now, for an operator or a benchmark that wants a reading between two moments.
process.on('SIGUSR2', logMetrics);

process.on('uncaughtException', (error) => logger.fatal({ err: error }, 'uncaught exception (the child keeps running)'));
process.on('unhandledRejection', (error) => logger.fatal({ err: error }, 'unhandled rejection (the child keeps running)'));

// The daemon closed our stdin: it is gone or done with this shard. Exit promptly.
process.stdin.on('end', () => {
  processor.stop();
  logMetrics();
  logger.flush();
  setTimeout(() => process.exit(0), 50).unref();
});

kcl(processor).run();
