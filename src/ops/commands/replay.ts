// `replay`: moves shard checkpoints back so the daemon reads records again.
// Replayed events meet the ledger: in the same epoch they are duplicates (no
// IAM call); with --reapply the ledger moves to a new epoch first, so each
// policy's last replayed event runs the state-aware IAM step again, which
// repairs drift (a policy deleted or edited outside the stream). --dry-run
// changes nothing: it says what a reset would read again and, with
// --reapply, which IAM writes those records would make (ops/plan-records.ts).
import { ledgerFromConfig } from '../../ledger/dynamodb-ledger.js';
import { retry } from '../../faults/retry.js';
import { RETRY } from '../../faults/retry-policies.js';
import type { Command, Values } from '../cli/command.js';
import { COMMON_HELP, UsageError, numberOption, stringOption } from '../cli/command.js';
import type { OpsContext } from '../cli/context.js';
import { note, print, printJson, table } from '../cli/render.js';
import { LeaseChangedError, liveLeases, readLeases, resetLease } from '../lease-table.js';
import type { Lease, ResetPosition } from '../lease-table.js';
import { descendantsOf, listShards } from '../../stream/shard-tree.js';
import type { ShardInfo } from '../../stream/shard-tree.js';
import { NoSuchRecordError, firstRecordSince, positionBefore } from '../shard-positions.js';
import type { IteratorStart } from '../shard-positions.js';
import { readShardRecords } from '../stream-records.js';
import type { ShardRecord } from '../stream-records.js';
import { changesIam, planJson, planRecordsToApply, planSources, planText } from '../plan-records.js';
import type { RecordToPlan } from '../plan-records.js';
import { documentGuardFromConfig } from '../../policy/document-guard.js';
import { parentsFirst, placeOf } from '../../stream/shard-tree.js';
import { jsonText } from '../cli/render.js';

interface PlannedReset {
  lease: Lease;
  to: ResetPosition;
  why: string;
}

type Target = { kind: 'trim-horizon' } | { kind: 'at'; at: Date } | { kind: 'records'; starts: Map<string, string>; positions?: Map<string, ResetPosition> };

function targetOf(values: Values): Target {
  const at = stringOption(values, 'at');
  const shardStarts = (values.shard as string[] | undefined) ?? [];
  const chosen = [values['trim-horizon'] === true, at !== undefined, shardStarts.length > 0].filter(Boolean).length;
  if (chosen !== 1) throw new UsageError('choose exactly one of --trim-horizon, --at <time>, --shard <shardId>=<sequenceNumber>');
  if (values['trim-horizon'] === true) return { kind: 'trim-horizon' };
  if (at !== undefined) {
    const time = new Date(at);
    if (Number.isNaN(time.getTime())) throw new UsageError(`--at must be an ISO 8601 time such as 2026-11-22T10:00:00Z, got ${JSON.stringify(at)}`);
    if (time.getTime() > Date.now()) throw new UsageError(`--at ${time.toISOString()} lies in the future: no record arrived after it yet`);
    return { kind: 'at', at: time };
  }
  const starts = new Map<string, string>();
  for (const spec of shardStarts) {
    const match = /^(shardId-\d+)=(\d{1,129})$/.exec(spec);
    if (!match) throw new UsageError(`--shard must be <shardId>=<sequenceNumber>, e.g. shardId-000000000001=4962..., got ${JSON.stringify(spec)}`);
    starts.set(match[1]!, match[2]!);
  }
  return { kind: 'records', starts };
}

const show = (position: ResetPosition | string | undefined) =>
  position === undefined ? '-' : typeof position === 'string' ? position : position.kind === 'trim-horizon' ? 'TRIM_HORIZON' : position.sequenceNumber;

/**
 * Where each --shard start puts its checkpoint. Checked before anything else
 * (leases, liveness): a shard the stream does not have, or a sequence number
 * no record of the shard carries, is a usage error naming what is there.
 */
async function shardStartPositions(ctx: OpsContext, starts: Map<string, string>, shards: ShardInfo[]): Promise<Map<string, ResetPosition>> {
  const positions = new Map<string, ResetPosition>();
  for (const [shardId, sequenceNumber] of starts) {
    if (!shards.some((shard) => shard.shardId === shardId)) {
      throw new UsageError(`--shard: ${ctx.config.streamName} has no shard ${shardId} (it has ${shards.map((shard) => shard.shardId).join(', ') || 'none'})`);
    }
    try {
      positions.set(shardId, await positionBefore(ctx.aws.kinesis, ctx.config.streamName, shardId, sequenceNumber));
    } catch (error) {
      if (error instanceof NoSuchRecordError)
        throw new UsageError(`--shard: ${error.message}. Give a record's own sequence number (dead-letters show, the producer's log or the processor's outcome lines name them)`);
      throw error;
    }
  }
  return positions;
}

async function plan(ctx: OpsContext, target: Target, leases: Lease[], shards: ShardInfo[]): Promise<{ resets: PlannedReset[]; warnings: string[] }> {
  const { aws, config } = ctx;
  const warnings: string[] = [];
  const leaseOf = new Map(leases.map((lease) => [lease.shardId, lease]));
  for (const shard of shards) {
    if (!leaseOf.has(shard.shardId)) warnings.push(`${shard.shardId} has no lease (the daemon has not seen it yet, or retired it after its children started); it is not replayed`);
  }
  if (target.kind === 'trim-horizon') {
    return { resets: leases.map((lease) => ({ lease, to: { kind: 'trim-horizon' }, why: 'oldest record kept' })), warnings };
  }
  if (target.kind === 'at') {
    const resets: PlannedReset[] = [];
    for (const lease of leases) {
      const first = await firstRecordSince(aws.kinesis, config.streamName, lease.shardId, target.at);
      if (first === undefined) continue; // nothing arrived at or after the time: nothing to replay here
      resets.push({ lease, to: await positionBefore(aws.kinesis, config.streamName, lease.shardId, first), why: `first record since ${target.at.toISOString()} is ${first}` });
    }
    return { resets, warnings };
  }
  const resets = new Map<string, PlannedReset>();
  const positions = target.positions ?? (await shardStartPositions(ctx, target.starts, shards));
  for (const [shardId, sequenceNumber] of target.starts) {
    const lease = leaseOf.get(shardId);
    if (!lease) throw new UsageError(`${shardId} has no lease in ${config.leaseTable}`);
    resets.set(shardId, { lease, to: positions.get(shardId)!, why: `replay from ${sequenceNumber}` });
  }
  // A policy's later events may sit in child shards: replaying a parent
  // without its children would apply older events after newer ones.
  for (const shardId of target.starts.keys()) {
    for (const child of descendantsOf(shards, shardId)) {
      const lease = leaseOf.get(child);
      if (lease && !resets.has(child)) resets.set(child, { lease, to: { kind: 'trim-horizon' }, why: `descends from ${shardId}` });
    }
  }
  return { resets: [...resets.values()], warnings };
}

export const replayCommand: Command = {
  name: 'replay',
  summary: 'reset checkpoints so records are read again (TRIM_HORIZON, a time, or per shard)',
  help: `Usage: ips replay (--trim-horizon | --at <time> | --shard <shardId>=<sequenceNumber>...) [options]

Resets checkpoints in the KCL lease table so workers read records again.
  --trim-horizon        every shard from its oldest record kept
  --at <time>           every shard from its first record at or after an ISO 8601 time
  --shard <id>=<seq>    a shard from record <seq> itself (repeatable); the shards that
                        descend from it are replayed from their start, to keep order per policy

Replayed events are duplicates for the ledger and cause no IAM call, unless:
  --reapply             move the replayed shards to a new ledger epoch first: each policy's
                        last replayed event runs the state-aware IAM step again (repairs
                        drift). With --shard, only those shards and their descendants move;
                        policies elsewhere keep their history

Preview:
  --dry-run             change nothing: say per shard what the reset would read again
                        (records, policies) and, with --reapply, which IAM writes those
                        records would make (the plan of ips plan over them). Exit code 1
                        when --reapply would write to IAM, else 0

Safety:
  --liveness-ms <ms>    how long to watch leases for renewals (default 10000, the KCL's
                        failover time); a lease renewed meanwhile has a live worker
  --force               reset even leases that live workers hold (they lose them and a
                        worker picks them up again from the new checkpoint)
  -y, --yes             do not ask for confirmation

Stop the workers first (or use --force); start them again afterwards.

${COMMON_HELP}`,
  options: {
    'trim-horizon': { type: 'boolean' },
    at: { type: 'string' },
    shard: { type: 'string', multiple: true },
    reapply: { type: 'boolean' },
    force: { type: 'boolean' },
    yes: { type: 'boolean', short: 'y' },
    'liveness-ms': { type: 'string' },
    'dry-run': { type: 'boolean' },
  },
  async run(ctx, values) {
    const { aws, config } = ctx;
    const target = targetOf(values);
    const livenessMs = numberOption(values, 'liveness-ms', 10_000, { min: 0, max: 600_000 });
    const [leases, shards] = await Promise.all([readLeases(aws.dynamodb, config.leaseTable), listShards(aws.kinesis, config.streamName)]);
    if (target.kind === 'records') target.positions = await shardStartPositions(ctx, target.starts, shards);
    if (leases.length === 0) throw new UsageError(`the lease table ${config.leaseTable} holds no leases: nothing to replay (the first worker creates them)`);
    if (values['dry-run'] === true) return dryRun(ctx, values, target, leases, shards);

    note(`Watching leases for ${livenessMs} ms to find live workers...`);
    const live = await liveLeases(aws.dynamodb, config.leaseTable, livenessMs);
    if (live.length > 0 && values.force !== true) {
      note(`Refusing: live workers hold ${live.length} lease(s): ${live.map((l) => `${l.shardId} (${l.owner})`).join(', ')}.`);
      note('Stop the workers and run again, or pass --force to take the leases from them.');
      return 1;
    }

    const { resets, warnings } = await plan(ctx, target, leases, shards);
    for (const warning of warnings) note(`warning: ${warning}`);
    const ledger = ledgerFromConfig(aws.dynamodb, config);
    // A re-apply of chosen shards moves only those shards (and the descendants
    // replayed with them) to a new epoch: policies on other shards keep their
    // history, so late retries there stay duplicates.
    const scope = target.kind === 'records' ? resets.map((reset) => reset.lease.shardId) : undefined;
    const epoch = await ledger.currentEpoch(scope);
    const rows = resets.map(({ lease, to, why }) => ({ shard: lease.shardId, owner: lease.owner ?? '-', from: show(lease.checkpoint), to: show(to), why }));
    if (!ctx.json) {
      print(table(rows, ['shard', 'owner', 'from', 'to', 'why']));
      const where = scope ? `of ${scope.join(', ')}` : 'of every shard';
      print(values.reapply === true ? `Ledger epoch ${where} ${epoch} -> new: replayed events run the IAM step again.` : `Ledger epoch stays ${epoch}: replayed events are duplicates unless new.`);
    }
    if (resets.length === 0) {
      note('Nothing to replay.');
      if (ctx.json) printJson({ resets: [], epoch });
      return 0;
    }
    if (values.yes !== true && !(await ctx.confirm(`Reset ${resets.length} checkpoint(s)?`))) {
      note(process.stdin.isTTY ? 'Not confirmed; nothing changed.' : 'Not confirmed (no terminal to ask): pass --yes to run without asking. Nothing changed.');
      return 1;
    }

    const newEpoch = values.reapply === true ? await ledger.advanceEpoch(scope) : epoch;
    for (const reset of resets) {
      let lease = reset.lease;
      // A live worker renewed between our read and our write: with --force, read again and retry (RETRY.leaseReset).
      await retry(
        RETRY.leaseReset,
        async ({ index }) => {
          if (index > 0) lease = (await readLeases(aws.dynamodb, config.leaseTable)).find((l) => l.shardId === lease.shardId) ?? lease;
          await resetLease(aws.dynamodb, config.leaseTable, lease, reset.to);
        },
        { retriable: (error) => error instanceof LeaseChangedError && values.force === true },
      );
    }
    if (ctx.json) printJson({ resets: rows, epoch: newEpoch });
    else print(`Reset ${resets.length} checkpoint(s).${newEpoch !== epoch ? ` Ledger epoch is now ${newEpoch}.` : ''} Workers pick the leases up from there.`);
    return 0;
  },
};

/**
 * The reset's preview (--dry-run): what each shard would read again, the
 * records between the new checkpoint and the current one (every record kept,
 * for a shard already ended), and with --reapply the plan of those records in
 * a new epoch, where the ledger's entries count as none (ops/plan-records.ts).
 * No lease, epoch or IAM policy is touched, and no liveness watch is needed.
 */
async function dryRun(ctx: OpsContext, values: Values, target: Target, leases: Lease[], shards: ShardInfo[]): Promise<number> {
  const { aws, config } = ctx;
  const ignored = ['force', 'yes', 'liveness-ms'].filter((option) => values[option] !== undefined).map((option) => `--${option}`);
  if (ignored.length > 0) note(`warning: ${ignored.join(', ')} ignored with --dry-run: it changes nothing, so it asks nothing and need not watch for live workers`);
  const { resets, warnings } = await plan(ctx, target, leases, shards);
  for (const warning of warnings) note(`warning: ${warning}`);
  const reapply = values.reapply === true;
  const reread = new Map<string, ShardRecord[]>();
  for (const { lease, to } of resets) {
    const shard = shards.find((candidate) => candidate.shardId === lease.shardId);
    const last = lease.checkpoint === 'SHARD_END' ? undefined : /^\d+$/.test(lease.checkpoint ?? '') ? lease.checkpoint : null;
    // A checkpoint at TRIM_HORIZON, LATEST or AT_TIMESTAMP has read nothing yet: nothing is read again.
    if (!shard || last === null) {
      reread.set(lease.shardId, []);
      continue;
    }
    const start: IteratorStart = to.kind === 'trim-horizon' ? { ShardIteratorType: 'TRIM_HORIZON' } : { ShardIteratorType: 'AFTER_SEQUENCE_NUMBER', StartingSequenceNumber: to.sequenceNumber };
    reread.set(lease.shardId, (await readShardRecords(aws.kinesis, config.streamName, shard, start, last)).records);
  }
  const rows = resets.map(({ lease, to, why }) => {
    const records = reread.get(lease.shardId) ?? [];
    return {
      shard: lease.shardId,
      owner: lease.owner ?? '-',
      from: show(lease.checkpoint),
      to: show(to),
      records: records.length,
      policies: new Set(records.map((record) => record.partitionKey)).size,
      why,
    };
  });
  const ledger = ledgerFromConfig(aws.dynamodb, config);
  const scope = target.kind === 'records' ? resets.map((reset) => reset.lease.shardId) : undefined;
  const epoch = await ledger.currentEpoch(scope);
  let planned: Awaited<ReturnType<typeof planRecordsToApply>> = [];
  if (reapply) {
    const toPlan: RecordToPlan[] = [];
    for (const shard of parentsFirst(shards.filter((candidate) => reread.has(candidate.shardId)))) {
      const { lineage, hashKeyRange } = placeOf(shards, shard.shardId)!;
      for (const record of reread.get(shard.shardId)!) {
        const position = { shardId: record.shardId, sequenceNumber: record.sequenceNumber, subSequenceNumber: record.subSequenceNumber };
        // A new epoch lies above every entry's: each entry counts as none, as for the workers after the reset.
        toPlan.push({
          where: `${record.shardId}#${record.sequenceNumber}#${record.subSequenceNumber}`,
          data: record.data,
          partitionKey: record.partitionKey,
          record: { ...position, lineage },
          hashKeyRange,
          epoch: Number.MAX_SAFE_INTEGER,
        });
      }
    }
    planned = await planRecordsToApply(planSources(config, aws, ledger, documentGuardFromConfig(config), ctx.env ? { env: ctx.env } : {}), toPlan);
  }
  if (ctx.json) {
    print(jsonText({ dryRun: true, resets: rows, epoch, reapply, ...(reapply ? { plan: planned.map(planJson) } : {}) }, 2));
  } else {
    print(table(rows, ['shard', 'owner', 'from', 'to', 'records', 'policies', 'why']));
    const total = rows.reduce((sum, row) => sum + row.records, 0);
    print(`Dry run: nothing changed. The reset would read ${total} record(s) again.`);
    if (reapply) {
      print(`With --reapply the ledger epoch would move past ${epoch}, and the records read again would write to IAM:`);
      print(planned.length === 0 ? 'No records to plan.' : planText(planned, { writesOnly: true }));
    } else print(`Ledger epoch stays ${epoch}: records read again are duplicates unless new.`);
  }
  return reapply && changesIam(planned) ? 1 : 0;
}
