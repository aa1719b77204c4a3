// The operator tool's errors against a real local stack: each names the
// setting or the input at fault and what to do, instead of AWS's bare words.
// The tool runs as operators run it, a separate process configured by the
// environment.
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { projectRoot } from '../../src/config/paths.js';
import { upsertedEvent } from '../../src/contract/wire-event.js';
import { DynamoDbDeadLetterStore } from '../../src/deadletter/dead-letter-store.js';
import { eventRecord, putRecords } from '../../src/ops/producer.js';
import { useTestStack } from '../../tools/harness/stack.js';

const stackOf = useTestStack(test, { shards: 1 });
const SHARD = 'shardId-000000000000';

function ips(args: string[], settings: Record<string, string> = {}) {
  const env = { ...process.env, ...stackOf().stack.env, ...settings };
  delete env.npm_lifecycle_event;
  const result = spawnSync(process.execPath, ['--import=tsx', join(projectRoot(), 'src', 'ops', 'cli.ts'), ...args], { env, encoding: 'utf8', timeout: 60_000 });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

test('another application name: the missing tables are named with the variable that chose them', (t) => {
  const result = ips(['status'], { IPS_APP_NAME: 'other-app' });
  t.is(result.code, 1);
  t.regex(result.stderr, /ResourceNotFoundException/);
  t.regex(result.stderr, /hint: .*the lease table other-app does not exist \(from IPS_APP_NAME=other-app/);
  t.regex(result.stderr, /the ledger table other-app-ledger does not exist/);
  t.notRegex(result.stderr, /the stream .* does not exist/, 'the stream exists: not blamed');
});

test('produce into a stream that does not exist: names the stream and its variable, and leaves --out as it was', (t) => {
  const out = join(mkdtempSync(join(tmpdir(), 'ips-out-')), 'produced.jsonl');
  writeFileSync(out, '{"an":"earlier log"}\n');
  const result = ips(['produce', '--events', '3', '--out', out], { IPS_STREAM_NAME: 'no-such-stream' });
  t.is(result.code, 1);
  t.regex(result.stderr, /the stream no-such-stream does not exist \(IPS_STREAM_NAME=no-such-stream\)/);
  t.regex(result.stderr, /Nothing was put; .* is left as it was/);
  t.is(readFileSync(out, 'utf8'), '{"an":"earlier log"}\n');
});

test('a bad stream name is refused at start-up with its variable named', (t) => {
  const result = ips(['status'], { IPS_STREAM_NAME: 'bad name!' });
  t.is(result.code, 2);
  t.regex(result.stderr, /configuration: IPS_STREAM_NAME must be a Kinesis stream name/);
});

test.serial('dead letters: the short id is answered with the full one; an unknown --reason is flagged; a redrive whose cause is unchanged warns', async (t) => {
  const { config, clients } = stackOf();
  const store = new DynamoDbDeadLetterStore(clients().dynamodb, config.deadLetterTable);
  const admin = eventRecord(upsertedEvent({ eventId: 'admin-1', name: 'too-broad', document: { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: '*', Resource: '*' }] } }));
  await store.store({
    record: { shardId: SHARD, sequenceNumber: '4242', subSequenceNumber: 0 },
    partitionKey: 'too-broad',
    reason: 'admin-grant-refused',
    detail: 'grants *',
    data: admin.data,
    eventId: 'admin-1',
    policyName: 'too-broad',
  });

  const short = ips(['dead-letters', 'show', `${SHARD}#4242`]);
  t.is(short.code, 2);
  t.regex(short.stderr, new RegExp(`an id ends in #<subSequenceNumber>; did you mean '${SHARD}#4242#0'\\?`));
  t.is(ips(['dead-letters', 'show', `${SHARD}#4242#0`]).code, 0);

  const nonsense = ips(['dead-letters', 'purge', '--all', '--reason', 'nonsense', '--yes']);
  t.is(nonsense.code, 2);
  t.regex(nonsense.stderr, /unknown reason "nonsense"/);
  const typo = ips(['dead-letters', 'list', '--reason', 'admin-grant-refsed']);
  t.is(typo.code, 2);
  t.regex(typo.stderr, /did you mean admin-grant-refused\?/);
  t.is((await store.get(`${SHARD}#4242#0`))?.status, 'open', 'nothing purged');

  // The guardrail is as it was when the letter was stored: the redrive would make a new letter.
  const same = ips(['dead-letters', 'redrive', `${SHARD}#4242#0`, '--yes']);
  t.regex(same.stderr, /warning: shardId-000000000000#4242#0 would be refused again \(admin-grant-refused: /);
  // Under a configuration that allows it, no warning.
  await store.store({
    record: { shardId: SHARD, sequenceNumber: '4243', subSequenceNumber: 0 },
    partitionKey: 'too-broad',
    reason: 'admin-grant-refused',
    detail: 'grants *',
    data: admin.data,
    eventId: 'admin-1',
    policyName: 'too-broad',
  });
  const changed = ips(['dead-letters', 'redrive', `${SHARD}#4243#0`, '--yes'], { IPS_GUARDRAIL: 'off' });
  t.is(changed.code, 0);
  t.notRegex(changed.stderr, /would be refused again/);
});

test.serial('replay --shard with a sequence number no record carries is refused, naming the next record', async (t) => {
  const { config, clients } = stackOf();
  await putRecords(clients().kinesis, config.streamName, [eventRecord(upsertedEvent({ eventId: 'r-1', name: 'replayed', document: { Version: '2012-10-17', Statement: [] } }))]);
  const result = ips(['replay', '--shard', `${SHARD}=123`, '--yes']);
  t.is(result.code, 2);
  t.regex(result.stderr, new RegExp(`${SHARD} holds no record 123 .*; the next record is \\d+`));
  const unknown = ips(['replay', '--shard', 'shardId-000000000009=123', '--yes']);
  t.is(unknown.code, 2);
  t.regex(unknown.stderr, /has no shard shardId-000000000009 \(it has shardId-000000000000\)/);
});
