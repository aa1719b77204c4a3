// What a "ResourceNotFoundException" means in the configuration's words.
// DynamoDB and Kinesis answer "Cannot do operations on a non-existent table"
// without naming the table, and the name comes from a variable the operator
// may not know they set (IPS_APP_NAME names the lease table and, by default,
// the other tables). So when a command meets it, each stream and table the
// configuration names is looked up, and the missing ones are named with the
// variable that chose them.
import { DescribeTableCommand } from '@aws-sdk/client-dynamodb';
import { DescribeStreamSummaryCommand } from '@aws-sdk/client-kinesis';
import type { AwsClients } from '../../aws/clients.js';
import type { Config } from '../../config/config.js';

type Env = Record<string, string | undefined>;

/** Where a name came from: its own variable, or the application name it defaults to. */
function origin(env: Env, key: string, derived: boolean): string {
  if (env[key]) return `${key}=${env[key]}`;
  return derived ? `from IPS_APP_NAME=${env.IPS_APP_NAME || 'iam-policy-stream (the default)'}; ${key} overrides it` : `${key} unset: the default`;
}

/** The resources the configuration names that do not exist, each with the variable that named it; empty when all exist or none could be checked. */
export async function missingResources(aws: AwsClients, config: Config, env: Env): Promise<string[]> {
  const tables = [
    { what: 'ledger table', name: config.ledgerTable, key: 'IPS_LEDGER_TABLE' },
    { what: 'event archive table', name: config.eventArchiveTable, key: 'IPS_EVENT_ARCHIVE_TABLE' },
    { what: 'dead-letter table', name: config.deadLetterTable, key: 'IPS_DEAD_LETTER_TABLE' },
    { what: 'lease table', name: config.leaseTable, key: 'IPS_LEASE_TABLE' },
  ];
  const missing: string[] = [];
  const absent = (error: unknown) => (error as Error).name === 'ResourceNotFoundException';
  await Promise.all([
    ...tables.map(async ({ what, name, key }) => {
      try {
        await aws.dynamodb.send(new DescribeTableCommand({ TableName: name }));
      } catch (error) {
        if (absent(error)) missing.push(`the ${what} ${name} does not exist (${origin(env, key, true)})`);
      }
    }),
    (async () => {
      try {
        await aws.kinesis.send(new DescribeStreamSummaryCommand({ StreamName: config.streamName }));
      } catch (error) {
        if (absent(error)) missing.push(`the stream ${config.streamName} does not exist (${origin(env, 'IPS_STREAM_NAME', false)})`);
      }
    })(),
  ]);
  return missing.sort();
}
