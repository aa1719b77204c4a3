// `drift`: audits IAM against the ledger (ops/drift-audit.ts) and, with
// --repair, converges what drifted through the ledger's claims, as a worker's
// re-verification does. Exit code 1 when drift is found, when some policy
// could not be audited, or when the audit could not run (or, with --repair,
// when some of it is left). With a metrics sink set (the CloudWatch agent's
// endpoint, as the stack's scheduled audit has, or IPS_METRICS_SINK), the
// audit also publishes how many policies drifted (METRIC.driftFound) and
// whether it judged everything (METRIC.driftAuditFailed), which the stack's
// drift alarms watch; they count an audit that publishes nothing as failed.
import { DescribeTableCommand } from '@aws-sdk/client-dynamodb';
import { ledgerFromConfig } from '../../ledger/dynamodb-ledger.js';
import { reconcilerApplier } from '../../intake/applier.js';
import { AccountTargets } from '../../intake/account-targets.js';
import { IamReconciler } from '../../iam/reconciler.js';
import { createLogger } from '../../log/logger.js';
import type { Config } from '../../config/config.js';
import { EmfPublisher, sinkFor } from '../../metrics/emf.js';
import type { LineWriter } from '../../metrics/emf.js';
import { METRIC, Metrics } from '../../metrics/metrics.js';
import type { Command } from '../cli/command.js';
import { COMMON_HELP } from '../cli/command.js';
import { note, print, printJson, table } from '../cli/render.js';
import { startProgress } from '../cli/progress.js';
import { auditAccounts } from '../audit-accounts.js';
import type { AuditResult } from '../drift-audit.js';
import { repairOwner, repairPolicy } from '../drift-repair.js';
import type { RepairResult } from '../drift-repair.js';
import { UsageError, stringOption } from '../cli/command.js';

export const driftCommand: Command = {
  name: 'drift',
  summary: 'compare IAM with the ledger (no stream needed); --repair converges what drifted',
  help: `Usage: ips drift [--account <id>] [--repair [--yes]] [--json] [--local]

Compares every policy the ledger knows with IAM: the ledger's last applied
desired state (path, document, tags; present or deleted) against IAM's policy
(default version's document by meaning, tags and the managed-by tag, path,
versions). Also lists policies under the managed path tagged managed-by=<app>
that the ledger never saw. Kinds of drift:

  missing              the ledger says present, IAM has no such policy
  path                 IAM has the name under another path
  document             the default version is not the document last applied
  tags                 the tags differ (+added -removed changed)
  ownership-tag        the managed-by tag is missing or not ours
  too-many-versions    more than 5 versions
  present-but-deleted  the ledger says deleted, IAM has our policy
  unknown-to-ledger    ours by path and tag, never in the ledger

Policies a worker is changing right now (a live claim), or changed within
IPS_IAM_VISIBILITY_WINDOW_MS, are listed as not judged. The audit lists IAM's
policies a page per 1,000 (GetAccountAuthorizationDetails) and looks only
under the managed path; it reads tags (ListPolicyTags) of policies with tags
besides managed-by and of a sample of the others (docs/operations.md); a policy it may not read (access-denied) or
cannot read (read-failed) is listed as not audited, and the audit goes on.

Every account the workers write to is audited: their own and each of
IPS_TARGET_ACCOUNTS, a target account's IAM read through its role
(IPS_TARGET_ROLE_NAME); a policy of a target account is named
<account>/<name>, as its ledger key. An account whose role cannot be assumed
is listed as not audited.

Exit code: 0 no drift and every policy audited, 1 drift found, a policy not
audited, or the audit could not run.

  --account <id>  audit only this account (the workers' own or one of IPS_TARGET_ACCOUNTS)
  --repair   converge each drifted policy to the ledger's desired state through
             the ledger's claim protocol (a verification claim, as a worker's
             re-verification): a policy a worker holds is skipped (the worker's
             step re-reads IAM). Path, ownership and unknown policies are never
             touched. Exit code 1 when anything is left.
  -y, --yes  repair without asking

${COMMON_HELP}`,
  options: {
    account: { type: 'string' },
    repair: { type: 'boolean' },
    yes: { type: 'boolean', short: 'y' },
  },
  async run(ctx, values) {
    const { aws, config } = ctx;
    if (values.yes === true && values.repair !== true) note('warning: --yes is ignored without --repair: an audit changes nothing and asks nothing');
    const ledger = ledgerFromConfig(aws.dynamodb, config);
    // An estimate for the progress bar (DynamoDB refreshes it every few hours); corrected at the end.
    const estimate = await aws.dynamodb
      .send(new DescribeTableCommand({ TableName: config.ledgerTable }))
      .then((table) => table.Table?.ItemCount ?? 0)
      .catch(() => 0);
    const progress = startProgress(Math.max(estimate, 1), { format: 'Auditing [{bar}] {value}/{total} policies' });
    let shown = 0;
    const metrics = new Metrics();
    const logger = createLogger('error', { app: config.appName, component: 'ips-drift' });
    // The audit judged only entries older than IAM's visibility window and saw what IAM shows:
    // an absence is taken as one at once, not waited for as read lag.
    const own = reconcilerApplier(new IamReconciler({ iam: aws.iam, sts: aws.sts, config, metrics, logger, visibilityWindowMs: 0 }));
    const targets = new AccountTargets({ config, logger, metrics, sts: aws.sts, own, visibilityWindowMs: 0, ...(ctx.env ? { clientOptions: { env: ctx.env } } : {}) });
    // The target accounts' clients go when the command's context closes (ops/cli.ts closes it after every command).
    const close = ctx.close;
    ctx.close = () => {
      targets.destroy();
      close();
    };
    let result: AuditResult;
    try {
      const me = await targets.ownIdentity();
      const wanted = stringOption(values, 'account');
      if (wanted !== undefined && wanted !== me.account && !config.targetAccounts.includes(wanted)) {
        throw new UsageError(`--account ${wanted} is neither the workers' own account (${me.account}) nor one of IPS_TARGET_ACCOUNTS (${config.targetAccounts.join(', ') || 'none'})`);
      }
      result = await auditAccounts({
        ledger,
        config,
        own: { account: me.account, iam: aws.iam },
        accounts: wanted !== undefined ? [wanted] : [me.account, ...config.targetAccounts],
        iamOf: (account) => targets.clientsOf(account, me.partition, 'ips-drift').iam,
        onProgress: (done) => {
          if (done > estimate) progress.setTotal(done);
          progress.increment(done - shown);
          shown = done;
        },
      });
    } catch (error) {
      // An audit that cannot run says so where the alarms look, then fails as any command does.
      await publishAuditMetrics(config, { failed: true });
      throw error;
    } finally {
      progress.stop();
    }
    const rows = result.drift.map((drift) => ({ policy: drift.policy, drift: drift.kinds.join(','), ledger: drift.ledgerState ?? '-', detail: drift.details.join('; ') }));
    const summary = {
      ledgerEntries: result.ledgerEntries,
      managedPolicies: result.managedPolicies,
      managedPathPrefix: config.managedPathPrefix,
      drifted: result.drift.length,
      drift: result.drift,
      notJudged: result.notJudged,
      failed: result.failed,
    };
    await publishAuditMetrics(config, { drifted: result.drift.length, failed: result.failed.length > 0 });

    if (values.repair !== true) {
      if (ctx.json) printJson(summary);
      else {
        print(result.drift.length === 0 ? 'No drift.' : table(rows, ['policy', 'drift', 'ledger', 'detail']));
        printFooter(result);
      }
      return result.drift.length > 0 || result.failed.length > 0 ? 1 : 0;
    }

    if (!ctx.json) {
      print(result.drift.length === 0 ? 'No drift.' : table(rows, ['policy', 'drift', 'ledger', 'detail']));
      printFooter(result);
    }
    const repairable = result.drift.filter((drift) => !drift.notRepairable);
    const repairs: RepairResult[] = [];
    if (repairable.length > 0) {
      if (values.yes !== true && !(await ctx.confirm(`Converge ${repairable.length} polic${repairable.length === 1 ? 'y' : 'ies'} to the ledger's desired state?`))) {
        note(process.stdin.isTTY ? 'Not confirmed; nothing changed.' : 'Not confirmed (no terminal to ask): pass --yes to repair without asking. Nothing changed.');
        return 1;
      }
      // By the account the ledger entry names: the own account's reconciler, or the target's through its role.
      const applier = targets.applierFor('ips-drift');
      const owner = repairOwner();
      const bar = startProgress(repairable.length, { format: 'Repairing [{bar}] {value}/{total} policies' });
      try {
        for (const drift of repairable) {
          repairs.push(await repairPolicy(drift, owner, { ledger, applier, config }));
          bar.increment();
        }
      } finally {
        bar.stop();
      }
    }
    for (const drift of result.drift) if (drift.notRepairable) repairs.push({ policy: drift.policy, result: 'skipped', why: drift.notRepairable });
    repairs.sort((a, b) => a.policy.localeCompare(b.policy));
    const left = repairs.filter((repair) => repair.result !== 'repaired').length;
    if (ctx.json) printJson({ ...summary, repairs, left });
    else if (repairs.length > 0) {
      print('');
      print(
        table(
          repairs.map((r) => ({ policy: r.policy, repair: r.result === 'repaired' ? `repaired (${r.outcome})` : r.result, why: r.result === 'repaired' ? '' : r.why })),
          ['policy', 'repair', 'why'],
        ),
      );
      print(`${repairs.length - left} repaired, ${left} left.`);
    }
    return left > 0 || result.failed.length > 0 ? 1 : 0;
  },
};

/** What one audit says where the alarms look: how many policies drifted (absent when it could not run), and whether it judged everything. */
export interface AuditMetrics {
  drifted?: number;
  failed: boolean;
}

/**
 * The audit's result as one EMF document (METRIC.driftFound when it ran,
 * METRIC.driftAuditFailed always; dimension set [App]) when a sink is asked
 * for: the CloudWatch agent (AWS_EMF_AGENT_ENDPOINT) or IPS_METRICS_SINK set
 * explicitly. At a terminal with neither, nothing is written. A failed
 * publication is noted on stderr and changes neither the report nor the exit
 * code (the alarms count the missing document as a failed audit).
 */
export async function publishAuditMetrics(config: Config, audit: AuditMetrics, env: Record<string, string | undefined> = process.env, stream: LineWriter = process.stderr): Promise<void> {
  if (config.metricsSink === 'off' || (config.metricsSink === 'stderr' && !env.IPS_METRICS_SINK)) return;
  const sink = sinkFor(config, stream, env);
  if (!sink) return;
  const metrics = new Metrics();
  if (audit.drifted !== undefined) metrics.gauge(METRIC.driftFound, audit.drifted);
  metrics.gauge(METRIC.driftAuditFailed, audit.failed ? 1 : 0);
  await new EmfPublisher({
    metrics,
    sink,
    namespace: config.metricsNamespace,
    app: config.appName,
    worker: config.workerId,
    onError: (error) => note(`drift audit metrics not published: ${error instanceof Error ? error.message : String(error)}`),
  }).publish();
}

function printFooter(result: AuditResult): void {
  print('');
  print(`Checked ${result.ledgerEntries} ledger entries and ${result.managedPolicies} policies under the managed path: ${result.drift.length} drifted.`);
  if (result.notJudged.length > 0) {
    print(`Not judged (${result.notJudged.length}):`);
    print(
      table(
        result.notJudged.map((n) => ({ policy: n.policy, why: n.why, detail: n.detail })),
        ['policy', 'why', 'detail'],
      ),
    );
  }
  if (result.failed.length > 0) {
    print(`Not audited (${result.failed.length}):`);
    print(
      table(
        result.failed.map((f) => ({ policy: f.policy, reason: f.reason, detail: f.detail })),
        ['policy', 'reason', 'detail'],
      ),
    );
  }
}
