// `status`: where each shard stands (lease owner, checkpoint, parents,
// children, lag), what each record processor is doing (the oldest record
// without an outcome and the policy holding it, the last minute's outcomes:
// intake/progress.ts), and how much the ledger, the dead-letter store and IAM
// hold. `--watch` follows it live.
import { paginateScan } from '@aws-sdk/client-dynamodb';
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { readProgress } from '../../intake/progress.js';
import type { ProgressItem } from '../../intake/progress.js';
import { listPolicies } from '../../iam/policies.js';
import { splitPolicyKey } from '../../contract/policy-key.js';
import { LEDGER_KEY } from '../../ledger/table.js';
import type { Command } from '../cli/command.js';
import { COMMON_HELP, numberOption } from '../cli/command.js';
import type { OpsContext } from '../cli/context.js';
import { jsonText, print, printJson, table, terminalLines } from '../cli/render.js';
import { readLeases } from '../lease-table.js';
import { childrenOf, listShards } from '../../stream/shard-tree.js';
import { lagBehind } from '../shard-positions.js';
import { DynamoDbParkStore } from '../../park/park-store.js';

/** A progress item older than this says nothing about the last minute (its child is gone or idle since). */
const PROGRESS_FRESH_MS = 3 * 60_000;
/** In --watch, the counts that scan whole tables are taken again this often. */
const COUNTS_EVERY_MS = 60_000;

/** The name status gives the workers' own account (ledger keys and dead letters without an account). */
export const OWN_ACCOUNT = 'own';

/** Dead letters by status, and the open ones by reason and by account (the table holds exceptions, not traffic). */
async function deadLetterCounts(dynamodb: DynamoDBClient, tableName: string): Promise<StatusReport['deadLetters']> {
  const counts = { open: 0, redriven: 0, openByReason: {} as Record<string, number>, openByAccount: {} as Record<string, number> };
  const input = { TableName: tableName, ProjectionExpression: '#s, reason, account', ExpressionAttributeNames: { '#s': 'status' } };
  for await (const page of paginateScan({ client: dynamodb }, input)) {
    for (const item of page.Items ?? []) {
      const reason = item.reason?.S ?? 'unknown';
      const account = item.account?.S ?? OWN_ACCOUNT;
      if (item.status?.S === 'redriven') counts.redriven++;
      else {
        counts.open++;
        counts.openByReason[reason] = (counts.openByReason[reason] ?? 0) + 1;
        counts.openByAccount[account] = (counts.openByAccount[account] ?? 0) + 1;
      }
    }
  }
  return counts;
}

/** Policies the ledger has seen, in all and by the account their key names (contract/policy-key.ts). */
async function ledgerCounts(dynamodb: DynamoDBClient, tableName: string): Promise<{ total: number; byAccount: Record<string, number> }> {
  const counts = { total: 0, byAccount: {} as Record<string, number> };
  const input = { TableName: tableName, FilterExpression: 'attribute_exists(hwm)', ProjectionExpression: '#k', ExpressionAttributeNames: { '#k': LEDGER_KEY } };
  for await (const page of paginateScan({ client: dynamodb }, input)) {
    for (const item of page.Items ?? []) {
      const account = splitPolicyKey(item[LEDGER_KEY]?.S ?? '').account ?? OWN_ACCOUNT;
      counts.total++;
      counts.byAccount[account] = (counts.byAccount[account] ?? 0) + 1;
    }
  }
  return counts;
}

/** Parked records (docs/design.md, "Parking"): in all, policies, by account. */
async function parkedCounts(store: DynamoDbParkStore): Promise<StatusReport['parked']> {
  const counts = { records: 0, policies: 0, byAccount: {} as Record<string, number> };
  for (const policy of await store.parkedPolicies()) {
    const park = await store.summary(policy);
    if (!park) continue;
    const account = park.account ?? OWN_ACCOUNT;
    counts.policies++;
    counts.records += park.records;
    counts.byAccount[account] = (counts.byAccount[account] ?? 0) + park.records;
  }
  return counts;
}

export interface ShardStatus {
  shard: string;
  state: 'open' | 'closed';
  owner: string;
  checkpoint: string;
  parents: string;
  children: string;
  lagMs: number | undefined;
  pending: boolean | undefined;
  /** What the shard's record processor last reported (intake/progress.ts), if it did. */
  progress?: ProgressItem & {
    /** How long the oldest record without an outcome has waited, now (from its arrival in the stream). */
    oldestUnsettledAgeMs?: number;
    /** How long ago the processor reported. */
    reportedMsAgo: number;
  };
}

interface Counts {
  ledgerEntries: number;
  ledgerByAccount: Record<string, number>;
  managedPolicies: number;
  at: number;
}

export interface StatusReport {
  at: string;
  stream: string;
  leaseTable: string;
  ledgerEntries: number;
  managedPolicies: number;
  managedPathPrefix: string;
  deadLetters: { open: number; redriven: number; openByReason: Record<string, number>; openByAccount: Record<string, number> };
  /** Records parked while their account was unavailable, waiting for the redriver (`ips parked list`). */
  parked: { records: number; policies: number; byAccount: Record<string, number> };
  /**
   * Per account the workers write to (`own`, and each of IPS_TARGET_ACCOUNTS)
   * and any other a ledger entry or open dead letter names: policies the
   * ledger has seen, open dead letters, and whether it is allowed.
   */
  accounts: { account: string; allowed: boolean; ledgerEntries: number; openDeadLetters: number; parkedRecords: number }[];
  /** Outcomes of the last minute over every shard whose processor reported lately. */
  lastMinute: Record<string, number>;
  shards: ShardStatus[];
}

async function gather(ctx: OpsContext, counts: Counts | undefined): Promise<{ report: StatusReport; counts: Counts }> {
  const { config, aws } = ctx;
  const [shards, leases] = await Promise.all([listShards(aws.kinesis, config.streamName), readLeases(aws.dynamodb, config.leaseTable)]);
  const leaseOf = new Map(leases.map((lease) => [lease.shardId, lease]));
  const [progress, deadLetters, parked, fresh] = await Promise.all([
    readProgress(
      aws.dynamodb,
      config.ledgerTable,
      shards.map((shard) => shard.shardId),
    ),
    deadLetterCounts(aws.dynamodb, config.deadLetterTable),
    parkedCounts(new DynamoDbParkStore(aws.dynamodb, config.ledgerTable)),
    counts && Date.now() - counts.at < COUNTS_EVERY_MS
      ? Promise.resolve(counts)
      : Promise.all([ledgerCounts(aws.dynamodb, config.ledgerTable), listPolicies(aws.iam, config.managedPathPrefix)]).then(([ledger, policies]) => ({
          ledgerEntries: ledger.total,
          ledgerByAccount: ledger.byAccount,
          managedPolicies: policies.length,
          at: Date.now(),
        })),
  ]);
  const now = Date.now();
  const shardRows = await Promise.all(
    shards.map(async (shard): Promise<ShardStatus> => {
      const lease = leaseOf.get(shard.shardId);
      const lag = await lagBehind(aws.kinesis, config.streamName, shard.shardId, lease?.checkpoint);
      const item = progress.get(shard.shardId);
      const oldest = item?.batch?.oldestUnsettled;
      return {
        shard: shard.shardId,
        state: shard.closed ? 'closed' : 'open',
        owner: lease ? (lease.owner ?? '(free)') : '(no lease)',
        checkpoint: lease?.checkpoint ?? '-',
        parents: shard.parents.join(',') || '-',
        children: childrenOf(shards, shard.shardId).join(',') || '-',
        lagMs: lag?.millisBehind,
        pending: lag?.pending,
        ...(item
          ? {
              progress: {
                ...item,
                reportedMsAgo: Math.max(0, now - item.updatedAt),
                ...(oldest ? { oldestUnsettledAgeMs: Math.max(0, now - (oldest.arrivedAt ?? oldest.receivedAt)) } : {}),
              },
            }
          : {}),
      };
    }),
  );
  const lastMinute: Record<string, number> = {};
  for (const row of shardRows) {
    if (!row.progress || row.progress.reportedMsAgo > PROGRESS_FRESH_MS) continue;
    for (const [outcome, count] of Object.entries(row.progress.outcomes)) lastMinute[outcome] = (lastMinute[outcome] ?? 0) + count;
  }
  const report: StatusReport = {
    at: new Date(now).toISOString(),
    stream: config.streamName,
    leaseTable: config.leaseTable,
    ledgerEntries: fresh.ledgerEntries,
    managedPolicies: fresh.managedPolicies,
    managedPathPrefix: config.managedPathPrefix,
    deadLetters,
    parked,
    accounts: [...new Set([OWN_ACCOUNT, ...config.targetAccounts, ...Object.keys(fresh.ledgerByAccount), ...Object.keys(deadLetters.openByAccount), ...Object.keys(parked.byAccount)])].map(
      (account) => ({
        account,
        allowed: account === OWN_ACCOUNT || config.targetAccounts.includes(account),
        ledgerEntries: fresh.ledgerByAccount[account] ?? 0,
        openDeadLetters: deadLetters.openByAccount[account] ?? 0,
        parkedRecords: parked.byAccount[account] ?? 0,
      }),
    ),
    lastMinute,
    shards: shardRows,
  };
  return { report, counts: fresh };
}

const seconds = (ms: number | undefined) => (ms === undefined ? '-' : ms < 10_000 ? `${(ms / 1000).toFixed(1)}s` : `${Math.round(ms / 1000)}s`);
const outcomeList = (outcomes: Record<string, number>) =>
  Object.entries(outcomes)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([outcome, count]) => `${outcome}=${count}`)
    .join(' ') || 'none';

/**
 * A Kinesis sequence number is up to 56 digits; printed whole it makes the
 * shard table about 160 columns wide. Its head and tail tell checkpoints
 * apart on a screen (the tail moves record by record, the head names the
 * shard's epoch); --json keeps the full number for scripts. Names such as
 * TRIM_HORIZON and SHARD_END stay as they are.
 */
export function shortSequence(value: string): string {
  return /^\d{21,}$/.test(value) ? `${value.slice(0, 6)}…${value.slice(-10)}` : value;
}

export function renderStatus(report: StatusReport, config: { deadLetterTable: string }): string {
  const lines: string[] = [];
  lines.push(`Stream ${report.stream}, lease table ${report.leaseTable}  (${report.at})`, '');
  lines.push(
    table(
      report.shards.map(({ progress: _progress, ...row }) => ({
        ...row,
        checkpoint: shortSequence(row.checkpoint),
        lagMs: row.lagMs ?? '?',
        pending: row.pending === undefined ? '?' : row.pending ? 'yes' : 'no',
      })),
      ['shard', 'state', 'owner', 'checkpoint', 'parents', 'children', 'lagMs', 'pending'],
    ),
  );
  lines.push('', "Record processors (progress reported by each shard's child):");
  lines.push(
    table(
      report.shards.map((row) => {
        const progress = row.progress;
        const oldest = progress?.batch?.oldestUnsettled;
        return {
          shard: row.shard,
          batch: progress?.state === 'shard-ended' ? 'shard ended' : progress?.batch ? `${progress.batch.settled}/${progress.batch.records} settled` : progress ? 'idle' : '-',
          oldestUnsettled: seconds(progress?.oldestUnsettledAgeMs),
          policy: oldest?.partitionKey ?? '-',
          lastMinute: progress ? outcomeList(progress.outcomes) : '-',
          reported: progress ? `${seconds(progress.reportedMsAgo)} ago` : 'never',
        };
      }),
      ['shard', 'batch', 'oldestUnsettled', 'policy', 'lastMinute', 'reported'],
    ),
  );
  lines.push('');
  lines.push(`Outcomes in the last minute: ${outcomeList(report.lastMinute)}`);
  lines.push(`Ledger entries (policies seen): ${report.ledgerEntries}`);
  const reasons = Object.keys(report.deadLetters.openByReason).length > 0 ? ` (${outcomeList(report.deadLetters.openByReason)})` : '';
  lines.push(`Dead letters: ${report.deadLetters.open} open${reasons}, ${report.deadLetters.redriven} redriven (${config.deadLetterTable})`);
  lines.push(
    `Parked records: ${report.parked.records}${report.parked.records > 0 ? ` in ${report.parked.policies} polic${report.parked.policies === 1 ? 'y' : 'ies'}, waiting for their account (ips parked list)` : ''}`,
  );
  lines.push(`Managed policies in IAM under ${report.managedPathPrefix} (own account): ${report.managedPolicies}`);
  if (report.accounts.length > 1) {
    lines.push('', "Accounts (own: the workers' own; the others IPS_TARGET_ACCOUNTS):");
    lines.push(
      table(
        report.accounts.map((a) => ({ account: a.account, allowed: a.allowed ? 'yes' : 'no', policies: a.ledgerEntries, openDeadLetters: a.openDeadLetters, parked: a.parkedRecords })),
        ['account', 'allowed', 'policies', 'openDeadLetters', 'parked'],
      ),
    );
  }
  return lines.join('\n');
}

export const statusCommand: Command = {
  name: 'status',
  summary: 'shards, leases, checkpoints, lag, oldest unsettled record; outcomes, dead letters, counts (--watch: live)',
  help: `Usage: ips status [--watch [--interval <s>] [--refreshes <n>]] [--json] [--local]

Shows, per shard: the worker holding its lease, its checkpoint, its parent and
child shards, and how far the checkpoint is behind the tip of the shard
(MillisBehindLatest; "pending" when records wait behind the checkpoint).
A checkpoint shows its first 6 and last 10 digits; --json gives it whole.
Then what each shard's record processor last reported: the batch in flight,
the age of its oldest record without an outcome (nothing after it is
checkpointed) and the policy that record belongs to, and the last minute's
outcomes. Then: the outcomes of the last minute over all shards, ledger
entries (one per policy), open dead letters by reason and redriven ones, and
the number of policies under the managed path in IAM.

  --watch          refresh until Ctrl-C (the ledger and IAM counts once a minute)
  --interval <s>   seconds between refreshes (default 5)
  --refreshes <n>  stop after n refreshes
With --json and --watch, one JSON object per line and refresh.

${COMMON_HELP}`,
  options: {
    watch: { type: 'boolean', short: 'w' },
    interval: { type: 'string' },
    refreshes: { type: 'string' },
  },
  async run(ctx, values) {
    const intervalMs = numberOption(values, 'interval', 5, { min: 1, max: 3_600 }) * 1000;
    const refreshes = numberOption(values, 'refreshes', 0, { min: 1, max: 1_000_000 });
    if (values.watch !== true) {
      const { report } = await gather(ctx, undefined);
      if (ctx.json) printJson(report);
      else print(renderStatus(report, ctx.config));
      return 0;
    }
    const stopped = new AbortController();
    const stop = () => stopped.abort();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    const clear = process.stdout.isTTY && !ctx.json;
    let counts: Counts | undefined;
    try {
      for (let n = 1; !stopped.signal.aborted; n++) {
        const gathered = await gather(ctx, counts);
        counts = gathered.counts;
        if (ctx.json) process.stdout.write(`${jsonText(gathered.report)}\n`);
        else {
          const text = renderStatus(gathered.report, ctx.config);
          process.stdout.write(clear ? `\x1b[H\x1b[2J${terminalLines(text)}\n\nRefreshing every ${intervalMs / 1000} s; Ctrl-C to stop.\n` : `${terminalLines(text)}\n\n`);
        }
        if (refreshes > 0 && n >= refreshes) break;
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, intervalMs);
          stopped.signal.addEventListener(
            'abort',
            () => {
              clearTimeout(timer);
              resolve();
            },
            { once: true },
          );
        });
      }
    } finally {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
    }
    return 0;
  },
};
