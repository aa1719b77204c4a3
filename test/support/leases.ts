// The KCL lease table, as the daemon left it.
import { ScanCommand } from '@aws-sdk/client-dynamodb';
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';

export async function checkpoints(dynamodb: DynamoDBClient, leaseTable: string): Promise<Map<string, string>> {
  const result = await dynamodb.send(new ScanCommand({ TableName: leaseTable }));
  return new Map((result.Items ?? []).map((item) => [item.leaseKey?.S ?? '', item.checkpoint?.S ?? '']));
}
