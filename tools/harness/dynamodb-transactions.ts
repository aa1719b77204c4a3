// DynamoDB's transactions as the service runs them, where DynamoDB Local is
// kinder. The service refuses, rather than queues, a write that meets a
// transaction still in progress on one of its items:
//
//   - a TransactWriteItems that touches an item another TransactWriteItems is
//     writing is cancelled: TransactionCanceledException, with the reason
//     `TransactionConflict` for that item and `None` for the others;
//   - a single write (UpdateItem, PutItem, DeleteItem) to such an item fails
//     with TransactionConflictException.
//
// DynamoDB Local has not cancelled a transaction for a conflict in any of
// this project's runs, parks at once from four processes included. The fault proxy (protocol dynamodb,
// `transactions`) keeps the items of the transactions it has forwarded and
// not yet seen answered, and answers the calls that meet them as the service
// would; `holdMs` keeps each transaction in progress that much longer before
// it is forwarded (the service's two-phase commit takes longer than one
// write), so that concurrent writers really meet.
import type { IncomingMessage } from 'node:http';
import { LEDGER_KEY } from '../../src/ledger/table.js';

const WRITES = new Set(['UpdateItem', 'PutItem', 'DeleteItem']);

interface WriteRequest {
  TableName?: string;
  Key?: Record<string, unknown>;
  Item?: Record<string, unknown>;
}

export interface TransactionOptions {
  /** How long a transaction is held in progress before it is forwarded. */
  holdMs?: number;
  /** The table's key attributes, to name the item of a PutItem (which carries the item, not its key). Default: the ledger table's. */
  keyAttributes?: string[];
}

export interface Refusal {
  status: number;
  type: string;
  body: string;
}

export class TransactionsInProgress {
  /** Item -> how many forwarded transactions write it and are not answered yet. */
  private readonly inProgress = new Map<string, number>();
  /** Calls refused so far, by how: `cancelled` (TransactWriteItems) or `conflict` (a single write). */
  readonly refused = { cancelled: 0, conflict: 0 };

  constructor(private readonly options: TransactionOptions = {}) {}

  get holdMs(): number {
    return this.options.holdMs ?? 0;
  }

  /**
   * What becomes of a call: refused (it meets a transaction in progress), or
   * admitted; an admitted transaction holds its items until `done` is called
   * (when its answer has gone back).
   */
  admit(req: IncomingMessage, body: Buffer): { refuse: Refusal } | { done: () => void } {
    const operation = String(req.headers['x-amz-target'] ?? '')
      .split('.')
      .pop();
    if (operation === 'TransactWriteItems') return this.transaction(body);
    if (operation && WRITES.has(operation)) {
      const item = this.itemOf(JSON.parse(body.toString('utf8')) as WriteRequest);
      if (item && this.inProgress.has(item)) {
        this.refused.conflict++;
        return { refuse: refusal('TransactionConflictException', { message: 'Transaction is ongoing for the item' }) };
      }
    }
    return { done: () => undefined };
  }

  private transaction(body: Buffer): { refuse: Refusal } | { done: () => void } {
    const request = JSON.parse(body.toString('utf8')) as { TransactItems?: Record<string, WriteRequest>[] };
    const items = (request.TransactItems ?? []).map((action) => this.itemOf(Object.values(action)[0] ?? {}));
    const reasons = items.map((item) => (item && this.inProgress.has(item) ? { Code: 'TransactionConflict', Message: 'Transaction is ongoing for the item' } : { Code: 'None' }));
    if (reasons.some((reason) => reason.Code !== 'None')) {
      this.refused.cancelled++;
      return {
        refuse: refusal('TransactionCanceledException', {
          message: `Transaction cancelled, please refer cancellation reasons for specific reasons [${reasons.map((reason) => reason.Code).join(', ')}]`,
          CancellationReasons: reasons,
        }),
      };
    }
    const held = items.filter((item): item is string => item !== undefined);
    for (const item of held) this.inProgress.set(item, (this.inProgress.get(item) ?? 0) + 1);
    let released = false;
    return {
      done: () => {
        if (released) return;
        released = true;
        for (const item of held) {
          const left = (this.inProgress.get(item) ?? 1) - 1;
          if (left > 0) this.inProgress.set(item, left);
          else this.inProgress.delete(item);
        }
      },
    };
  }

  private itemOf(write: WriteRequest): string | undefined {
    const key = write.Key ?? (write.Item ? Object.fromEntries((this.options.keyAttributes ?? [LEDGER_KEY]).map((name) => [name, write.Item![name]])) : undefined);
    if (!write.TableName || !key) return undefined;
    return `${write.TableName}\u0000${JSON.stringify(Object.entries(key).sort(([a], [b]) => a.localeCompare(b)))}`;
  }
}

function refusal(type: string, fields: Record<string, unknown>): Refusal {
  return { status: 400, type: 'application/x-amz-json-1.0', body: JSON.stringify({ __type: `com.amazonaws.dynamodb.v20120810#${type}`, ...fields }) };
}
