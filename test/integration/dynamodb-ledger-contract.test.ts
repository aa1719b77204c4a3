// The DynamoDB ledger on DynamoDB Local keeps the ledger's contract
// (test/contract/ledger-contract.ts), the same suite the unit tests' in-memory ledger passes.
import test from 'ava';
import { DynamoDbLedger } from '../../src/ledger/dynamodb-ledger.js';
import { useTestStack } from '../../tools/harness/stack.js';
import { LATE_WRITE_MS, ledgerContract } from '../contract/ledger-contract.js';

const stackOf = useTestStack(test, { shards: 1 });

ledgerContract(test, 'DynamoDB ledger', ({ claimTtlMs, eventIdTtlDays, now }) => {
  const { config, clients } = stackOf();
  return new DynamoDbLedger(clients().dynamodb, config.ledgerTable, { claimTtlMs, eventIdTtlDays, now, lateWriteMs: LATE_WRITE_MS, archiveTable: config.eventArchiveTable });
});
