// Faults that are not bad input: a programming error must not be retried in
// silence forever, and a shard whose start-up fails must try again.
import test from 'ava';
import { setTimeout as sleep } from 'node:timers/promises';
import pino from 'pino';
import { PolicyRecordProcessor } from '../../src/intake/record-processor.js';
import type { ShardRuntime } from '../../src/intake/record-processor.js';
import { Metrics } from '../../src/metrics/metrics.js';
import { harness } from '../support/pipeline.js';
import { StoppedError } from '../../src/faults/errors.js';
import { BUG_ATTEMPTS, retryUntilSettled } from '../../src/faults/retry.js';

/** A pino logger that keeps its lines. */
function capturingLogger() {
  const lines: { level: number; msg: string }[] = [];
  const logger = pino({ level: 'trace' }, { write: (line: string) => void lines.push(JSON.parse(line) as { level: number; msg: string }) });
  return { logger, lines };
}

test('a programming error is retried a bounded number of times, then logged as fatal and counted; the step never settles', async (t) => {
  const { logger, lines } = capturingLogger();
  const metrics = new Metrics();
  const stop = new AbortController();
  let calls = 0;
  const run = retryUntilSettled(
    async () => {
      calls++;
      throw new TypeError("Cannot read properties of undefined (reading 'document')");
    },
    { baseMs: 1, capMs: 2, logger, metrics, what: { policy: 'p' }, signal: stop.signal },
  );
  await sleep(300);
  t.is(calls, BUG_ATTEMPTS, 'no more attempts after the bound');
  t.is(metrics.get('pipeline_bugs', { error: 'TypeError' }), 1);
  t.is(lines.filter((line) => line.level === 60).length, 1, 'one fatal line');
  stop.abort();
  await t.throwsAsync(run, { instanceOf: StoppedError });
});

test('a transient fault is still retried until it passes', async (t) => {
  const { logger } = capturingLogger();
  let calls = 0;
  const result = await retryUntilSettled(
    async () => {
      if (++calls < BUG_ATTEMPTS + 3) throw Object.assign(new Error('Rate exceeded'), { name: 'ThrottlingException' });
      return 'settled';
    },
    { baseMs: 1, capMs: 2, logger, metrics: new Metrics(), what: {} },
  );
  t.is(result, 'settled');
  t.is(calls, BUG_ATTEMPTS + 3);
});

test('a shard whose start-up fails is started again with backoff, then initialized', async (t) => {
  const { logger, lines } = capturingLogger();
  let attempts = 0;
  const h = harness();
  const processor = new PolicyRecordProcessor({
    logger,
    progressCheckpointMs: 10_000,
    checkpointAttempts: 5,
    startShard: async (): Promise<ShardRuntime> => {
      if (++attempts < 3) throw new Error('DynamoDB unreachable');
      return { pipeline: h.pipeline };
    },
  });
  const initialized = new Promise<void>((resolve) => processor.initialize({ shardId: 'shardId-000000000000' }, resolve));
  const outcome = await Promise.race([initialized.then(() => 'initialized'), sleep(10_000).then(() => 'stalled')]);
  processor.stop();
  t.is(outcome, 'initialized');
  t.is(attempts, 3);
  t.is(lines.filter((line) => line.msg === 'shard start-up failed; retrying').length, 2);
});
