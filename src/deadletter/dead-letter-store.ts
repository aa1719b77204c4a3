// The dead-letter store: every rejected record, with its reason and its raw
// bytes, so nothing is lost and an operator can inspect and redrive it.
// Keyed by shard and sequence number: storing the same record twice (after a
// redelivery) overwrites the same item, so letters are never duplicated.
import { createHash } from 'node:crypto';
import { PutItemCommand } from '@aws-sdk/client-dynamodb';
import type { AttributeValue, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { RejectReason } from '../contract/errors.js';
import { DEAD_LETTER_KEY } from './table.js';

export interface DeadLetter {
  shardId: string;
  sequenceNumber: string;
  partitionKey: string;
  reason: RejectReason;
  detail: string;
  data: Buffer;
  eventId?: string;
  policyName?: string;
  /** When the record reached the stream (epoch ms), if the daemon said. */
  arrivedAt?: number;
}

export interface DeadLetterSink {
  store(letter: DeadLetter): Promise<void>;
}

export function deadLetterId(shardId: string, sequenceNumber: string): string {
  return `${shardId}#${sequenceNumber}`;
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
  ) {}

  async store(letter: DeadLetter): Promise<void> {
    const item: Record<string, AttributeValue> = {
      [DEAD_LETTER_KEY]: { S: deadLetterId(letter.shardId, letter.sequenceNumber) },
      shardId: { S: letter.shardId },
      sequenceNumber: { S: letter.sequenceNumber },
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
    if (letter.arrivedAt !== undefined) item.arrivedAt = { N: String(letter.arrivedAt) };
    await this.dynamodb.send(new PutItemCommand({ TableName: this.tableName, Item: item }));
  }
}
