// The process's metrics: counters, gauges and distributions, keyed by name
// and labels. Each record-processor child logs a snapshot periodically and
// at shutdown (one `metrics` log line) and publishes them to CloudWatch in
// the Embedded Metric Format (metrics/emf.ts); tests read them directly.
//
// Every metric name is in METRIC, with what it counts and how CloudWatch
// gets it (METRIC_SPECS): one place to look up a name for a dashboard or an
// alarm (docs/operations.md, "Metrics").
import type { AwsCall, AwsCallObserver } from '../aws/call-observer.js';

export const METRIC = {
  /** Records settled, by `outcome` (README, "Outcome of every record"). */
  outcomes: 'outcomes',
  /** Records a shadow worker planned (IPS_MODE=shadow), by the `action` the live processor would take. */
  planned: 'planned',
  /** Rejected records, by `reason` code. */
  rejections: 'rejections',
  /** Dead letters written to the table, by `reason` (a redelivered letter already there is not counted again). */
  deadLettersWritten: 'dead_letters_written',
  /** AWS calls, by `service`, `operation` and `outcome` (`ok` or the error's name). */
  awsCalls: 'aws_calls',
  /** Duplicates and stale events answered without IAM, by `source` (cache, ledger) and `verdict`. */
  dedupHits: 'dedup_hits',
  /** Claims whose completion found them taken over. */
  claimsLost: 'claims_lost',
  /** Expired claims of another owner taken over. */
  claimsTakenOver: 'claims_taken_over',
  /** Claims refused, by `because`. */
  claimsRefused: 'claims_refused',
  /** Rounds of a policy's unit retried after a transient fault, by `reason`. */
  transientRetries: 'transient_retries',
  /** Programming errors that stopped a shard before a record, by `error`. */
  pipelineBugs: 'pipeline_bugs',
  /** eventIds reused for another payload, by `source` (batch, ledger). */
  eventIdConflicts: 'event_id_conflicts',
  /** IAM steps, by `outcome`. */
  iamOutcomes: 'iam_outcomes',
  /** STS AssumeRole of a target account's role that failed, by `account` and STS's error `code` (AccessDenied: the role's trust policy does not name the worker). */
  assumeRoleFailures: 'assume_role_failures',
  /** IAM circuit breaker changes, by the `state` entered. */
  iamBreaker: 'iam_breaker',
  /** Gauge: records parked (docs/design.md, "Parking") in the parks a shard redrives, by `account` (`own`: the worker's own). */
  parkedRecords: 'parked_records',
  /** Gauge: the IAM circuit breaker's state, 0 closed, 1 half-open, 2 open. */
  iamBreakerState: 'iam_breaker_state',
  /** Re-verifications run, by `converged` (yes, nothing-to-converge). */
  verifications: 'verifications',
  /** Re-verification marks added after a claim was lost or taken over, by `why`. */
  verificationsRequested: 'verifications_requested',
  /** Re-verification marks that could not be written. */
  verificationRequestsFailed: 'verification_requests_failed',
  /** Distribution: a batch from its delivery to its answer (every record settled, checkpointed), ms. */
  batchDurationMs: 'batch_duration_ms',
  /** Distribution: records per batch. */
  batchRecords: 'batch_records',
  /** Distribution: a record's age when it got its outcome (from its arrival in the stream), ms. */
  recordAgeMs: 'record_age_ms',
  /** Gauge: the age of the oldest record of the shard without an outcome yet, ms (0 when none waits). */
  oldestUnsettledAgeMs: 'oldest_unsettled_age_ms',
  /** Gauge: the child's resident memory, bytes. */
  rssBytes: 'rss_bytes',
  /** Action patterns of applied documents that no AWS service publishes (IAM accepts them; they grant nothing), by `action`. */
  unknownActions: 'unknown_actions',
  /** Shared IAM limiter (IPS_IAM_RETRY_MODE=shared): times a record processor gated its own calls instead, by `reason` (holder-silent, private-dir-refused). */
  iamLimiterFallbacks: 'iam_limiter_fallbacks',
  /** Shared IAM limiter: connections to the host's gate hung up on for want of the secret (a local process that is not ours). */
  iamLimiterPeersRefused: 'iam_limiter_peers_refused',
  /** Gauge: the DynamoDB client's clock offset (AWS's clock minus this host's, from AWS's Date headers), ms. */
  clockOffsetMs: 'clock_offset_ms',
  /** Gauge: policies a drift audit (`ips drift`) found drifted, published once per audit when a metrics sink is set. */
  driftFound: 'drift_found',
  /**
   * Gauge: 1 when a drift audit did not judge everything (it could not run, or
   * some policies could not be read), 0 when it did; published once per audit
   * beside drift_found.
   */
  driftAuditFailed: 'drift_audit_failed',
} as const;

export type MetricName = (typeof METRIC)[keyof typeof METRIC];

export type MetricKind = 'counter' | 'gauge' | 'distribution';

/** Which dimension sets a metric is published under, beside its own labels (metrics/emf.ts). */
export type MetricScope = 'fleet' | 'shard' | 'worker';

export interface MetricSpec {
  kind: MetricKind;
  unit: 'Count' | 'Milliseconds' | 'Bytes' | 'None';
  /** Always [`App`]; `shard` adds [`App`, `ShardId`], `worker` adds [`App`, `Worker`]. */
  scopes: MetricScope[];
}

const counter = (...scopes: MetricScope[]): MetricSpec => ({ kind: 'counter', unit: 'Count', scopes: ['fleet', ...scopes] });

export const METRIC_SPECS: Record<MetricName, MetricSpec> = {
  outcomes: counter('shard'),
  rejections: counter('shard'),
  planned: counter('shard'),
  dead_letters_written: counter('shard'),
  aws_calls: counter('worker'),
  dedup_hits: counter(),
  claims_lost: counter(),
  claims_taken_over: counter(),
  claims_refused: counter(),
  transient_retries: counter('shard'),
  pipeline_bugs: counter('shard'),
  event_id_conflicts: counter(),
  iam_outcomes: counter(),
  iam_breaker: counter('worker'),
  assume_role_failures: counter('worker'),
  iam_breaker_state: { kind: 'gauge', unit: 'None', scopes: ['fleet', 'worker'] },
  parked_records: { kind: 'gauge', unit: 'Count', scopes: ['fleet', 'shard'] },
  verifications: counter(),
  verifications_requested: counter(),
  verification_requests_failed: counter(),
  batch_duration_ms: { kind: 'distribution', unit: 'Milliseconds', scopes: ['fleet', 'shard'] },
  batch_records: { kind: 'distribution', unit: 'Count', scopes: ['fleet', 'shard'] },
  record_age_ms: { kind: 'distribution', unit: 'Milliseconds', scopes: ['fleet', 'shard'] },
  oldest_unsettled_age_ms: { kind: 'gauge', unit: 'Milliseconds', scopes: ['fleet', 'shard'] },
  rss_bytes: { kind: 'gauge', unit: 'Bytes', scopes: ['fleet', 'worker'] },
  drift_found: { kind: 'gauge', unit: 'Count', scopes: ['fleet'] },
  unknown_actions: counter(),
  drift_audit_failed: { kind: 'gauge', unit: 'Count', scopes: ['fleet'] },
  iam_limiter_fallbacks: counter('worker'),
  iam_limiter_peers_refused: counter('worker'),
  clock_offset_ms: { kind: 'gauge', unit: 'Milliseconds', scopes: ['fleet', 'worker'] },
};

/** Values of a distribution kept between two publications: at most this many, drawn uniformly, plus the largest. */
export const SAMPLES_PER_INTERVAL = 100;

export type Labels = Record<string, string>;

/** A distribution since the process started. */
export interface DistributionSummary {
  count: number;
  sum: number;
  min: number;
  max: number;
}

/** What a distribution saw since the last publication: its count, sum, extremes and a uniform sample of its values. */
export interface IntervalSamples extends DistributionSummary {
  name: string;
  labels: Labels;
  values: number[];
}

class Distribution {
  readonly total: DistributionSummary = { count: 0, sum: 0, min: Infinity, max: -Infinity };
  interval: DistributionSummary & { values: number[] } = Distribution.emptyInterval();

  constructor(private readonly random: () => number) {}

  static emptyInterval() {
    return { count: 0, sum: 0, min: Infinity, max: -Infinity, values: [] as number[] };
  }

  add(value: number): void {
    for (const summary of [this.total, this.interval]) {
      summary.count++;
      summary.sum += value;
      summary.min = Math.min(summary.min, value);
      summary.max = Math.max(summary.max, value);
    }
    // Reservoir sampling (algorithm R): every value of the interval has the same chance to be kept.
    const { interval } = this;
    if (interval.values.length < SAMPLES_PER_INTERVAL) interval.values.push(value);
    else {
      const slot = Math.floor(this.random() * interval.count);
      if (slot < SAMPLES_PER_INTERVAL) interval.values[slot] = value;
    }
  }
}

export class Metrics {
  private readonly counters = new Map<string, number>();
  private readonly gauges = new Map<string, number | (() => number | undefined)>();
  private readonly distributions = new Map<string, Distribution>();

  constructor(private readonly random: () => number = Math.random) {}

  increment(name: string, labels: Labels = {}, by = 1): void {
    const key = metricKey(name, labels);
    this.counters.set(key, (this.counters.get(key) ?? 0) + by);
  }

  get(name: string, labels: Labels = {}): number {
    return this.counters.get(metricKey(name, labels)) ?? 0;
  }

  /** Sum over every label set of a metric, e.g. all DynamoDB calls whatever the operation. */
  total(name: string, filter: Labels = {}): number {
    let sum = 0;
    for (const [key, value] of this.counters) {
      const parsed = parseKey(key);
      if (parsed.name !== name) continue;
      if (Object.entries(filter).every(([k, v]) => parsed.labels[k] === v)) sum += value;
    }
    return sum;
  }

  /** The counters, by key (`name{label=value,...}`). */
  snapshot(): Record<string, number> {
    return Object.fromEntries([...this.counters].sort(([a], [b]) => a.localeCompare(b)));
  }

  /** Sets a gauge to a value, or to a function read each time the gauge is (undefined: no reading now). */
  gauge(name: string, value: number | (() => number | undefined), labels: Labels = {}): void {
    this.gauges.set(metricKey(name, labels), value);
  }

  gaugeValue(name: string, labels: Labels = {}): number | undefined {
    const value = this.gauges.get(metricKey(name, labels));
    return typeof value === 'function' ? value() : value;
  }

  /** Adds a value to a distribution (durations, ages, sizes). */
  observe(name: string, value: number, labels: Labels = {}): void {
    if (!Number.isFinite(value)) return;
    const key = metricKey(name, labels);
    let distribution = this.distributions.get(key);
    if (!distribution) this.distributions.set(key, (distribution = new Distribution(this.random)));
    distribution.add(value);
  }

  /** A distribution since the process started. */
  distribution(name: string, labels: Labels = {}): DistributionSummary | undefined {
    const found = this.distributions.get(metricKey(name, labels));
    return found && found.total.count > 0 ? { ...found.total } : undefined;
  }

  /** Every gauge's reading now, by name and labels. */
  readGauges(): { name: string; labels: Labels; value: number }[] {
    const readings: { name: string; labels: Labels; value: number }[] = [];
    for (const [key, value] of this.gauges) {
      let reading: number | undefined;
      try {
        reading = typeof value === 'function' ? value() : value;
      } catch {
        reading = undefined; // a gauge that cannot be read now is left out, never fatal
      }
      if (reading !== undefined && Number.isFinite(reading)) readings.push({ ...parseKey(key), value: reading });
    }
    return readings;
  }

  /**
   * What each distribution saw since the previous call, and starts a new
   * interval. The largest value is always among the samples, so a maximum
   * read from CloudWatch is the true one.
   */
  drainIntervals(): IntervalSamples[] {
    const drained: IntervalSamples[] = [];
    for (const [key, distribution] of this.distributions) {
      const { interval } = distribution;
      if (interval.count === 0) continue;
      const values = [...interval.values];
      if (!values.includes(interval.max)) values[values.length - 1] = interval.max;
      drained.push({ ...parseKey(key), count: interval.count, sum: interval.sum, min: interval.min, max: interval.max, values });
      distribution.interval = Distribution.emptyInterval();
    }
    return drained;
  }

  /** Counters, gauges and distributions as one object, for the `metrics` log line. */
  summary(): { counters: Record<string, number>; gauges: Record<string, number>; distributions: Record<string, DistributionSummary> } {
    const gauges = Object.fromEntries(this.readGauges().map((g) => [metricKey(g.name, g.labels), g.value]));
    const distributions = Object.fromEntries([...this.distributions].filter(([, d]) => d.total.count > 0).map(([key, d]) => [key, { ...d.total }]));
    return { counters: this.snapshot(), gauges, distributions };
  }

  /** An AWS call observer that counts calls by service, operation and outcome. */
  awsCallCounter(): AwsCallObserver {
    return {
      after: (call: AwsCall) => this.increment(METRIC.awsCalls, { service: call.service, operation: call.operation, outcome: call.outcome }),
    };
  }
}

export function metricKey(name: string, labels: Labels): string {
  const parts = Object.keys(labels)
    .sort()
    .map((k) => `${k}=${labels[k]}`);
  return parts.length === 0 ? name : `${name}{${parts.join(',')}}`;
}

export function parseKey(key: string): { name: string; labels: Labels } {
  const open = key.indexOf('{');
  if (open < 0) return { name: key, labels: {} };
  const labels: Labels = {};
  for (const pair of key.slice(open + 1, -1).split(',')) {
    const eq = pair.indexOf('=');
    labels[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  return { name: key.slice(0, open), labels };
}
