// Baseline (a): the straightforward record processor a team would write first,
// the seeds' Lambda-style approach. One record at a time, in order:
//
//   1. idempotency: GetItem on the eventId in its own DynamoDB table; if
//      present, `duplicate`; else a conditional PutItem (attribute_not_exists)
//      records it (a lost race is a `duplicate` too);
//   2. IAM: GetPolicy; absent -> CreatePolicy; present -> ListPolicyVersions,
//      DeletePolicyVersion of the oldest non-default one when 5 exist, then
//      CreatePolicyVersion(SetAsDefault). A delete lists the versions, deletes
//      the non-default ones, then DeletePolicy.
//   3. after the whole batch, checkpoint its last record.
//
// No cache, no coalescing, no concurrency, no document comparison. It is a
// measuring stick, not a product: it shares the real processor's AWS clients,
// logger and call counting so the figures compare.
//
// Run by the MultiLangDaemon as: node --import tsx <root>/bench/baselines/sequential.ts
import { setTimeout as sleep } from 'node:timers/promises';
import kcl from 'aws-kcl';
import { ConditionalCheckFailedException, GetItemCommand, PutItemCommand } from '@aws-sdk/client-dynamodb';
import {
  CreatePolicyCommand,
  CreatePolicyVersionCommand,
  DeletePolicyCommand,
  DeletePolicyVersionCommand,
  GetPolicyCommand,
  ListPolicyVersionsCommand,
  NoSuchEntityException,
} from '@aws-sdk/client-iam';
import { GetCallerIdentityCommand } from '@aws-sdk/client-sts';
import { createAwsClients } from '../../src/aws/clients.js';
import { ensureTable } from '../../src/ops/provision.js';
import type { BatchRecord } from './common.js';
import { baselineProcess, checkpointAt, reportOutcome, toBatchRecords } from './common.js';

const child = baselineProcess('sequential-baseline');
const { config, logger, metrics } = child;
const clients = createAwsClients(config, { observers: [metrics.awsCallCounter()] });
const table = process.env.BENCH_IDEMPOTENCY_TABLE || `${config.appName}-seq-idempotency`;
const PERMANENT = new Set(['MalformedPolicyDocumentException', 'MalformedPolicyDocument', 'LimitExceededException', 'InvalidInputException']);

let shardId = 'unknown';
let accountId = '';
let lastProcessed: string | undefined;

interface Event {
  eventId: string;
  type: 'policy.upserted' | 'policy.deleted';
  name: string;
  path: string;
  document?: unknown;
  description?: string;
  tags: Record<string, string>;
}

function parse(data: Buffer): Event | undefined {
  try {
    const raw = JSON.parse(data.toString('utf8')) as Record<string, any>;
    if (raw.specVersion !== '1' || typeof raw.eventId !== 'string' || typeof raw.policy?.name !== 'string') return undefined;
    if (raw.type !== 'policy.upserted' && raw.type !== 'policy.deleted') return undefined;
    if (raw.type === 'policy.upserted' && (typeof raw.document !== 'object' || raw.document === null)) return undefined;
    return {
      eventId: raw.eventId,
      type: raw.type,
      name: raw.policy.name,
      path: typeof raw.policy.path === 'string' ? raw.policy.path : config.managedPathPrefix,
      document: raw.document,
      ...(typeof raw.description === 'string' ? { description: raw.description } : {}),
      tags: typeof raw.tags === 'object' && raw.tags !== null ? raw.tags : {},
    };
  } catch {
    return undefined;
  }
}

async function alreadyApplied(eventId: string): Promise<boolean> {
  const found = await clients.dynamodb.send(new GetItemCommand({ TableName: table, Key: { eventId: { S: eventId } }, ConsistentRead: true }));
  if (found.Item) return true;
  try {
    await clients.dynamodb.send(
      new PutItemCommand({
        TableName: table,
        Item: { eventId: { S: eventId }, at: { S: new Date().toISOString() } },
        ConditionExpression: 'attribute_not_exists(eventId)',
      }),
    );
    return false;
  } catch (error) {
    if (error instanceof ConditionalCheckFailedException) return true;
    throw error;
  }
}

async function policyExists(arn: string): Promise<boolean> {
  try {
    await clients.iam.send(new GetPolicyCommand({ PolicyArn: arn }));
    return true;
  } catch (error) {
    if (error instanceof NoSuchEntityException) return false;
    throw error;
  }
}

async function applyToIam(event: Event): Promise<string> {
  const arn = `arn:aws:iam::${accountId}:policy${event.path}${event.name}`;
  const exists = await policyExists(arn);
  if (event.type === 'policy.deleted') {
    if (!exists) return 'absent';
    const versions = (await clients.iam.send(new ListPolicyVersionsCommand({ PolicyArn: arn }))).Versions ?? [];
    for (const version of versions.filter((v) => !v.IsDefaultVersion)) {
      await clients.iam.send(new DeletePolicyVersionCommand({ PolicyArn: arn, VersionId: version.VersionId }));
    }
    await clients.iam.send(new DeletePolicyCommand({ PolicyArn: arn }));
    return 'deleted';
  }
  const document = JSON.stringify(event.document);
  if (!exists) {
    const tags = { ...event.tags, 'managed-by': config.appName };
    await clients.iam.send(
      new CreatePolicyCommand({
        PolicyName: event.name,
        Path: event.path,
        PolicyDocument: document,
        ...(event.description !== undefined ? { Description: event.description } : {}),
        Tags: Object.entries(tags).map(([Key, Value]) => ({ Key, Value })),
      }),
    );
    return 'created';
  }
  const versions = (await clients.iam.send(new ListPolicyVersionsCommand({ PolicyArn: arn }))).Versions ?? [];
  if (versions.length >= 5) {
    const oldest = versions.filter((v) => !v.IsDefaultVersion).sort((a, b) => (a.CreateDate?.getTime() ?? 0) - (b.CreateDate?.getTime() ?? 0))[0];
    if (oldest) await clients.iam.send(new DeletePolicyVersionCommand({ PolicyArn: arn, VersionId: oldest.VersionId }));
  }
  await clients.iam.send(new CreatePolicyVersionCommand({ PolicyArn: arn, PolicyDocument: document, SetAsDefault: true }));
  return 'updated';
}

async function processRecord(record: BatchRecord): Promise<void> {
  const event = parse(record.data);
  if (!event) return reportOutcome(child, record, 'rejected', { reason: 'invalid' });
  // Transient faults (the SDK already retried) hold the record: the next one may not start before it.
  for (let attempt = 0; ; attempt++) {
    try {
      if (attempt === 0 && (await alreadyApplied(event.eventId))) return reportOutcome(child, record, 'duplicate', { eventId: event.eventId });
      const outcome = await applyToIam(event);
      return reportOutcome(child, record, outcome, { eventId: event.eventId });
    } catch (error) {
      const name = (error as Error).name;
      if (PERMANENT.has(name)) return reportOutcome(child, record, 'rejected', { eventId: event.eventId, reason: `iam:${name}` });
      logger.warn({ shard: shardId, sequenceNumber: record.sequenceNumber, attempt, err: (error as Error).message }, 'retrying record');
      await sleep(Math.min(5_000, 100 * 2 ** attempt));
    }
  }
}

kcl({
  initialize(input, done) {
    shardId = input.shardId;
    Promise.all([
      ensureTable(clients.dynamodb, {
        TableName: table,
        BillingMode: 'PAY_PER_REQUEST',
        AttributeDefinitions: [{ AttributeName: 'eventId', AttributeType: 'S' }],
        KeySchema: [{ AttributeName: 'eventId', KeyType: 'HASH' }],
      }),
      clients.sts.send(new GetCallerIdentityCommand({})).then((identity) => (accountId = identity.Account ?? '')),
    ])
      .then(() => {
        logger.info({ shard: shardId, startingAt: input.sequenceNumber, table }, 'ready');
        done();
      })
      .catch((error: unknown) => logger.fatal({ err: error }, 'start-up failed'));
  },
  processRecords(input, done) {
    const records = toBatchRecords(shardId, input.records, Date.now());
    void (async () => {
      for (const record of records) await processRecord(record);
      const last = records.at(-1)?.sequenceNumber;
      if (last) {
        lastProcessed = last;
        await checkpointAt(input.checkpointer, last, logger);
      }
      done();
    })();
  },
  leaseLost(_input, done) {
    logger.warn({ shard: shardId }, 'lease lost');
    done();
  },
  shardEnded(input, done) {
    void checkpointAt(input.checkpointer, null, logger).then(done);
  },
  shutdownRequested(input, done) {
    if (!lastProcessed) return done();
    void checkpointAt(input.checkpointer, lastProcessed, logger).then(done);
  },
}).run();
