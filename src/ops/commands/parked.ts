// `parked`: the operator's lever on parked records (docs/design.md,
// "Parking"). `list` shows each park; `redrive` applies parks now, from this
// process, as a worker's redriver would (ledger claims, the account's role),
// instead of waiting for the next round; `drop` gives parked records up: each
// is dead-lettered `parked-dropped` (nothing is lost; `dead-letters redrive`
// puts it back into the stream) and leaves the park.
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { ALL_HASH_KEYS } from '../../contract/hash-key.js';
import { ACCOUNT_ID } from '../../contract/policy-key.js';
import { DynamoDbDeadLetterStore } from '../../deadletter/dead-letter-store.js';
import { isRetriable } from '../../faults/classify.js';
import { buildProcessParts } from '../../intake/process-parts.js';
import { createLogger } from '../../log/logger.js';
import { Metrics } from '../../metrics/metrics.js';
import { DynamoDbParkStore } from '../../park/park-store.js';
import { redrivePark } from '../../park/redriver.js';
import type { ParkSummary } from '../../park/park-store.js';
import { createShardPipeline } from '../../pipeline/create.js';
import type { Command, Values } from '../cli/command.js';
import { COMMON_HELP, UsageError, stringOption } from '../cli/command.js';
import type { OpsContext } from '../cli/context.js';
import { note, print, printJson, table, terminalText } from '../cli/render.js';

const ACTIONS = ['list', 'redrive', 'drop'] as const;

async function selectedParks(store: DynamoDbParkStore, values: Values, policies: string[]): Promise<ParkSummary[]> {
  const account = stringOption(values, 'account');
  if (account !== undefined && !ACCOUNT_ID.test(account)) throw new UsageError(`--account takes a 12-digit account id, not ${JSON.stringify(account)}`);
  const keys = policies.length > 0 ? policies : [...(await store.parkedPolicies())].sort();
  const parks: ParkSummary[] = [];
  for (const key of keys) {
    const park = await store.summary(key);
    if (!park) {
      if (policies.length > 0) note(`no park for ${terminalText(key)} (\`ips parked list\` names the parked policies)`);
      continue;
    }
    if (account === undefined || park.account === account) parks.push(park);
  }
  return parks;
}

function row(park: ParkSummary) {
  return {
    policy: park.policy,
    account: park.account ?? '(own)',
    records: park.records,
    // A re-verification parked (its records settled): run before any record that joins.
    verification: park.verify ? 'owed' : '',
    since: new Date(park.since).toISOString(),
    reason: park.reason,
    shards: park.shards.join(' '),
  };
}

async function redrive(ctx: OpsContext, store: DynamoDbParkStore, parks: ParkSummary[]): Promise<number> {
  const { config, aws } = ctx;
  const logger = createLogger('info', { app: config.appName, component: 'ips-parked' });
  const parts = buildProcessParts(config, aws, logger, new Metrics());
  let failed = 0;
  try {
    const epoch = await parts.ledger.currentEpoch();
    const own = await parts.accounts!.ownIdentity();
    const owner = `${hostname()}/${process.pid}/ips-parked/${randomUUID().slice(0, 8)}`;
    const pipeline = createShardPipeline(
      { ...parts, applier: parts.accounts!.applierFor('ips-parked') },
      { shardId: 'ips-parked', lineage: [], hashKeyRange: ALL_HASH_KEYS, epoch, owner, accounts: parts.accounts!.gate(own.account) },
    );
    for (const park of parks) {
      try {
        const { records, settlements, verificationOwed } = await redrivePark(store, (policy, parked, verify) => pipeline.redrive(policy, parked, verify), park);
        const outcomes = settlements.map((s) => s.outcome).join(', ');
        const verification = verificationOwed ? '; its re-verification still waits for the account' : park.verify ? '; IAM re-verified' : '';
        print(`${terminalText(park.policy)}: ${records.length} record(s) applied${outcomes ? ` (${outcomes})` : ''}${verification}`);
      } catch (error) {
        if (!isRetriable(error)) throw error;
        failed++;
        print(`${terminalText(park.policy)}: still parked: ${terminalText((error as Error).message)}`);
      }
    }
  } finally {
    parts.accounts?.destroy();
  }
  return failed === 0 ? 0 : 1;
}

async function drop(ctx: OpsContext, store: DynamoDbParkStore, parks: ParkSummary[]): Promise<number> {
  const letters = new DynamoDbDeadLetterStore(ctx.aws.dynamodb, ctx.config.deadLetterTable);
  const logger = createLogger('info', { app: ctx.config.appName, component: 'ips-parked' });
  for (const park of parks) {
    const records = await store.records(park.policy);
    for (const { record, event } of records) {
      await letters.store({
        record,
        partitionKey: record.partitionKey,
        reason: 'parked-dropped',
        detail: `dropped from the park of ${park.policy} (parked since ${new Date(park.since).toISOString()}: ${park.reason})`,
        data: record.data,
        eventId: event.eventId,
        policyName: event.policyName,
        ...(event.account !== undefined ? { account: event.account } : {}),
        ...(record.arrivedAt !== undefined ? { arrivedAt: record.arrivedAt } : {}),
      });
    }
    await store.release(
      park.policy,
      records.map((record) => record.id),
    );
    logger.warn({ policy: park.policy, account: park.account, records: records.length }, 'parked records dropped to the dead-letter store');
    print(`${terminalText(park.policy)}: ${records.length} record(s) dead-lettered parked-dropped`);
  }
  return 0;
}

export const parkedCommand: Command = {
  name: 'parked',
  summary: 'list, redrive or drop the records parked while their account was unavailable',
  help: `Usage: ips parked list [--account A] [--json] [--local]
       ips parked redrive [<policy>...] [--account A] [--local]
       ips parked drop (<policy>... | --all) [--account A] [--yes] [--local]

Records whose account's IAM stayed unavailable for IPS_PARK_AFTER_MS are
parked in the ledger table (docs/design.md, "Parking"), in order, and every
later record of the policy joins them. Workers try them again every
IPS_REDRIVE_EVERY_MS. A policy is named by its key: <account>/<name>, or
<name> for the worker's own account.

  list       each park: policy, account, records, since when, why
  redrive    apply the parks now, from this process (the same claims and
             roles a worker uses); exit code 1 if any is still unavailable
  drop       give the parked records up: each is dead-lettered
             parked-dropped (redrive it later with ips dead-letters), and
             the park goes
  --account  only the parks of this account
  --all      drop: every park (with --account: every park of it)
  -y, --yes  drop without asking

${COMMON_HELP}`,
  options: {
    account: { type: 'string' },
    all: { type: 'boolean' },
    yes: { type: 'boolean', short: 'y' },
  },
  positionals: true,
  async run(ctx, values, positionals) {
    const [action, ...policies] = positionals;
    if (!ACTIONS.includes(action as (typeof ACTIONS)[number])) throw new UsageError(`name an action: ${ACTIONS.join(', ')}`);
    const store = new DynamoDbParkStore(ctx.aws.dynamodb, ctx.config.ledgerTable);
    if (action === 'drop' && policies.length === 0 && values.all !== true) throw new UsageError('drop: name the parked policies, or --all');
    const parks = await selectedParks(store, values, policies);
    if (action === 'list') {
      if (ctx.json) printJson(parks.map(row));
      else if (parks.length === 0) print('No records are parked.');
      else print(table(parks.map(row), ['policy', 'account', 'records', 'since', 'reason', 'shards']));
      return 0;
    }
    if (parks.length === 0) {
      print('No parks selected; nothing to do.');
      return 0;
    }
    if (action === 'redrive') return redrive(ctx, store, parks);
    const records = parks.reduce((n, park) => n + park.records, 0);
    if (values.yes !== true && !(await ctx.confirm(`Dead-letter ${records} parked record(s) of ${parks.length} polic${parks.length === 1 ? 'y' : 'ies'}?`))) {
      note(process.stdin.isTTY ? 'Not confirmed; nothing changed.' : 'Not confirmed (no terminal to ask): pass --yes. Nothing changed.');
      return 1;
    }
    return drop(ctx, store, parks);
  },
};
