// The in-memory ledger the unit tests use keeps the ledger's contract
// (test/contract/ledger-contract.ts), the same suite the DynamoDB ledger passes.
import test from 'ava';
import { LATE_WRITE_MS, ledgerContract } from '../contract/ledger-contract.js';
import { MemoryLedger } from '../support/fakes.js';

ledgerContract(test, 'in-memory ledger', ({ claimTtlMs, eventIdTtlDays, now }) => new MemoryLedger(claimTtlMs, now, LATE_WRITE_MS, eventIdTtlDays));
