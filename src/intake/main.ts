// Entry point of the record-processor child the MultiLangDaemon starts for
// each shard lease. stdout carries the daemon's protocol and nothing else;
// logs go to stderr. The child never dies on input; it exits when the daemon
// closes its stdin.
import kcl from 'aws-kcl';
import { createAwsClients, destroyAwsClients } from '../aws/clients.js';
import { configWarnings, loadConfig } from '../config/config.js';
import { createLogger, stderrLines } from '../log/logger.js';
import { EmfPublisher, sinkFor } from '../metrics/emf.js';
import { METRIC, Metrics } from '../metrics/metrics.js';
import { limiterNews } from './limiter-news.js';
import { buildProcessParts } from './process-parts.js';
import { ProgressReporter } from './progress.js';
import { PolicyRecordProcessor } from './record-processor.js';
import { startShardPipeline } from './start-shard.js';

const config = loadConfig();
const logger = createLogger(config.logLevel, { app: config.appName, component: 'record-processor' });
for (const warning of configWarnings()) logger.warn(warning);
const metrics = new Metrics();
const clientOptions = { observers: [metrics.awsCallCounter()], onIamLimiterEvent: limiterNews(metrics, logger) };
const clients = createAwsClients(config, clientOptions);
const parts = buildProcessParts(config, clients, logger, metrics, clientOptions);

const processor = new PolicyRecordProcessor({
  logger,
  progressCheckpointMs: config.progressCheckpointMs,
  checkpointAttempts: config.checkpointAttempts,
  metrics,
  startShard: async (shardId, onSettled, signal) => ({
    pipeline: await startShardPipeline(parts, shardId, onSettled, signal),
  }),
});

metrics.gauge(METRIC.oldestUnsettledAgeMs, () => processor.oldestUnsettledAgeMs());
metrics.gauge(METRIC.rssBytes, () => process.memoryUsage().rss);

// Metrics to CloudWatch in the Embedded Metric Format: to the CloudWatch agent, or as JSON lines on stderr.
const sink = sinkFor(config, stderrLines());
const shardOf = () => {
  const { shardId } = processor.progress();
  return shardId === 'unknown' ? undefined : shardId;
};
const publisher = sink
  ? new EmfPublisher({
      metrics,
      sink,
      namespace: config.metricsNamespace,
      app: config.appName,
      worker: config.workerId,
      shard: shardOf,
      properties: () => ({ pid: process.pid }),
      onError: (error) => logger.warn({ err: error }, 'metrics not published'),
    })
  : undefined;

// The shard's progress item in the ledger table, for `ips status`.
const progress = new ProgressReporter({
  dynamodb: clients.dynamodb,
  tableName: config.ledgerTable,
  worker: config.workerId,
  source: () => processor.progress(),
  metrics,
  intervalMs: config.progressReportMs,
  logger,
});
progress.start();

const logMetrics = () => {
  const { counters, gauges, distributions } = metrics.summary();
  logger.info({ metrics: counters, gauges, distributions, rssBytes: process.memoryUsage().rss }, 'metrics');
};
const report = () => {
  logMetrics();
  void publisher?.publish();
};
setInterval(report, config.metricsIntervalMs).unref();
// `kill -USR2 <child pid>`: the metrics now (log line and EMF), for an operator or a benchmark that wants a reading between two moments.
process.on('SIGUSR2', report);

process.on('uncaughtException', (error) => logger.fatal({ err: error }, 'uncaught exception (the child keeps running)'));
process.on('unhandledRejection', (error) => logger.fatal({ err: error }, 'unhandled rejection (the child keeps running)'));

// The daemon closed our stdin: it is gone or done with this shard. Exit promptly.
process.stdin.on('end', () => {
  processor.stop();
  progress.stop();
  logMetrics();
  // The last publication, but never a wait of more than a second for the agent.
  const published = publisher ? Promise.race([publisher.stop(), new Promise((resolve) => setTimeout(resolve, 1_000).unref())]) : Promise.resolve();
  void published.finally(() => {
    // Leaves the shared IAM limiter: a socket this process held is removed for the next holder.
    destroyAwsClients(clients);
    parts.accounts?.destroy();
    logger.flush();
    setTimeout(() => process.exit(0), 50).unref();
  });
});

kcl(processor).run();
