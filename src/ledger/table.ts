// The ledger table: one item per policy (docs/ledger.md has the full schema).
import type { CreateTableCommandInput } from '@aws-sdk/client-dynamodb';

export const LEDGER_KEY = 'policy';
/** Epoch seconds after which DynamoDB removes an item (archived eventIds only). */
export const LEDGER_TTL_ATTRIBUTE = 'expiresAt';

export function ledgerTableDefinition(tableName: string): CreateTableCommandInput {
  return {
    TableName: tableName,
    BillingMode: 'PAY_PER_REQUEST',
    AttributeDefinitions: [{ AttributeName: LEDGER_KEY, AttributeType: 'S' }],
    KeySchema: [{ AttributeName: LEDGER_KEY, KeyType: 'HASH' }],
  };
}
