// The ledger, dead-letter and KCL lease tables. The key schemas, the table
// names and the ledger's TTL attribute come from the code that reads them
// (src/), so the stack's tables are the ones the workers look for.
//
// The ledger is what makes replays harmless and the dead letters are the only
// copy of rejected input once the stream's retention has passed: neither goes
// away with the stack, nor does the lease table (checkpoints).
import type { CreateTableCommandInput } from '@aws-sdk/client-dynamodb';
import { RemovalPolicy } from 'aws-cdk-lib';
import { AttributeType, BillingMode, Table, TableEncryption } from 'aws-cdk-lib/aws-dynamodb';
import type { Attribute } from 'aws-cdk-lib/aws-dynamodb';
import { Construct } from 'constructs';
import { loadConfig } from '../../src/config/config.js';
import { deadLetterTableDefinition } from '../../src/deadletter/table.js';
import { LEDGER_TTL_ATTRIBUTE, ledgerTableDefinition } from '../../src/ledger/table.js';
import { keepLogicalId } from './cfn.js';

/** Partition key of the KCL lease table, as the KCL itself creates it. */
export const LEASE_KEY = 'leaseKey';

/**
 * What the configuration appends to the application name to name a table
 * (`<app>-ledger`, `<app>-dead-letters`, `<app>`), read from the configuration
 * itself so the stack's table names are the ones the workers look for.
 */
function tableSuffix(pick: (config: ReturnType<typeof loadConfig>) => string): string {
  const marker = 'app-name-marker';
  const name = pick(loadConfig({ IPS_APP_NAME: marker }));
  if (!name.startsWith(marker)) throw new Error(`table name ${name} does not derive from IPS_APP_NAME`);
  return name.slice(marker.length);
}

const ATTRIBUTE_TYPES: Record<string, AttributeType> = { S: AttributeType.STRING, N: AttributeType.NUMBER, B: AttributeType.BINARY };

/** The key schema of a table as the code creates it locally (src/*\/table.ts). */
function keysOf(definition: CreateTableCommandInput): { partitionKey: Attribute; sortKey?: Attribute } {
  const attribute = (keyType: string): Attribute | undefined => {
    const name = definition.KeySchema?.find((key) => key.KeyType === keyType)?.AttributeName;
    if (name === undefined) return undefined;
    const type = ATTRIBUTE_TYPES[definition.AttributeDefinitions?.find((item) => item.AttributeName === name)?.AttributeType ?? ''];
    if (!type) throw new Error(`${definition.TableName}: no attribute type for key ${name}`);
    return { name, type };
  };
  const partitionKey = attribute('HASH');
  if (!partitionKey) throw new Error(`${definition.TableName}: no partition key`);
  const sortKey = attribute('RANGE');
  return sortKey ? { partitionKey, sortKey } : { partitionKey };
}

export interface LedgerTablesProps {
  /** IPS_APP_NAME: every table is named after it. */
  readonly appName: string;
}

export class LedgerTables extends Construct {
  readonly ledger: Table;
  readonly deadLetters: Table;
  readonly leases: Table;

  constructor(scope: Construct, id: string, props: LedgerTablesProps) {
    super(scope, id);
    const app = props.appName;
    const table = (tableId: string, tableName: string, keys: ReturnType<typeof keysOf> & { timeToLiveAttribute?: string }) =>
      keepLogicalId(
        new Table(this, tableId, {
          tableName,
          ...keys,
          billingMode: BillingMode.PAY_PER_REQUEST,
          pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
          encryption: TableEncryption.AWS_MANAGED,
          deletionProtection: true,
          removalPolicy: RemovalPolicy.RETAIN,
        }),
      );
    // Archived eventIds (ledger/dynamodb-archive.ts) expire: DynamoDB removes them after `expiresAt`.
    this.ledger = table('LedgerTable', `${app}${tableSuffix((config) => config.ledgerTable)}`, {
      ...keysOf(ledgerTableDefinition('ledger')),
      timeToLiveAttribute: LEDGER_TTL_ATTRIBUTE,
    });
    this.deadLetters = table('DeadLetterTable', `${app}${tableSuffix((config) => config.deadLetterTable)}`, keysOf(deadLetterTableDefinition('dead-letters')));
    // The KCL would create this table on first start; owning it here gives it
    // recovery, encryption and a grant that needs no dynamodb:CreateTable.
    this.leases = table('LeaseTable', `${app}${tableSuffix((config) => config.leaseTable)}`, {
      partitionKey: { name: LEASE_KEY, type: AttributeType.STRING },
    });
  }
}
