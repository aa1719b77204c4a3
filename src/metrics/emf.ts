// Publishes a process's metrics (metrics.ts) to CloudWatch in the Embedded
// Metric Format, with awslabs' aws-embedded-metrics: one JSON document per
// label set, holding every metric of that label set, which CloudWatch turns
// into metrics under the namespace (default `IamPolicyStream`).
//
// Where the documents go:
//   - `agent`: the CloudWatch agent (on ECS, a sidecar) over TCP or UDP at
//     AWS_EMF_AGENT_ENDPOINT, e.g. tcp://127.0.0.1:25888;
//   - `stderr`: one JSON line each, beside the logs. Never stdout: in a
//     record-processor child, stdout carries the daemon's protocol alone.
//
// Only the library's logger, context, serializer and agent sink are loaded,
// never its entry point: that one starts probing for its environment on
// load, EC2's included (an HTTP call to the instance metadata address), and
// its console sink writes to stdout.
//
// Counters are published as what they gained since the previous
// publication; gauges as their reading now; distributions as a uniform
// sample of at most 100 values of the interval, the largest among them.
import ConfigurationModule from 'aws-embedded-metrics/lib/config/Configuration.js';
import { MetricsContext } from 'aws-embedded-metrics/lib/logger/MetricsContext.js';
import { MetricsLogger } from 'aws-embedded-metrics/lib/logger/MetricsLogger.js';
import { LogSerializer } from 'aws-embedded-metrics/lib/serializers/LogSerializer.js';
import { AgentSink } from 'aws-embedded-metrics/lib/sinks/AgentSink.js';
import type { IEnvironment } from 'aws-embedded-metrics/lib/environment/IEnvironment.js';
import type { ISink } from 'aws-embedded-metrics/lib/sinks/Sink.js';
import type { Labels, MetricScope, MetricSpec, Metrics } from './metrics.js';
import { METRIC_SPECS, parseKey } from './metrics.js';

// CommonJS default export: Node hands the whole exports object to an ES module.
type LibraryConfiguration = { agentEndpoint: string | undefined; debuggingLoggingEnabled: boolean };
const libraryConfiguration = ((ConfigurationModule as unknown as { default?: LibraryConfiguration }).default ?? ConfigurationModule) as unknown as LibraryConfiguration;
// The library's own debug log goes to stdout: never in a record processor.
libraryConfiguration.debuggingLoggingEnabled = false;

/** The default endpoint of the CloudWatch agent's EMF listener. */
export const DEFAULT_AGENT_ENDPOINT = 'tcp://127.0.0.1:25888';

export type EmfSink = ISink;

/** Where JSON lines are written: a stream, or the logger's own stderr writer (log/logger.ts stderrLines). */
export interface LineWriter {
  write(text: string): unknown;
}

/** EMF documents as JSON lines on a stream (stderr in a record processor; any stream in tests). */
export class StreamSink implements ISink {
  readonly name = 'StreamSink';
  private readonly serializer = new LogSerializer();

  constructor(private readonly stream: LineWriter) {}

  accept(context: MetricsContext): Promise<void> {
    // One write per document: a line is never split by another writer's line.
    for (const document of this.serializer.serialize(context)) this.stream.write(`${document}\n`);
    return Promise.resolve();
  }
}

/** EMF documents to the CloudWatch agent (tcp:// or udp://). */
export function agentSink(endpoint: string, logGroupName?: string, logStreamName?: string): ISink {
  // The agent sink reads its endpoint from the library's configuration when it is made.
  libraryConfiguration.agentEndpoint = endpoint;
  return new AgentSink(logGroupName ?? '', logStreamName);
}

export interface EmfPublisherOptions {
  metrics: Metrics;
  sink: ISink;
  namespace: string;
  /** The `App` dimension: the application's name (IPS_APP_NAME). */
  app: string;
  /** The `Worker` dimension: the task or host (IPS_WORKER_ID). */
  worker: string;
  /** The `ShardId` dimension, once known (a record processor learns it at initialize). */
  shard?: () => string | undefined;
  /** Properties every document carries (not dimensions): searchable in CloudWatch Logs Insights. */
  properties?: () => Record<string, unknown>;
  now?: () => number;
  /** Called when a publication fails; publishing never throws into the caller. */
  onError?: (error: unknown) => void;
}

interface Datum {
  name: string;
  labels: Labels;
  spec: MetricSpec;
  values: number[];
}

export class EmfPublisher {
  private readonly published = new Map<string, number>();
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> = Promise.resolve();
  private readonly now: () => number;

  constructor(private readonly options: EmfPublisherOptions) {
    this.now = options.now ?? Date.now;
  }

  /** Publishes every `intervalMs` until stop(). */
  start(intervalMs: number): void {
    this.timer = setInterval(() => void this.publish(), intervalMs);
    this.timer.unref();
  }

  /** Stops the timer and publishes what is left. */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.publish();
  }

  /** One publication; publications never overlap. */
  publish(): Promise<void> {
    this.running = this.running.then(() => this.publishOnce()).catch((error: unknown) => this.options.onError?.(error));
    return this.running;
  }

  private async publishOnce(): Promise<void> {
    const data = this.collect();
    const documents = new Map<string, { dimensions: Record<string, string>[]; data: Datum[] }>();
    for (const datum of data) {
      const dimensions = this.dimensionSets(datum);
      if (dimensions.length === 0) continue;
      const key = JSON.stringify(dimensions);
      const document = documents.get(key) ?? { dimensions, data: [] };
      document.data.push(datum);
      documents.set(key, document);
    }
    const timestamp = this.now();
    const properties = this.options.properties?.() ?? {};
    for (const { dimensions, data: metrics } of documents.values()) {
      const logger = new MetricsLogger(this.environment, MetricsContext.empty());
      logger.setNamespace(this.options.namespace);
      logger.setDimensions(dimensions, false);
      logger.setTimestamp(timestamp);
      logger.setProperty('Worker', this.options.worker);
      const shard = this.options.shard?.();
      if (shard) logger.setProperty('ShardId', shard);
      for (const [key, value] of Object.entries(properties)) logger.setProperty(key, value);
      for (const datum of metrics) for (const value of datum.values) logger.putMetric(datum.name, value, datum.spec.unit);
      await logger.flush();
    }
  }

  /** What each metric has to say for this interval. */
  private collect(): Datum[] {
    const { metrics } = this.options;
    const data: Datum[] = [];
    for (const [key, total] of Object.entries(metrics.snapshot())) {
      const { name, labels } = parseKey(key);
      const spec = specOf(name, 'counter');
      const delta = total - (this.published.get(key) ?? 0);
      this.published.set(key, total);
      data.push({ name, labels, spec, values: [delta] });
    }
    for (const gauge of metrics.readGauges()) data.push({ name: gauge.name, labels: gauge.labels, spec: specOf(gauge.name, 'gauge'), values: [gauge.value] });
    for (const samples of metrics.drainIntervals()) data.push({ name: samples.name, labels: samples.labels, spec: specOf(samples.name, 'distribution'), values: samples.values });
    return data;
  }

  /** [App], and [App, ShardId] or [App, Worker] as the metric's scopes say, each with the metric's labels. */
  private dimensionSets(datum: Datum): Record<string, string>[] {
    const labels = Object.fromEntries(Object.entries(datum.labels).map(([k, v]) => [dimensionName(k), dimensionValue(v)]));
    const shard = this.options.shard?.();
    const sets: Record<string, string>[] = [];
    for (const scope of datum.spec.scopes) {
      const extra = scopeDimension(scope, { shard, worker: this.options.worker });
      if (extra === undefined) continue; // per shard, but no shard yet
      sets.push({ App: dimensionValue(this.options.app), ...extra, ...labels });
    }
    return sets;
  }

  private readonly environment = async (): Promise<IEnvironment> => ({
    probe: () => Promise.resolve(true),
    getName: () => this.options.app,
    getType: () => 'iam-policy-stream',
    getLogGroupName: () => '',
    configureContext: () => undefined,
    getSink: () => this.options.sink,
  });
}

function scopeDimension(scope: MetricScope, at: { shard: string | undefined; worker: string }): Record<string, string> | undefined {
  if (scope === 'fleet') return {};
  if (scope === 'worker') return { Worker: dimensionValue(at.worker) };
  return at.shard ? { ShardId: dimensionValue(at.shard) } : undefined;
}

/** A metric not in METRIC_SPECS (a test's, a benchmark's) is published at fleet level. */
function specOf(name: string, kind: MetricSpec['kind']): MetricSpec {
  const spec = (METRIC_SPECS as Record<string, MetricSpec | undefined>)[name];
  if (spec) return spec;
  return { kind, unit: kind === 'counter' ? 'Count' : 'None', scopes: ['fleet'] };
}

/** CloudWatch dimension values: ASCII, not blank, at most 1,024 characters. */
function dimensionValue(value: string): string {
  const ascii = value.replace(/[^\x20-\x7e]/g, '?').slice(0, 1024);
  return ascii.trim() === '' ? '-' : ascii;
}

function dimensionName(name: string): string {
  const ascii = name
    .replace(/[^\x20-\x7e]/g, '_')
    .replace(/^:/, '_')
    .slice(0, 250);
  return ascii.trim() === '' ? 'label' : ascii;
}

/** The sink the configuration asks for; undefined for `off`. */
export function sinkFor(
  config: { appName: string; metricsSink: 'stderr' | 'agent' | 'off'; emfAgentEndpoint: string | undefined },
  stream: LineWriter = process.stderr,
  env: Record<string, string | undefined> = process.env,
): ISink | undefined {
  if (config.metricsSink === 'off') return undefined;
  if (config.metricsSink === 'agent') {
    // The agent writes the documents to this log group (and extracts the metrics from them).
    return agentSink(config.emfAgentEndpoint ?? DEFAULT_AGENT_ENDPOINT, env.AWS_EMF_LOG_GROUP_NAME || `${config.appName}-metrics`, env.AWS_EMF_LOG_STREAM_NAME);
  }
  return new StreamSink(stream);
}
