// The event archive table: one item per applied eventId that left its
// policy's window in the ledger (docs/ledger.md, "The event archive"). It is
// a table of its own so that what grows with the events stays out of the
// ledger, whose scans (the drift audit, `ips status`) then cost the policies.
import type { CreateTableCommandInput } from '@aws-sdk/client-dynamodb';

/** Partition key: `<policy>#<eventId>` (an IAM name holds no `#`), so one hot policy's archive spreads over partitions. */
export const EVENT_ARCHIVE_KEY = 'event';
/** Epoch seconds after which DynamoDB removes an archived eventId (the table's TTL attribute). */
export const EVENT_ARCHIVE_TTL_ATTRIBUTE = 'expiresAt';

export const eventArchiveKey = (policy: string, eventId: string) => `${policy}#${eventId}`;

export function eventArchiveTableDefinition(tableName: string): CreateTableCommandInput {
  return {
    TableName: tableName,
    BillingMode: 'PAY_PER_REQUEST',
    AttributeDefinitions: [{ AttributeName: EVENT_ARCHIVE_KEY, AttributeType: 'S' }],
    KeySchema: [{ AttributeName: EVENT_ARCHIVE_KEY, KeyType: 'HASH' }],
  };
}
