// Counters keyed by name and labels. Each shard child logs a snapshot
// periodically and at shutdown (one `metrics` log line), which log-based
// metric filters turn into dashboards; tests read the counters directly.
import type { AwsCall, AwsCallObserver } from '../aws/call-observer.js';

export class Metrics {
  private readonly counters = new Map<string, number>();

  increment(name: string, labels: Record<string, string> = {}, by = 1): void {
    const key = metricKey(name, labels);
    this.counters.set(key, (this.counters.get(key) ?? 0) + by);
  }

  get(name: string, labels: Record<string, string> = {}): number {
    return this.counters.get(metricKey(name, labels)) ?? 0;
  }

  /** Sum over every label set of a metric, e.g. all DynamoDB calls whatever the operation. */
  total(name: string, filter: Record<string, string> = {}): number {
    let sum = 0;
    for (const [key, value] of this.counters) {
      const parsed = parseKey(key);
      if (parsed.name !== name) continue;
      if (Object.entries(filter).every(([k, v]) => parsed.labels[k] === v)) sum += value;
    }
    return sum;
  }

  snapshot(): Record<string, number> {
    return Object.fromEntries([...this.counters].sort(([a], [b]) => a.localeCompare(b)));
  }

  /** An AWS call observer that counts calls by service, operation and outcome. */
  awsCallCounter(): AwsCallObserver {
    return {
      after: (call: AwsCall) =>
        this.increment('aws_calls', { service: call.service, operation: call.operation, outcome: call.outcome }),
    };
  }
}

function metricKey(name: string, labels: Record<string, string>): string {
  const parts = Object.keys(labels)
    .sort()
    .map((k) => `${k}=${labels[k]}`);
  return parts.length === 0 ? name : `${name}{${parts.join(',')}}`;
}

function parseKey(key: string): { name: string; labels: Record<string, string> } {
  const open = key.indexOf('{');
  if (open < 0) return { name: key, labels: {} };
  const labels: Record<string, string> = {};
  for (const pair of key.slice(open + 1, -1).split(',')) {
    const eq = pair.indexOf('=');
    labels[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  return { name: key.slice(0, open), labels };
}
