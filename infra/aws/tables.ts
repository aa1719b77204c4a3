// The ledger, event archive, dead-letter and KCL lease tables. The key
// schemas, the table names and the TTL attributes come from the code that
// reads them (src/), so the stack's tables are the ones the workers look for.
//
// The ledger is what makes replays harmless, the archive keeps producer
// retries of old events duplicates, and the dead letters are the only copy of
// rejected input once the stream's retention has passed: none goes away with
// the stack, nor does the lease table (checkpoints).
import type { CreateTableCommandInput } from '@aws-sdk/client-dynamodb';
import { RemovalPolicy } from 'aws-cdk-lib';
import { AttributeType, BillingMode, Table, TableEncryption } from 'aws-cdk-lib/aws-dynamodb';
import type { Attribute } from 'aws-cdk-lib/aws-dynamodb';
import { Construct } from 'constructs';
import { loadConfig } from '../../src/config/config.js';
import { deadLetterTableDefinition } from '../../src/deadletter/table.js';
import { EVENT_ARCHIVE_TTL_ATTRIBUTE, eventArchiveTableDefinition } from '../../src/ledger/event-archive-table.js';
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
  /** IPS_APP_NAME: every table is named after it (a shadow's: `<app>-shadow`, its namespace). */
  readonly appName: string;
  /** Put before each table's logical ID: a second set of tables in the stack (the shadow's) keeps IDs of its own. */
  readonly idPrefix?: string;
  /**
   * A shadow's tables hold nothing the live processor needs: they go with the
   * stack (or with the shadow), so a shadow deployed again later finds no
   * table of its name in the way.
   */
  readonly disposable?: boolean;
}

export class LedgerTables extends Construct {
  readonly ledger: Table;
  readonly eventArchive: Table;
  readonly deadLetters: Table;
  readonly leases: Table;

  constructor(scope: Construct, id: string, props: LedgerTablesProps) {
    super(scope, id);
    const app = props.appName;
    const kept = props.disposable !== true;
    const table = (tableId: string, tableName: string, keys: ReturnType<typeof keysOf> & { timeToLiveAttribute?: string }) =>
      keepLogicalId(
        new Table(this, tableId, {
          tableName,
          ...keys,
          billingMode: BillingMode.PAY_PER_REQUEST,
          pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
          encryption: TableEncryption.AWS_MANAGED,
          deletionProtection: kept,
          removalPolicy: kept ? RemovalPolicy.RETAIN : RemovalPolicy.DESTROY,
        }),
        `${props.idPrefix ?? ''}${tableId}`,
      );
    // Versions before the archive table archived eventIds in the ledger; those items still expire after `expiresAt`.
    this.ledger = table('LedgerTable', `${app}${tableSuffix((config) => config.ledgerTable)}`, {
      ...keysOf(ledgerTableDefinition('ledger')),
      timeToLiveAttribute: LEDGER_TTL_ATTRIBUTE,
    });
    // Archived eventIds (ledger/event-archive.ts) expire: DynamoDB removes them after `expiresAt`.
    this.eventArchive = table('EventArchiveTable', `${app}${tableSuffix((config) => config.eventArchiveTable)}`, {
      ...keysOf(eventArchiveTableDefinition('event-archive')),
      timeToLiveAttribute: EVENT_ARCHIVE_TTL_ATTRIBUTE,
    });
    this.deadLetters = table('DeadLetterTable', `${app}${tableSuffix((config) => config.deadLetterTable)}`, keysOf(deadLetterTableDefinition('dead-letters')));
    // The KCL would create this table on first start; owning it here gives it
    // recovery, encryption and a grant that needs no dynamodb:CreateTable.
    this.leases = table('LeaseTable', `${app}${tableSuffix((config) => config.leaseTable)}`, {
      partitionKey: { name: LEASE_KEY, type: AttributeType.STRING },
    });
  }
}
