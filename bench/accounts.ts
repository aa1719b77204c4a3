// `npm run bench -- --accounts N --iam-rate R`: many accounts from one
// stream, on one worker (one daemon), with IAM's rate limit per account: the
// processor's IAM and STS calls go through the fault proxy, which holds a
// token bucket per account (a key from AssumeRole counts against the account
// of its role) and refuses past it as IAM does.
//
//   aggregate  every account at R calls/s: applied changes/s over all of
//              them, against N x R (the target: at least 0.8)
//   isolation  the same, with one account failing outright (every IAM call
//              503) or throttled to 1 call/s: each other account's changes/s
//              against R (healthy-ratio) and against its own changes/s in the
//              unimpaired run on the same host (vs-unimpaired; the target: at
//              least 0.9 for each), and what became of the failing account's
//              records: parked, or lost (no outcome)
//
// Every event creates a new policy (one IAM write each: an optimistic
// CreatePolicy), so a change costs one call and R calls/s is R changes/s at
// best. An account's rate is its changes divided by the time from the first
// PutRecords to its last change.
import { join } from 'node:path';
import type { LocalStack } from '../tools/local/stack.js';
import { startFaultProxy } from '../tools/harness/fault-proxy.js';
import { readOutcomes } from '../tools/oracle/outcome-log.js';
import { upsertedEvent } from '../src/contract/wire-event.js';
import { eventRecord } from '../src/ops/producer.js';
import type { OutgoingRecord } from '../src/ops/producer.js';
import { policyDocument } from '../src/ops/load.js';
import { runUnderDaemon } from './lib/daemon-run.js';

/** The emulated target accounts a run draws from (the stack provisions each one's role). */
export function benchAccounts(n: number): string[] {
  return Array.from({ length: n }, (_, i) => String(i + 1).repeat(12));
}

export interface AccountsRun {
  scenario: string;
  /** The account that failed or was slowed, if any. */
  impaired?: { account: string; how: 'failing' | 'throttled' };
  eventsPerAccount: number;
  elapsedSeconds: number;
  /** Per account: changes applied, its changes/s, and that against the rate. */
  perAccount: { account: string; changes: number; changesPerSecond: number; ratio: number; parked: number; lost: number }[];
  aggregateChangesPerSecond: number;
  notes: string[];
}

export interface AccountsBenchOptions {
  stack: LocalStack;
  accounts: number;
  rate: number;
  eventsPerAccount: number;
  shards: number;
  parkAfterMs: number;
  workDir: string;
  runTag: string;
  say: (message: string) => void;
}

function records(accounts: string[], perAccount: number, tag: string): OutgoingRecord[] {
  const out: OutgoingRecord[] = [];
  // Round robin over the accounts, so that every batch holds each account's records.
  for (let i = 0; i < perAccount; i++) {
    for (const account of accounts) {
      const name = `acct-${tag}-${i}`;
      out.push(eventRecord(upsertedEvent({ eventId: `${tag}-${account}-${i}`, account, name, document: policyDocument(name, 1) })));
    }
  }
  return out;
}

async function runOne(options: AccountsBenchOptions, scenario: string, impaired?: AccountsRun['impaired']): Promise<AccountsRun> {
  const { stack, rate, eventsPerAccount, shards } = options;
  const accounts = benchAccounts(options.accounts);
  const proxy = await startFaultProxy({
    target: stack.env.AWS_ENDPOINT_URL_IAM!,
    protocol: 'iam',
    rate: 0,
    rateLimit: { ratePerSecond: rate, ...(impaired?.how === 'throttled' ? { perAccount: { [impaired.account]: 1 } } : {}) },
  });
  if (impaired?.how === 'failing') proxy.failAccount(impaired.account, true);
  const tag = `${options.runTag}${scenario}`.replace(/[^a-z0-9]/gi, '').slice(-12);
  const sent = records(accounts, eventsPerAccount, tag);
  try {
    const result = await runUnderDaemon({
      stack,
      processor: 'ours',
      scenario,
      appName: `bench-acct-${tag}`.toLowerCase(),
      streamName: `bench-acct-${tag}`.toLowerCase(),
      shards,
      records: sent,
      env: {
        AWS_ENDPOINT_URL_IAM: proxy.endpoint,
        AWS_ENDPOINT_URL_STS: proxy.endpoint,
        IPS_TARGET_ACCOUNTS: accounts.join(','),
        IPS_PARK_AFTER_MS: String(options.parkAfterMs),
      },
      dir: options.workDir,
      timeoutMs: 15 * 60_000,
      log: options.say,
    });
    const lines = readOutcomes(join(options.workDir, `${scenario}-ours`, 'daemon.log'));
    const lastOutcome = Math.max(...lines.map((line) => line.time));
    const t0 = lastOutcome - result.elapsedMs;
    const perAccount = accounts.map((account) => {
      const mine = lines.filter((line) => line.account === account && !line.redriven);
      const changes = mine.filter((line) => line.outcome === 'created' || line.outcome === 'updated');
      const seconds = changes.length > 0 ? (Math.max(...changes.map((line) => line.time)) - t0) / 1000 : Number.POSITIVE_INFINITY;
      const changesPerSecond = changes.length / seconds;
      const settled = new Set(mine.map((line) => `${line.shard}#${line.sequenceNumber}`));
      return {
        account,
        changes: changes.length,
        changesPerSecond,
        ratio: changesPerSecond / rate,
        parked: mine.filter((line) => line.outcome === 'parked').length,
        lost: eventsPerAccount - settled.size,
      };
    });
    return {
      scenario,
      ...(impaired ? { impaired } : {}),
      eventsPerAccount,
      elapsedSeconds: result.elapsedMs / 1000,
      perAccount,
      aggregateChangesPerSecond: perAccount.reduce((n, a) => n + a.changes, 0) / (result.elapsedMs / 1000),
      notes: result.notes ?? [],
    };
  } finally {
    await proxy.close();
  }
}

export async function runAccountsBench(options: AccountsBenchOptions): Promise<AccountsRun[]> {
  const accounts = benchAccounts(options.accounts);
  const impairedAccount = accounts[accounts.length - 1]!;
  const runs: AccountsRun[] = [];
  options.say(`aggregate: ${options.accounts} accounts at ${options.rate} IAM calls/s each, ${options.eventsPerAccount} new policies each`);
  runs.push(await runOne(options, 'accounts-aggregate'));
  options.say(`isolation: ${impairedAccount} failing outright`);
  runs.push(await runOne(options, 'accounts-failing', { account: impairedAccount, how: 'failing' }));
  options.say(`isolation: ${impairedAccount} throttled to 1 call/s`);
  runs.push(await runOne(options, 'accounts-throttled', { account: impairedAccount, how: 'throttled' }));
  return runs;
}

const f2 = (n: number) => (Number.isFinite(n) ? n.toFixed(2) : '-');

/** The report, ending with one line per measure in the documented form. */
export function accountsReport(runs: AccountsRun[], options: { accounts: number; rate: number }): { text: string; lines: string[] } {
  const text: string[] = [];
  const lines: string[] = [];
  for (const run of runs) {
    text.push(`${run.scenario}${run.impaired ? ` (${run.impaired.account} ${run.impaired.how})` : ''}: ${run.eventsPerAccount} events per account, ${run.elapsedSeconds.toFixed(1)} s`);
    for (const a of run.perAccount) text.push(`  ${a.account}: changes=${a.changes} changes/s=${f2(a.changesPerSecond)} ratio=${f2(a.ratio)} parked=${a.parked} lost=${a.lost}`);
    for (const note of run.notes) text.push(`  note: ${note}`);
    if (!run.impaired) {
      lines.push(
        `accounts aggregate: accounts=${options.accounts} rate=${options.rate} changes/s=${run.aggregateChangesPerSecond.toFixed(1)} ratio=${(run.aggregateChangesPerSecond / (options.accounts * options.rate)).toFixed(2)}`,
      );
    } else {
      const healthy = run.perAccount.filter((a) => a.account !== run.impaired!.account);
      const impaired = run.perAccount.find((a) => a.account === run.impaired!.account)!;
      // Against the same account's rate in this bench's unimpaired run: what the impaired account cost it on this host.
      const unimpaired = runs.find((other) => !other.impaired);
      const against = unimpaired
        ? ` vs-unimpaired=${Math.min(...healthy.map((a) => a.changesPerSecond / (unimpaired.perAccount.find((u) => u.account === a.account)?.changesPerSecond ?? Number.NaN))).toFixed(2)}`
        : '';
      lines.push(
        `accounts isolation: impaired=${run.impaired.how} healthy-ratio=${Math.min(...healthy.map((a) => a.ratio)).toFixed(2)}${against} parked=${impaired.parked} lost=${run.perAccount.reduce((n, a) => n + a.lost, 0)}`,
      );
    }
  }
  return { text: text.join('\n'), lines };
}
