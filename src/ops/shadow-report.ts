// `ips plan --shadow-report`: what a shadow run (IPS_MODE=shadow) planned,
// policy by policy, and where IAM now disagrees with the state the shadow's
// fold of the stream ends at. Read from the shadow's own ledger (the last
// action it planned for each policy and the state that leaves) and judged by
// the drift audit's rules against the IAM of the policy's account, as `ips
// drift` judges (audit-accounts.ts): the workers' own account with the
// caller's credentials, each of IPS_TARGET_ACCOUNTS through its read-only
// audit role (a shadow's configuration names no other). A policy agrees when
// the audit finds no difference. It reads only.
import { DescribeTableCommand, ResourceNotFoundException } from '@aws-sdk/client-dynamodb';
import { loadConfig } from '../config/config.js';
import { targetAccountPool } from '../aws/clients.js';
import type { AwsClients, ClientOptions } from '../aws/clients.js';
import { ledgerFromConfig } from '../ledger/dynamodb-ledger.js';
import { PLANNED_ACTION } from '../shadow/planning-applier.js';
import { auditAccounts } from './audit-accounts.js';
import type { AuditResult } from './drift-audit.js';
import { callerOf } from '../plan/world.js';

export interface ShadowPolicyReport {
  policy: string;
  /** The last action the shadow planned for the policy (what the live processor would have done). */
  planned: string;
  /** The state the shadow's fold leaves the policy in (present, deleted, retained-in-use). */
  state: string;
  /** Whether IAM now holds that state. */
  agrees: boolean;
  /** How IAM differs, in words (the drift audit's). */
  differs: string[];
}

export interface ShadowReport {
  ledgerTable: string;
  /** No shadow ever ran here: its ledger table does not exist. */
  noShadowRun?: boolean;
  policies: ShadowPolicyReport[];
  /** Policies the audit could not judge now (a step in flight, settling, unreadable). */
  notJudged: AuditResult['notJudged'];
  /** Policies, or whole target accounts (`<account>/*`), whose IAM could not be read. */
  failed: AuditResult['failed'];
}

/** `clientOptions`: what the target accounts' clients are built with (an explicit environment). */
export async function shadowReport(env: Record<string, string | undefined>, aws: Pick<AwsClients, 'dynamodb' | 'iam' | 'sts'>, clientOptions: ClientOptions = {}): Promise<ShadowReport> {
  const config = loadConfig({ ...env, IPS_MODE: 'shadow' });
  const exists = await aws.dynamodb.send(new DescribeTableCommand({ TableName: config.ledgerTable })).then(
    () => true,
    (error: unknown) => {
      if (error instanceof ResourceNotFoundException) return false;
      throw error;
    },
  );
  if (!exists) return { ledgerTable: config.ledgerTable, noShadowRun: true, policies: [], notJudged: [], failed: [] };
  const ledger = ledgerFromConfig(aws.dynamodb, config);
  const me = await callerOf(aws.sts);
  const targets = targetAccountPool(config, 'ips-shadow-report', clientOptions);
  let audit: AuditResult;
  try {
    audit = await auditAccounts({
      ledger,
      config,
      own: { account: me.account, iam: aws.iam },
      accounts: [me.account, ...config.targetAccounts],
      iamOf: (account) => targets.iamOf(account, me.partition),
    });
  } finally {
    targets.close();
  }
  const drifted = new Map(audit.drift.map((drift) => [drift.policy, drift]));
  const policies: ShadowPolicyReport[] = [];
  for await (const entry of ledger.entries()) {
    if (entry.lastOutcome === undefined) continue; // never settled a step: nothing planned
    const drift = drifted.get(entry.policy);
    policies.push({
      policy: entry.policy,
      planned: PLANNED_ACTION[entry.lastOutcome] ?? entry.lastOutcome,
      state: entry.state ?? 'unknown',
      agrees: drift === undefined,
      differs: drift?.details ?? [],
    });
  }
  policies.sort((a, b) => a.policy.localeCompare(b.policy));
  return { ledgerTable: config.ledgerTable, policies, notJudged: audit.notJudged, failed: audit.failed };
}
