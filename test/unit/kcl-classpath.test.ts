// The daemon's classpath (kcl/lib, from kcl/pom.xml) must deaggregate what
// real producers write: KPL aggregates. The KCL's KPL message classes refuse a
// protobuf runtime older than the one they were generated with, and the daemon
// then exits on the first aggregated record. These tests run the KCL's own
// deaggregation (test/support/KclDeaggregate.java) on kcl/lib over aggregates
// made by aws-kinesis-agg, so a runtime older than the generated code fails
// here, not in production. KCL_LIB=<folder> points them at another classpath.
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import agg from 'aws-kinesis-agg';
import { projectRoot } from '../../src/local/paths.js';

const lib = process.env.KCL_LIB ?? join(projectRoot(), 'kcl', 'lib');
const program = join(projectRoot(), 'test', 'support', 'KclDeaggregate.java');

interface UserRecord {
  partitionKey: string;
  data: Buffer;
}

function aggregateOf(records: UserRecord[]): Buffer {
  const aggregator = new agg.RecordAggregator();
  for (const record of records) aggregator.addUserRecord({ partitionKey: record.partitionKey, data: record.data });
  const encoded = aggregator.build();
  if (!encoded) throw new Error('nothing was aggregated');
  return encoded.data;
}

/** Runs the KCL's deaggregation over one Kinesis record; the user records it hands on. */
function kclDeaggregate(record: Buffer, range?: [bigint, bigint]): { subSequenceNumber: number; partitionKey: string; data: Buffer }[] {
  if (!existsSync(lib) || !readdirSync(lib).some((name) => name.startsWith('amazon-kinesis-client-'))) {
    throw new Error(`no daemon jars in ${lib}: run npm run setup`);
  }
  const dir = mkdtempSync(join(tmpdir(), 'ips-kcl-'));
  try {
    const file = join(dir, 'record.bin');
    writeFileSync(file, record);
    const args = ['-Dlogback.configurationFile=' + join(projectRoot(), 'kcl', 'logback.xml'), '-cp', `${lib}/*`, program, file, ...(range ? range.map(String) : [])];
    const result = spawnSync('java', args, { encoding: 'utf8', timeout: 120_000 });
    if (result.status !== 0) throw new Error(`the KCL could not deaggregate (exit ${result.status}):\n${result.stderr}${result.error ? String(result.error) : ''}`);
    return result.stdout
      .split('\n')
      .filter((line) => line.startsWith('user '))
      .map((line) => {
        const [, sub, key, data] = line.split(' ');
        return { subSequenceNumber: Number(sub), partitionKey: Buffer.from(key!, 'base64').toString('utf8'), data: Buffer.from(data ?? '', 'base64') };
      });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const md5HashKey = (partitionKey: string) => BigInt(`0x${createHash('md5').update(partitionKey, 'utf8').digest('hex')}`);

test('the daemon classpath deaggregates a KPL aggregate into its user records, in order', (t) => {
  const records: UserRecord[] = [
    { partitionKey: 'reports-read', data: Buffer.from(JSON.stringify({ specVersion: '1', eventId: 'e1', type: 'policy.deleted', policy: { name: 'reports-read' } })) },
    { partitionKey: 'reports-read', data: Buffer.from('{"not":"a contract event"}') },
    { partitionKey: 'billing-admin', data: Buffer.from([0xff, 0xfe, 0x00, 0x01]) },
    { partitionKey: 'politique-é', data: Buffer.from('données ✓', 'utf8') },
  ];
  const users = kclDeaggregate(aggregateOf(records));
  t.deepEqual(
    users.map((user) => ({ partitionKey: user.partitionKey, data: user.data.toString('base64') })),
    records.map((record) => ({ partitionKey: record.partitionKey, data: record.data.toString('base64') })),
  );
  t.deepEqual(users.map((user) => user.subSequenceNumber), [0, 1, 2, 3]);
});

// The KCL checks each user record's hash key (the MD5 of its partition key)
// against the shard's range, and one record outside it makes the KCL drop the
// whole aggregate, records inside the range included. Hence a producer
// aggregates only user records bound for the same shard.
test('the KCL hands on an aggregate whose hash keys lie in the shard range, and drops all of one that strays', (t) => {
  const half = 2n ** 127n;
  const records: UserRecord[] = Array.from({ length: 12 }, (_, i) => ({ partitionKey: `policy-${i}`, data: Buffer.from(`event ${i}`) }));
  const lower = records.filter((record) => md5HashKey(record.partitionKey) < half);
  t.true(lower.length > 1 && lower.length < records.length, 'the sample spans both halves');
  const range: [bigint, bigint] = [0n, half - 1n];
  t.deepEqual(
    kclDeaggregate(aggregateOf(lower), range).map((user) => user.partitionKey),
    lower.map((record) => record.partitionKey),
    'every user record of a one-shard aggregate is handed on',
  );
  t.deepEqual(kclDeaggregate(aggregateOf(records), range), [], 'an aggregate with one stray user record is dropped whole');
});
