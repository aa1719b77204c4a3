// `plan`: what the processor would do now with each event of a file, or of
// the stream from a position, given the ledger and IAM, without doing any of
// it. It reads (IAM Get/List, the ledger's GetItem, Kinesis) and writes
// nothing. Exit code 0 when IAM would not change, 1 when it would, so it can
// gate a deployment.
import { policyKey } from '../../contract/policy-key.js';
import { readFileSync } from 'node:fs';
import { closest } from '../../config/closest-name.js';
import { ALL_HASH_KEYS } from '../../contract/hash-key.js';
import { ledgerFromConfig } from '../../ledger/dynamodb-ledger.js';
import { documentGuardFromConfig } from '../../policy/document-guard.js';
import { listShards, parentsFirst, placeOf } from '../../stream/shard-tree.js';
import type { ShardInfo } from '../../stream/shard-tree.js';
import type { Command, Values } from '../cli/command.js';
import { COMMON_HELP, UsageError, stringOption } from '../cli/command.js';
import type { OpsContext } from '../cli/context.js';
import { note, print, printJson, table } from '../cli/render.js';
import { shadowReport } from '../shadow-report.js';
import type { ShadowReport } from '../shadow-report.js';
import { changesIam, planJsonLines, planRecordsToApply, planSources, planText } from '../plan-records.js';
import type { RecordToPlan } from '../plan-records.js';
import type { IteratorStart } from '../shard-positions.js';
import { readShardRecords } from '../stream-records.js';

type Source = { kind: 'file'; path: string } | { kind: 'stream'; shards: string[]; start: IteratorStart; label: string };

/** An ISO 8601 time in the past, for --at. */
export function pastTime(value: string, option = '--at'): Date {
  const time = new Date(value);
  if (Number.isNaN(time.getTime())) throw new UsageError(`${option} must be an ISO 8601 time such as 2026-11-22T10:00:00Z, got ${JSON.stringify(value)}`);
  if (time.getTime() > Date.now()) throw new UsageError(`${option} ${time.toISOString()} lies in the future: no record arrived after it yet`);
  return time;
}

function sourceOf(values: Values): Source {
  const file = stringOption(values, 'file');
  const fromStream = values['from-stream'] === true;
  const at = stringOption(values, 'at');
  const shards = (values.shard as string[] | undefined) ?? [];
  if ((file !== undefined) === fromStream) throw new UsageError('choose exactly one of --file <events.jsonl> and --from-stream');
  if (file !== undefined) {
    const streamOnly = [values['trim-horizon'] === true && '--trim-horizon', at !== undefined && '--at', shards.length > 0 && '--shard'].filter(Boolean);
    if (streamOnly.length > 0) throw new UsageError(`${streamOnly.join(', ')} only go with --from-stream`);
    return { kind: 'file', path: file };
  }
  if ((values['trim-horizon'] === true) === (at !== undefined)) throw new UsageError('--from-stream needs exactly one of --trim-horizon and --at <time>');
  if (at !== undefined) {
    const time = pastTime(at);
    return { kind: 'stream', shards, start: { ShardIteratorType: 'AT_TIMESTAMP', Timestamp: time }, label: `from ${time.toISOString()}` };
  }
  return { kind: 'stream', shards, start: { ShardIteratorType: 'TRIM_HORIZON' }, label: 'from TRIM_HORIZON' };
}

/** The file's lines (`-`: standard input), as bytes: the decoder judges their encoding, as it judges a record's. */
function fileLines(path: string): { line: number; data: Buffer }[] {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path === '-' ? 0 : path);
  } catch (error) {
    throw new UsageError(`--file: cannot read ${path}: ${(error as Error).message}`);
  }
  const lines: { line: number; data: Buffer }[] = [];
  let start = 0;
  let number = 1;
  while (start <= bytes.length) {
    let end = bytes.indexOf(0x0a, start);
    if (end === -1) end = bytes.length;
    let data = bytes.subarray(start, end);
    if (data.at(-1) === 0x0d) data = data.subarray(0, -1);
    if (data.toString('latin1').trim() !== '') lines.push({ line: number, data });
    start = end + 1;
    number++;
  }
  return lines;
}

/** A line's partition key, as a producer keys its record (the contract's rule): `<account>/<name>`, or the name. */
function partitionKeyOf(data: Buffer): string {
  try {
    const event = JSON.parse(data.toString('utf8')) as { account?: unknown; policy?: { name?: unknown } };
    const name = event?.policy?.name;
    if (typeof name !== 'string') return '';
    return typeof event.account === 'string' ? policyKey({ account: event.account, policyName: name }) : name;
  } catch {
    return '';
  }
}

/** The stream's shards the plan reads: those named (each checked, a typo answered with the one meant), else all. */
export function chosenShards(ctx: OpsContext, shards: ShardInfo[], named: string[]): ShardInfo[] {
  for (const shardId of named) {
    if (shards.some((shard) => shard.shardId === shardId)) continue;
    const guess = closest(
      shardId,
      shards.map((shard) => shard.shardId),
    );
    throw new UsageError(`--shard: ${ctx.config.streamName} has no shard ${shardId}${guess ? `; did you mean ${guess}?` : ` (it has ${shards.map((shard) => shard.shardId).join(', ') || 'none'})`}`);
  }
  return parentsFirst(named.length > 0 ? shards.filter((shard) => named.includes(shard.shardId)) : shards);
}

async function recordsOf(ctx: OpsContext, source: Source, ledger: ReturnType<typeof ledgerFromConfig>): Promise<RecordToPlan[]> {
  if (source.kind === 'file') {
    const lines = fileLines(source.path); // a file it cannot read is a usage error, before any call
    const epoch = await ledger.currentEpoch();
    return lines.map(({ line, data }) => ({ where: `line ${line}`, line, data, partitionKey: partitionKeyOf(data), hashKeyRange: ALL_HASH_KEYS, epoch }));
  }
  const { aws, config } = ctx;
  const all = await listShards(aws.kinesis, config.streamName);
  const records: RecordToPlan[] = [];
  let dropped = 0;
  for (const shard of chosenShards(ctx, all, source.shards)) {
    const { lineage, hashKeyRange } = placeOf(all, shard.shardId)!;
    const epoch = await ledger.currentEpoch([shard.shardId, ...lineage]);
    const read = await readShardRecords(aws.kinesis, config.streamName, shard, source.start);
    dropped += read.droppedAggregates;
    for (const record of read.records) {
      const position = { shardId: record.shardId, sequenceNumber: record.sequenceNumber, subSequenceNumber: record.subSequenceNumber };
      records.push({
        where: `${record.shardId}#${record.sequenceNumber}#${record.subSequenceNumber}`,
        data: record.data,
        partitionKey: record.partitionKey,
        record: { ...position, lineage },
        hashKeyRange,
        epoch,
      });
    }
  }
  if (dropped > 0) note(`note: ${dropped} KPL aggregate(s) hold a record hashed outside their shard: the KCL drops such an aggregate whole, so they are not planned`);
  return records;
}

function printShadowReport(ctx: OpsContext, report: ShadowReport): number {
  const disagree = report.policies.filter((policy) => !policy.agrees);
  if (report.noShadowRun) {
    if (ctx.json) printJson(report);
    note(`No shadow run to report: its ledger table ${report.ledgerTable} does not exist (run a worker with IPS_MODE=shadow first).`);
    return 1;
  }
  if (ctx.json) printJson(report);
  else {
    note(`Shadow ledger ${report.ledgerTable}: ${report.policies.length} policies planned, ${disagree.length} where IAM now disagrees.`);
    if (report.policies.length > 0)
      print(
        table(
          report.policies.map((p) => ({ policy: p.policy, planned: p.planned, state: p.state, iam: p.agrees ? 'agrees' : p.differs.join('; ') })),
          ['policy', 'planned', 'state', 'iam'],
        ),
      );
    for (const skipped of report.notJudged) note(`not judged now: ${skipped.policy} (${skipped.why})`);
    for (const failure of report.failed) note(`could not read ${failure.policy}: ${failure.reason}`);
  }
  return disagree.length > 0 || report.failed.length > 0 ? 1 : 0;
}

export const planCommand: Command = {
  name: 'plan',
  summary: 'what the processor would do with events (a file, or the stream), touching nothing',
  help: `Usage: ips plan (--file <events.jsonl> | --from-stream [--shard <shardId>...] (--trim-horizon | --at <time>)) [options]
       ips plan --shadow-report [--json]

Says, for each event, what the processor would do now given the ledger and
IAM, and does none of it: it only reads (IAM, the ledger, the stream).
  --file <path>         one contract event per line (- reads standard input); each is
                        keyed by its policy name, as producers key their records
  --from-stream         the stream's records, as the workers would be handed them
  --shard <shardId>     only that shard (repeatable); default every shard, parents first
  --trim-horizon        from each shard's oldest record kept
  --at <time>           from each shard's first record at or after an ISO 8601 time

Actions: create; update (with the document's change, statement by statement, and the
tags'); delete; retain (a delete of an attached policy); none (IAM already holds it,
or a delete of a policy that is not there); stale; duplicate; refuse (with the reason
code the record would be dead-lettered with). A policy's events are folded in order:
each sees what the ones before it would leave.

--shadow-report: what a shadow run (IPS_MODE=shadow, under <IPS_APP_NAME>-shadow) planned,
policy by policy (the last action and the state it leaves), and where IAM of the policy's
account now disagrees with that state (the drift audit's judgement, as ips drift makes it):
the workers' own account, and each of IPS_TARGET_ACCOUNTS through its read-only audit role
(IPS_TARGET_ROLE_NAME, by default iam-policy-stream-target-audit here). Exit code 0 when
every policy agrees and every account could be read, 1 otherwise.

Exit code: 0 IAM would not change, 1 it would (or the plan could not be made), 2 bad arguments.

${COMMON_HELP}
  (with --json: one JSON object per event, a line each)`,
  options: {
    file: { type: 'string' },
    'from-stream': { type: 'boolean' },
    shard: { type: 'string', multiple: true },
    'trim-horizon': { type: 'boolean' },
    at: { type: 'string' },
    'shadow-report': { type: 'boolean' },
  },
  async run(ctx, values) {
    const { aws, config } = ctx;
    if (values['shadow-report'] === true) {
      if (values.file !== undefined || values['from-stream'] === true) throw new UsageError('--shadow-report reads the shadow run, not events: leave out --file and --from-stream');
      return printShadowReport(ctx, await shadowReport(ctx.env ?? process.env, aws, ctx.env ? { env: ctx.env } : {}));
    }
    const source = sourceOf(values);
    const ledger = ledgerFromConfig(aws.dynamodb, config);
    const records = await recordsOf(ctx, source, ledger);
    const planned = await planRecordsToApply(planSources(config, aws, ledger, documentGuardFromConfig(config), ctx.env ? { env: ctx.env } : {}), records);
    if (ctx.json) {
      if (planned.length > 0) print(planJsonLines(planned));
    } else {
      if (source.kind === 'stream') note(`Stream ${config.streamName} ${source.label}.`);
      print(planned.length === 0 ? 'No events to plan.' : planText(planned));
    }
    return changesIam(planned) ? 1 : 0;
  },
};
