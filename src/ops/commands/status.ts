// `status`: where each shard stands (lease owner, checkpoint, parents,
// children, lag) and how much the ledger, the dead-letter store and IAM hold.
import { paginateScan } from '@aws-sdk/client-dynamodb';
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { paginateListPolicies } from '@aws-sdk/client-iam';
import type { Command } from '../cli/command.js';
import { COMMON_HELP } from '../cli/command.js';
import { print, printJson, table } from '../cli/render.js';
import { readLeases } from '../lease-table.js';
import { childrenOf, listShards } from '../../stream/shard-tree.js';
import { lagBehind } from '../shard-positions.js';

async function countItems(dynamodb: DynamoDBClient, tableName: string, filter?: { expression: string; names: Record<string, string>; values: Record<string, { S: string }> }): Promise<number> {
  let count = 0;
  const input = {
    TableName: tableName,
    Select: 'COUNT' as const,
    ...(filter ? { FilterExpression: filter.expression } : {}),
    // DynamoDB refuses empty maps.
    ...(filter && Object.keys(filter.names).length > 0 ? { ExpressionAttributeNames: filter.names } : {}),
    ...(filter && Object.keys(filter.values).length > 0 ? { ExpressionAttributeValues: filter.values } : {}),
  };
  for await (const page of paginateScan({ client: dynamodb }, input)) count += page.Count ?? 0;
  return count;
}

export const statusCommand: Command = {
  name: 'status',
  summary: 'shards, leases, checkpoints and lag; ledger, dead-letter and policy counts',
  help: `Usage: ips status [--json] [--local]

Shows, per shard: the worker holding its lease, its checkpoint, its parent and
child shards, and how far the checkpoint is behind the tip of the shard
(MillisBehindLatest; "pending" when records wait behind the checkpoint).
Then: ledger entries (one per policy), open and redriven dead letters, and the
number of policies under the managed path in IAM.

${COMMON_HELP}`,
  options: {},
  async run(ctx) {
    const { config, aws } = ctx;
    const [shards, leases] = await Promise.all([listShards(aws.kinesis, config.streamName), readLeases(aws.dynamodb, config.leaseTable)]);
    const leaseOf = new Map(leases.map((lease) => [lease.shardId, lease]));
    const shardRows = await Promise.all(
      shards.map(async (shard) => {
        const lease = leaseOf.get(shard.shardId);
        const lag = await lagBehind(aws.kinesis, config.streamName, shard.shardId, lease?.checkpoint);
        return {
          shard: shard.shardId,
          state: shard.closed ? 'closed' : 'open',
          owner: lease ? (lease.owner ?? '(free)') : '(no lease)',
          checkpoint: lease?.checkpoint ?? '-',
          parents: shard.parents.join(',') || '-',
          children: childrenOf(shards, shard.shardId).join(',') || '-',
          lagMs: lag?.millisBehind,
          pending: lag?.pending,
        };
      }),
    );
    const [ledgerEntries, openLetters, redrivenLetters] = await Promise.all([
      countItems(aws.dynamodb, config.ledgerTable, { expression: 'attribute_exists(hwm)', names: {}, values: {} }),
      countItems(aws.dynamodb, config.deadLetterTable, { expression: '#s = :s', names: { '#s': 'status' }, values: { ':s': { S: 'open' } } }),
      countItems(aws.dynamodb, config.deadLetterTable, { expression: '#s = :s', names: { '#s': 'status' }, values: { ':s': { S: 'redriven' } } }),
    ]);
    let managedPolicies = 0;
    for await (const page of paginateListPolicies({ client: aws.iam }, { Scope: 'Local', PathPrefix: config.managedPathPrefix })) {
      managedPolicies += page.Policies?.length ?? 0;
    }
    const summary = { stream: config.streamName, leaseTable: config.leaseTable, ledgerEntries, deadLetters: { open: openLetters, redriven: redrivenLetters }, managedPolicies, managedPathPrefix: config.managedPathPrefix };
    if (ctx.json) {
      printJson({ ...summary, shards: shardRows });
      return 0;
    }
    print(`Stream ${config.streamName}, lease table ${config.leaseTable}\n`);
    print(table(shardRows.map((row) => ({ ...row, lagMs: row.lagMs ?? '?', pending: row.pending === undefined ? '?' : row.pending ? 'yes' : 'no' })), ['shard', 'state', 'owner', 'checkpoint', 'parents', 'children', 'lagMs', 'pending']));
    print('');
    print(`Ledger entries (policies seen): ${ledgerEntries}`);
    print(`Dead letters: ${openLetters} open, ${redrivenLetters} redriven (${config.deadLetterTable})`);
    print(`Managed policies in IAM under ${config.managedPathPrefix}: ${managedPolicies}`);
    return 0;
  },
};
