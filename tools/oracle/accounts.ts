// The invariants account by account. One stream serves many accounts, and a
// policy is `<account>/<name>`: each account's IAM must be the in-order fold
// of its own events, every record with its outcome, none taking effect twice.
// A record belongs to the account its outcome lines name, else to the one its
// event names; a record that names none (or cannot be read) is the worker's
// own account's, as the processor treats it.
import type { IAMClient } from '@aws-sdk/client-iam';
import { checkInvariants } from './invariants.js';
import type { InvariantInput, InvariantReport, SentRecord } from './invariants.js';
import { outcomeRecordId, sentRecordId } from './outcome-log.js';

export interface AccountsInput extends Omit<InvariantInput, 'iam' | 'accountId'> {
  /** The workers' own account: events without `account` act there (and the test's fixtures live there). */
  ownAccount: string;
  /** The IAM of an account as the test reads it (the own credentials, or an assumed role). */
  iamOf: (account: string) => IAMClient;
}

/** The reports of every account that has a record, and their sum (violations prefixed with the account). */
export async function checkInvariantsByAccount(input: AccountsInput): Promise<InvariantReport & { byAccount: Map<string, InvariantReport> }> {
  const { ownAccount, iamOf, sent, outcomes, attached, foreign, ...common } = input;
  const named = new Map<string, string>();
  for (const line of outcomes) if (line.account !== undefined) named.set(outcomeRecordId(line), line.account);
  const fromEvent = new Map<string, string>();
  for (const record of sent) {
    const account = eventAccount(record);
    if (account !== undefined) fromEvent.set(sentRecordId(record.put), account);
  }
  // One rule for both sides, so that a record and its outcome lines are judged in the same account.
  const accountOf = (id: string) => named.get(id) ?? fromEvent.get(id) ?? ownAccount;
  const accounts = new Set([ownAccount, ...sent.map((record) => accountOf(sentRecordId(record.put)))]);
  const byAccount = new Map<string, InvariantReport>();
  for (const account of [...accounts].sort()) {
    const own = account === ownAccount;
    byAccount.set(
      account,
      await checkInvariants({
        ...common,
        sent: sent.filter((record) => accountOf(sentRecordId(record.put)) === account),
        outcomes: outcomes.filter((line) => accountOf(outcomeRecordId(line)) === account),
        iam: iamOf(account),
        accountId: account,
        ...(own && attached ? { attached } : {}),
        ...(own && foreign ? { foreign } : {}),
      }),
    );
  }
  const total: InvariantReport & { byAccount: Map<string, InvariantReport> } = { events: 0, outcomes: {}, violations: [], expected: new Map(), byAccount };
  for (const [account, report] of byAccount) {
    total.events += report.events;
    for (const [outcome, n] of Object.entries(report.outcomes)) total.outcomes[outcome] = (total.outcomes[outcome] ?? 0) + n;
    total.violations.push(...report.violations.map((violation) => `${account}: ${violation}`));
    for (const [name, policy] of report.expected) total.expected.set(`${account}/${name}`, policy);
  }
  return total;
}

/** The account a sent record's event names, if it can be read and names one. */
function eventAccount(record: SentRecord): string | undefined {
  try {
    const account = (JSON.parse(record.record.data.toString()) as { account?: unknown }).account;
    return typeof account === 'string' ? account : undefined;
  } catch {
    return undefined;
  }
}
