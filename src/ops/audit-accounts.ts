// Every account the workers write to, audited one after the other (drift-audit.ts
// judges one): their own with the caller's IAM, each target account through
// the role assumed there, which for the drift audit and a shadow is the
// read-only audit role (IPS_TARGET_ROLE_NAME, src/config/config.ts). `ips drift`
// and `ips plan --shadow-report` both judge this way, so a target account's
// policies are judged against that account's IAM by both.
import type { IAMClient } from '@aws-sdk/client-iam';
import type { Config } from '../config/config.js';
import type { DynamoDbLedger } from '../ledger/dynamodb-ledger.js';
import { DriftAudit } from './drift-audit.js';
import type { AuditResult } from './drift-audit.js';

export interface AccountsAuditOptions {
  ledger: DynamoDbLedger;
  config: Config;
  /** The workers' own account, read with the caller's IAM client. */
  own: { account: string; iam: IAMClient };
  /** The accounts to audit, in this order: the own one, target accounts. */
  accounts: string[];
  /** A target account's IAM, through the role assumed there. */
  iamOf(account: string): IAMClient;
  /** How many ledger entries and unknown policies have been looked at so far, over every account. */
  onProgress?: (done: number) => void;
}

/**
 * One result for all the accounts. A target account whose IAM cannot be read
 * (its role not assumable, its listing refused) is listed as not audited
 * (`<account>/*`, read-failed) and the others are audited; when the own
 * account's audit, or the only account's, cannot run, this throws.
 */
export async function auditAccounts(options: AccountsAuditOptions): Promise<AuditResult> {
  const { ledger, config, accounts } = options;
  const results: AuditResult[] = [];
  let done = 0;
  for (const account of accounts) {
    const isOwn = account === options.own.account;
    let seen = 0;
    try {
      const iam = isOwn ? options.own.iam : options.iamOf(account);
      const onProgress = (count: number) => {
        seen = count;
        options.onProgress?.(done + count);
      };
      results.push(await new DriftAudit({ iam, ledger, config, account: { id: account, own: isOwn }, onProgress }).run());
    } catch (error) {
      if (isOwn || accounts.length === 1) throw error;
      results.push({ ledgerEntries: 0, managedPolicies: 0, drift: [], notJudged: [], failed: [{ policy: `${account}/*`, reason: 'read-failed', detail: (error as Error).message.slice(0, 500) }] });
    }
    done += seen;
  }
  return {
    ledgerEntries: results.reduce((n, r) => n + r.ledgerEntries, 0),
    managedPolicies: results.reduce((n, r) => n + r.managedPolicies, 0),
    drift: results.flatMap((r) => r.drift),
    notJudged: results.flatMap((r) => r.notJudged),
    failed: results.flatMap((r) => r.failed),
  };
}
