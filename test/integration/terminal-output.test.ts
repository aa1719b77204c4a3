// What a record holds reaches the operator's terminal only escaped. A dead
// letter, a shard's oldest record and a policy's desired tags carry bytes a
// producer chose; `ips dead-letters list/show`, `ips status` and `ips drift`
// print them. A raw ESC [2J would clear the operator's screen, ESC [31m
// recolour it, a C1 CSI (U+009B) does both on some terminals, and a bidi
// override (U+202E) makes a line read other than it is. The tool runs as
// operators run it: a separate process, configured by the environment, its
// stdout read as bytes; its --json must still give back the exact values.
import test from 'ava';
import { ALL_HASH_KEYS } from '../../src/contract/hash-key.js';
import type { ExecutionContext } from 'ava';
import { UntagPolicyCommand } from '@aws-sdk/client-iam';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { projectRoot } from '../../src/config/paths.js';
import { DynamoDbDeadLetterStore } from '../../src/deadletter/dead-letter-store.js';
import { reconcilerApplier } from '../../src/intake/applier.js';
import { ProgressReporter } from '../../src/intake/progress.js';
import { IamReconciler } from '../../src/iam/reconciler.js';
import { policyArn } from '../../src/iam/policies.js';
import { DedupCache } from '../../src/ledger/dedup-cache.js';
import { ledgerFromConfig } from '../../src/ledger/dynamodb-ledger.js';
import { Metrics } from '../../src/metrics/metrics.js';
import { createShardPipeline } from '../../src/pipeline/create.js';
import { LOCAL_ACCOUNT_ID } from '../../tools/local/stack.js';
import { useTestStack } from '../../tools/harness/stack.js';
import { MemoryDeadLetters } from '../support/fakes.js';
import { doc, silentLogger, streamRecords } from '../support/pipeline.js';

const stackOf = useTestStack(test, { shards: 1 });
const SHARD = 'shardId-000000000000';

// Erase the screen, recolour, set the window title, a C1 CSI, DEL, a bidi override and isolate, CR/LF/TAB.
const EVENT_ID = 'evt\u001b[2J\u001b[31mred';
const PARTITION_KEY = 'pk\u001b]0;owned\u0007\u202egnp.exe';
const POLICY_NAME = 'pol\u007f\u2066x\u2069';
const DETAIL = 'detail \u009b2J\r\n\tfake line';
const DATA = Buffer.from('{"eventId":"\u001b[2J\u001b[31m", \u009b1m bytes \u202e}');

/** `ips ...` as a separate process on the test stack: exit code, stdout and stderr as the terminal would get them. */
function ips(args: string[], settings: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string; bytes: Buffer }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['--import=tsx', join(projectRoot(), 'src', 'ops', 'cli.ts'), ...args],
      { env: { ...process.env, ...stackOf().stack.env, ...settings }, encoding: 'buffer', maxBuffer: 16 * 1024 * 1024, timeout: 120_000 },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === 'number' ? error.code : null) : 0;
        resolve({ code, stdout: stdout.toString('utf8'), stderr: stderr.toString('utf8'), bytes: stdout });
      },
    );
  });
}

/** Characters a terminal acts on instead of showing: C0 but line feed, DEL, C1, and the bidi controls. */
function rawControls(text: string): string[] {
  return [...text].filter((c) => c !== '\n' && /[\p{Cc}\p{Bidi_Control}]/u.test(c)).map((c) => `U+${c.codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')}`);
}

function assertClean(t: ExecutionContext, what: string, output: { stdout: string; stderr: string; bytes: Buffer }): void {
  t.deepEqual(rawControls(output.stdout), [], `${what}: no raw control character on stdout`);
  t.deepEqual(rawControls(output.stderr), [], `${what}: none on stderr`);
  t.false(output.bytes.includes(0x1b), `${what}: no ESC byte at all`);
}

test.serial("dead-letters list and show print a letter's eventId, partition key, policy, detail and bytes escaped; --json gives them back exactly", async (t) => {
  const { config, clients } = stackOf();
  const store = new DynamoDbDeadLetterStore(clients().dynamodb, config.deadLetterTable);
  await store.store({
    record: { shardId: SHARD, sequenceNumber: '100', subSequenceNumber: 0 },
    partitionKey: PARTITION_KEY,
    reason: 'invalid-json',
    detail: DETAIL,
    data: DATA,
    eventId: EVENT_ID,
    policyName: POLICY_NAME,
  });
  const id = `${SHARD}#100#0`;

  const list = await ips(['dead-letters', 'list']);
  t.is(list.code, 0, list.stderr);
  assertClean(t, 'list', list);
  t.true(list.stdout.includes('evt\\x1b[2J\\x1b[31mred'), `the eventId is shown, escaped:\n${list.stdout}`);
  t.true(list.stdout.includes('pol\\x7f\\u{2066}x\\u{2069}'), 'the policy name is shown, escaped');
  t.is(list.stdout.trimEnd().split('\n').length, 2, 'a header and one row: a record cannot add lines');

  const show = await ips(['dead-letters', 'show', id]);
  t.is(show.code, 0, show.stderr);
  assertClean(t, 'show', show);
  t.true(show.stdout.includes('pk\\x1b]0;owned\\x07\\u{202e}gnp.exe'), `the partition key is shown, escaped:\n${show.stdout}`);
  t.true(show.stdout.includes('detail \\x9b2J\\r\\n\\tfake line'), 'the detail is shown, escaped, on its own line');
  t.regex(show.stdout, /^text +\{"eventId":"\\x1b\[2J\\x1b\[31m", \\x9b1m bytes \\u\{202e\}\}$/m, 'the stored bytes are shown, escaped');

  for (const args of [
    ['dead-letters', 'list', '--json'],
    ['dead-letters', 'show', id, '--json'],
  ]) {
    const json = await ips(args);
    t.is(json.code, 0, json.stderr);
    assertClean(t, args.join(' '), json);
    const parsed = JSON.parse(json.stdout) as Record<string, unknown> | Record<string, unknown>[];
    const letter = Array.isArray(parsed) ? parsed[0]! : parsed;
    t.is(letter.eventId, EVENT_ID, 'JSON gives the exact eventId back');
    t.is(letter.policy, POLICY_NAME);
    if (!Array.isArray(parsed)) {
      t.is(letter.partitionKey, PARTITION_KEY);
      t.is(letter.detail, DETAIL);
      t.is(letter.text, DATA.toString('utf8'));
    }
  }
});

test.serial("status prints the policy of a shard's oldest unsettled record escaped", async (t) => {
  const { config, clients } = stackOf();
  const now = Date.now();
  const reporter = new ProgressReporter({
    dynamodb: clients().dynamodb,
    tableName: config.ledgerTable,
    worker: 'terminal-test',
    source: () => ({
      shardId: SHARD,
      state: 'ready',
      batch: { receivedAt: now, records: 3, settled: 1, oldestUnsettled: { sequenceNumber: '200', subSequenceNumber: 0, partitionKey: PARTITION_KEY, receivedAt: now } },
    }),
    metrics: new Metrics(),
    intervalMs: 60_000,
    logger: silentLogger,
  });
  await reporter.tick();
  reporter.stop();

  const status = await ips(['status']);
  t.is(status.code, 0, status.stderr);
  assertClean(t, 'status', status);
  t.true(status.stdout.includes('pk\\x1b]0;owned\\x07\\u{202e}gnp.exe'), `the partition key is shown, escaped:\n${status.stdout}`);

  const json = await ips(['status', '--json']);
  t.is(json.code, 0, json.stderr);
  assertClean(t, 'status --json', json);
  const report = JSON.parse(json.stdout) as { shards: { progress?: { batch?: { oldestUnsettled?: { partitionKey: string } } } }[] };
  t.is(report.shards[0]?.progress?.batch?.oldestUnsettled?.partitionKey, PARTITION_KEY, 'JSON gives the exact key back');
});

test.serial('drift prints a desired tag value from an event escaped', async (t) => {
  const { config, clients } = stackOf();
  const aws = clients();
  const metrics = new Metrics();
  const name = 'terminal-tags';
  const tagValue = 'a\u001b[2Jb\u202ec';
  const pipeline = createShardPipeline(
    {
      config: { ...config, retryBaseMs: 5, retryBackoffCapMs: 200 },
      logger: silentLogger,
      metrics,
      ledger: ledgerFromConfig(aws.dynamodb, config),
      cache: new DedupCache(100),
      applier: reconcilerApplier(new IamReconciler({ iam: aws.iam, sts: aws.sts, config, metrics, logger: silentLogger })),
      deadLetters: new MemoryDeadLetters(),
    },
    { shardId: SHARD, lineage: [], epoch: 0, owner: 'terminal-test-worker', hashKeyRange: ALL_HASH_KEYS },
  );
  const body = { specVersion: '1', eventId: 'terminal-e1', type: 'policy.upserted', policy: { name }, document: doc(name), tags: { team: tagValue } };
  const [settled] = await pipeline.processBatch(streamRecords([{ partitionKey: name, data: Buffer.from(JSON.stringify(body)) }]));
  t.is(settled?.outcome, 'created', settled?.reason);
  // Behind the processor's back: the tag is removed, so the audit names the desired value.
  await aws.iam.send(new UntagPolicyCommand({ PolicyArn: policyArn({ account: LOCAL_ACCOUNT_ID }, config.managedPathPrefix, name), TagKeys: ['team'] }));

  const drift = await ips(['drift'], { IPS_IAM_VISIBILITY_WINDOW_MS: '0' });
  t.is(drift.code, 1, `${drift.stderr}\n${drift.stdout}`);
  assertClean(t, 'drift', drift);
  t.true(drift.stdout.includes('a\\x1b[2Jb\\u{202e}c'), `the tag value is shown, escaped:\n${drift.stdout}`);

  const json = await ips(['drift', '--json'], { IPS_IAM_VISIBILITY_WINDOW_MS: '0' });
  t.is(json.code, 1, json.stderr);
  assertClean(t, 'drift --json', json);
  t.true(
    (JSON.parse(json.stdout) as { drift: { details: string[] }[] }).drift.some((d) => d.details.some((line) => line.includes(tagValue))),
    'JSON gives the exact value back',
  );
});
