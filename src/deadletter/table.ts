// The dead-letter table: one item per rejected record (docs/dead-letters.md).
import type { CreateTableCommandInput } from '@aws-sdk/client-dynamodb';

export const DEAD_LETTER_KEY = 'id';

export function deadLetterTableDefinition(tableName: string): CreateTableCommandInput {
  return {
    TableName: tableName,
    BillingMode: 'PAY_PER_REQUEST',
    AttributeDefinitions: [{ AttributeName: DEAD_LETTER_KEY, AttributeType: 'S' }],
    KeySchema: [{ AttributeName: DEAD_LETTER_KEY, KeyType: 'HASH' }],
  };
}
