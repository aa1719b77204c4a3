// Creates the stream and the processor's tables when they are missing. The
// local stack uses it; on AWS the infrastructure code owns these resources.
import { CreateTableCommand, DescribeTableCommand, ResourceNotFoundException } from '@aws-sdk/client-dynamodb';
import type { CreateTableCommandInput, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { CreateStreamCommand, DescribeStreamSummaryCommand, ResourceNotFoundException as StreamNotFound } from '@aws-sdk/client-kinesis';
import type { KinesisClient } from '@aws-sdk/client-kinesis';
import { setTimeout as sleep } from 'node:timers/promises';
import type { AwsClients } from '../aws/clients.js';
import type { Config } from '../config/config.js';
import { deadLetterTableDefinition } from '../deadletter/table.js';
import { eventArchiveTableDefinition } from '../ledger/event-archive-table.js';
import { ledgerTableDefinition } from '../ledger/table.js';

async function waitUntil(what: string, check: () => Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`${what} not ready after ${timeoutMs} ms`);
    await sleep(100);
  }
}

export async function ensureStream(kinesis: KinesisClient, streamName: string, shardCount: number): Promise<void> {
  try {
    await kinesis.send(new DescribeStreamSummaryCommand({ StreamName: streamName }));
  } catch (error) {
    if (!(error instanceof StreamNotFound)) throw error;
    await kinesis.send(new CreateStreamCommand({ StreamName: streamName, ShardCount: shardCount }));
  }
  await waitUntil(`stream ${streamName}`, async () => {
    const summary = await kinesis.send(new DescribeStreamSummaryCommand({ StreamName: streamName }));
    return summary.StreamDescriptionSummary?.StreamStatus === 'ACTIVE';
  });
}

export async function ensureTable(dynamodb: DynamoDBClient, definition: CreateTableCommandInput): Promise<void> {
  const TableName = definition.TableName;
  try {
    await dynamodb.send(new DescribeTableCommand({ TableName }));
  } catch (error) {
    if (!(error instanceof ResourceNotFoundException)) throw error;
    await dynamodb.send(new CreateTableCommand(definition));
  }
  await waitUntil(`table ${TableName}`, async () => {
    const table = await dynamodb.send(new DescribeTableCommand({ TableName }));
    return table.Table?.TableStatus === 'ACTIVE';
  });
}

export async function provision(config: Config, clients: AwsClients, shardCount: number): Promise<void> {
  await Promise.all([
    ensureStream(clients.kinesis, config.streamName, shardCount),
    ensureTable(clients.dynamodb, ledgerTableDefinition(config.ledgerTable)),
    ensureTable(clients.dynamodb, eventArchiveTableDefinition(config.eventArchiveTable)),
    ensureTable(clients.dynamodb, deadLetterTableDefinition(config.deadLetterTable)),
  ]);
}
