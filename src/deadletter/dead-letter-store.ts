// The dead-letter store: every rejected record, with its reason and its raw
// bytes, so nothing is lost and an operator can inspect and redrive it.
// Keyed by the record's identity (shard, sequence number, subsequence number:
// contract/record-id.ts), so two bad user records of one KPL aggregate make two
// letters, and storing the same record twice (after a redelivery) overwrites
// the same item, so letters are never duplicated.
import { createHash } from 'node:crypto';
import { ConditionalCheckFailedException, DeleteItemCommand, GetItemCommand, PutItemCommand, UpdateItemCommand, paginateScan } from '@aws-sdk/client-dynamodb';
import type { AttributeValue, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { RecordPosition } from '../contract/record-id.js';
import { recordId } from '../contract/record-id.js';
import { DEAD_LETTER_KEY } from './table.js';
import type { RejectReason } from '../faults/errors.js';
import { METRIC } from '../metrics/metrics.js';
import type { Metrics } from '../metrics/metrics.js';

export interface DeadLetter {
  record: RecordPosition;
  partitionKey: string;
  reason: RejectReason;
  detail: string;
  data: Buffer;
  eventId?: string;
  policyName?: string;
  /** The account the event named, if it named one (absent: the worker's own). */
  account?: string;
  /** When the record reached the stream (epoch ms), if the daemon said. */
  arrivedAt?: number;
}

export interface DeadLetterSink {
  store(letter: DeadLetter): Promise<void>;
}

const MAX_DETAIL = 2_000;
/**
 * A DynamoDB item holds at most 400 KB, a Kinesis record up to 1 MiB. Larger
 * records keep their first 256 KiB here, flagged `truncated`, with the full
 * size and SHA-256; shard and sequence number still locate the whole record
 * in the stream for its retention period.
 */
const MAX_STORED_BYTES = 256 * 1024;

export class DynamoDbDeadLetterStore implements DeadLetterSink {
  constructor(
    private readonly dynamodb: DynamoDBClient,
    private readonly tableName: string,
    private readonly now: () => number = Date.now,
    /** Counts the letters written (METRIC.deadLettersWritten), by reason. */
    private readonly metrics?: Metrics,
  ) {}

  async store(letter: DeadLetter): Promise<void> {
    const item: Record<string, AttributeValue> = {
      [DEAD_LETTER_KEY]: { S: recordId(letter.record) },
      shardId: { S: letter.record.shardId },
      sequenceNumber: { S: letter.record.sequenceNumber },
      subSequenceNumber: { N: String(letter.record.subSequenceNumber) },
      partitionKey: { S: letter.partitionKey },
      reason: { S: letter.reason },
      detail: { S: letter.detail.slice(0, MAX_DETAIL) },
      dataBase64: { S: letter.data.subarray(0, MAX_STORED_BYTES).toString('base64') },
      size: { N: String(letter.data.length) },
      sha256: { S: createHash('sha256').update(letter.data).digest('hex') },
      truncated: { BOOL: letter.data.length > MAX_STORED_BYTES },
      storedAt: { S: new Date(this.now()).toISOString() },
      status: { S: 'open' },
    };
    if (letter.eventId !== undefined) item.eventId = { S: letter.eventId };
    if (letter.policyName !== undefined) item.policyName = { S: letter.policyName };
    if (letter.account !== undefined) item.account = { S: letter.account };
    if (letter.arrivedAt !== undefined) item.arrivedAt = { N: String(letter.arrivedAt) };
    try {
      // A redelivery or replay of the same record finds its letter already
      // there and leaves it as it is: a letter an operator redrove stays
      // `redriven` instead of opening again.
      await this.dynamodb.send(
        new PutItemCommand({
          TableName: this.tableName,
          Item: item,
          ConditionExpression: 'attribute_not_exists(#key)',
          ExpressionAttributeNames: { '#key': DEAD_LETTER_KEY },
        }),
      );
      this.metrics?.increment(METRIC.deadLettersWritten, { reason: letter.reason });
    } catch (error) {
      if (!(error instanceof ConditionalCheckFailedException)) throw error;
    }
  }

  /** Every letter, oldest first; `reason` filters by reason code. Scans: the table holds exceptions, not traffic. */
  async list(filter: { reason?: string; status?: string } = {}): Promise<StoredDeadLetter[]> {
    const letters: StoredDeadLetter[] = [];
    for await (const page of paginateScan({ client: this.dynamodb }, { TableName: this.tableName, ConsistentRead: true })) {
      for (const item of page.Items ?? []) letters.push(fromItem(item));
    }
    return letters
      .filter((letter) => (filter.reason === undefined || letter.reason === filter.reason) && (filter.status === undefined || letter.status === filter.status))
      .sort((a, b) => a.storedAt.localeCompare(b.storedAt) || a.id.localeCompare(b.id));
  }

  async get(id: string): Promise<StoredDeadLetter | undefined> {
    const result = await this.dynamodb.send(new GetItemCommand({ TableName: this.tableName, Key: { [DEAD_LETTER_KEY]: { S: id } }, ConsistentRead: true }));
    return result.Item ? fromItem(result.Item) : undefined;
  }

  /** Records where the letter went back into the stream, so a second redrive is a deliberate act. */
  async markRedriven(id: string, to: RecordPosition): Promise<void> {
    await this.dynamodb.send(
      new UpdateItemCommand({
        TableName: this.tableName,
        Key: { [DEAD_LETTER_KEY]: { S: id } },
        UpdateExpression: 'SET #status = :redriven, redrivenAt = :at, redrivenTo = :to',
        ConditionExpression: 'attribute_exists(#key)',
        ExpressionAttributeNames: { '#status': 'status', '#key': DEAD_LETTER_KEY },
        ExpressionAttributeValues: {
          ':redriven': { S: 'redriven' },
          ':at': { S: new Date(this.now()).toISOString() },
          ':to': { S: recordId(to) },
        },
      }),
    );
  }

  async remove(id: string): Promise<void> {
    await this.dynamodb.send(new DeleteItemCommand({ TableName: this.tableName, Key: { [DEAD_LETTER_KEY]: { S: id } } }));
  }
}

/** A letter as stored, with what the operator tools need. */
export interface StoredDeadLetter {
  id: string;
  shardId: string;
  sequenceNumber: string;
  subSequenceNumber: number;
  partitionKey: string;
  reason: string;
  detail: string;
  /** The stored bytes: the whole record unless `truncated`. */
  data: Buffer;
  size: number;
  sha256: string;
  truncated: boolean;
  storedAt: string;
  status: string;
  eventId?: string;
  policyName?: string;
  account?: string;
  arrivedAt?: number;
  redrivenAt?: string;
  redrivenTo?: string;
}

function fromItem(item: Record<string, AttributeValue>): StoredDeadLetter {
  const optional = (key: string) => (item[key]?.S !== undefined ? { [key]: item[key]!.S } : {});
  return {
    id: item[DEAD_LETTER_KEY]?.S ?? '',
    shardId: item.shardId?.S ?? '',
    sequenceNumber: item.sequenceNumber?.S ?? '',
    subSequenceNumber: Number(item.subSequenceNumber?.N ?? 0),
    partitionKey: item.partitionKey?.S ?? '',
    reason: item.reason?.S ?? '',
    detail: item.detail?.S ?? '',
    data: Buffer.from(item.dataBase64?.S ?? '', 'base64'),
    size: Number(item.size?.N ?? 0),
    sha256: item.sha256?.S ?? '',
    truncated: item.truncated?.BOOL ?? false,
    storedAt: item.storedAt?.S ?? '',
    status: item.status?.S ?? 'open',
    ...optional('eventId'),
    ...optional('policyName'),
    ...optional('account'),
    ...optional('redrivenAt'),
    ...optional('redrivenTo'),
    ...(item.arrivedAt?.N !== undefined ? { arrivedAt: Number(item.arrivedAt.N) } : {}),
  };
}
