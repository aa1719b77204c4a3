// What a DynamoDB client's calls cost in read and write units, as DynamoDB
// itself reports it: every call is sent with ReturnConsumedCapacity=TOTAL
// (DynamoDB Local answers it as DynamoDB does, from the items' sizes) and the
// ConsumedCapacity of each answer is added up. For tests and benchmarks that
// compare what an operation reads, never for the product's own clients.
import type { ConsumedCapacity, DynamoDBClient } from '@aws-sdk/client-dynamodb';

export interface CapacityMeter {
  /** Read units since the meter was attached or last reset, per table. */
  readonly readUnits: Map<string, number>;
  readonly writeUnits: Map<string, number>;
  /** All read units, every table. */
  totalReadUnits(): number;
  reset(): void;
}

/** Commands that accept ReturnConsumedCapacity, and whether they read. */
const METERED = new Map([
  ['GetItemCommand', true],
  ['BatchGetItemCommand', true],
  ['QueryCommand', true],
  ['ScanCommand', true],
  ['TransactGetItemsCommand', true],
  ['PutItemCommand', false],
  ['UpdateItemCommand', false],
  ['DeleteItemCommand', false],
  ['BatchWriteItemCommand', false],
  ['TransactWriteItemsCommand', false],
]);

export function meterCapacity(client: DynamoDBClient): CapacityMeter {
  const readUnits = new Map<string, number>();
  const writeUnits = new Map<string, number>();
  const add = (into: Map<string, number>, table: string, units: number | undefined) => {
    if (units) into.set(table, (into.get(table) ?? 0) + units);
  };
  const middleware =
    (next: (args: { input: Record<string, unknown> }) => Promise<{ output: Record<string, unknown> }>, context: { commandName?: string }) => async (args: { input: Record<string, unknown> }) => {
      const isRead = METERED.get(context.commandName ?? '');
      const metered = isRead !== undefined;
      if (metered) args.input.ReturnConsumedCapacity = 'TOTAL';
      const result = await next(args);
      if (metered) {
        const consumed = result.output.ConsumedCapacity as ConsumedCapacity | ConsumedCapacity[] | undefined;
        for (const capacity of Array.isArray(consumed) ? consumed : consumed ? [consumed] : []) {
          const table = capacity.TableName ?? '?';
          // TOTAL gives CapacityUnits; reads and writes apart only where a call did both (a conditional write that reads).
          if (capacity.ReadCapacityUnits === undefined && capacity.WriteCapacityUnits === undefined) add(isRead ? readUnits : writeUnits, table, capacity.CapacityUnits);
          else {
            add(readUnits, table, capacity.ReadCapacityUnits);
            add(writeUnits, table, capacity.WriteCapacityUnits);
          }
        }
      }
      return result;
    };
  client.middlewareStack.add(middleware as never, { step: 'initialize', name: 'meter-consumed-capacity', override: true });
  return {
    readUnits,
    writeUnits,
    totalReadUnits: () => [...readUnits.values()].reduce((sum, units) => sum + units, 0),
    reset: () => {
      readUnits.clear();
      writeUnits.clear();
    },
  };
}
