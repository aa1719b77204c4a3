// What the shared IAM limiter tells a record processor becomes a log line and
// a metric each: a fallback to the process's own gate (the holder stopped
// answering, or the private folder is not safe), a re-join, a stranger hung up
// on. Nothing about the host's shared rate limit fails silently.
import type { LimiterEvent } from '../aws/iam-rate/host-limiter.js';
import type { Logger } from '../log/logger.js';
import type { Metrics } from '../metrics/metrics.js';
import { METRIC } from '../metrics/metrics.js';

export function limiterNews(metrics: Metrics, logger: Logger): (event: LimiterEvent) => void {
  return (event) => {
    switch (event.kind) {
      case 'fallback':
        metrics.increment(METRIC.iamLimiterFallbacks, { reason: event.reason });
        logger.warn(
          { reason: event.reason, detail: event.detail },
          'shared IAM rate limit unavailable: this process gates its own IAM calls (adaptive, on its own throttling) and tries to re-join later',
        );
        return;
      case 'rejoined':
        logger.info('shared IAM rate limit re-joined');
        return;
      case 'peer-refused':
        metrics.increment(METRIC.iamLimiterPeersRefused);
        logger.warn('a local process without the secret connected to the shared IAM rate limit: hung up on');
        return;
    }
  };
}
