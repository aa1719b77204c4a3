// `produce`: contract events for testing and load, seeded so a run can be
// repeated, at a given rate, with chosen shares of producer retries, late
// revisions, deletes and malformed records. It writes the log of what it sent
// so the result can be checked against IAM (tools/oracle/invariants.ts). With
// --aggregate it writes as the KPL does: many events per Kinesis record, only
// events bound for the same shard together (src/ops/aggregate.ts).
import { setTimeout as sleep } from 'node:timers/promises';
import { listShardRanges, putAggregated } from '../aggregate.js';
import type { ShardRange } from '../aggregate.js';
import { generateLoad } from '../load.js';
import { ACCOUNT_ID } from '../../contract/policy-key.js';
import type { LoadRecord } from '../load.js';
import { putRecords } from '../producer.js';
import type { PutResult } from '../producer.js';
import { appendSendLog, startSendLog } from '../send-log.js';
import type { Command } from '../cli/command.js';
import { COMMON_HELP, UsageError, numberOption, ratioOption, stringOption } from '../cli/command.js';
import { note, print, printJson } from '../cli/render.js';
import { startProgress } from '../cli/progress.js';

export const produceCommand: Command = {
  name: 'produce',
  summary: 'put generated contract events into the stream (load and test traffic)',
  help: `Usage: ips produce [options]

  --policies <n>            distinct policies (default 10)
  --events <n>              records to put (default 100)
  --rate <n>                records per second, 0 for as fast as Kinesis takes them (default 0)
  --delete-ratio <0..1>     share of events that delete (default 0)
  --duplicate-ratio <0..1>  share of records that re-send an earlier event (default 0)
  --stale-ratio <0..1>      share of records carrying an older revision (default 0)
  --malformed-ratio <0..1>  share of malformed records (default 0)
  --prefix <name>           policy names are <prefix>-<i> (default load)
  --accounts <ids>          comma-separated target accounts: policy i's events name the i-th (round
                            robin), partition key <account>/<name> (default: no account, the worker's own)
  --seed <n>                random seed; the same seed gives the same events (default 1)
  --out <file>              write what was sent, one JSON line per record (default produced.jsonl);
                            replaced once the first records are in the stream, untouched if none are
  --aggregate <n>           KPL-aggregate up to n events per Kinesis record, only events bound for
                            the same shard together (default: one event per record)

${COMMON_HELP}`,
  options: {
    policies: { type: 'string' },
    events: { type: 'string' },
    rate: { type: 'string' },
    'delete-ratio': { type: 'string' },
    'duplicate-ratio': { type: 'string' },
    'stale-ratio': { type: 'string' },
    'malformed-ratio': { type: 'string' },
    prefix: { type: 'string' },
    accounts: { type: 'string' },
    seed: { type: 'string' },
    out: { type: 'string' },
    aggregate: { type: 'string' },
  },
  async run(ctx, values) {
    const prefix = stringOption(values, 'prefix') ?? 'load';
    if (!/^[\w+=,.@-]{1,100}$/.test(prefix)) throw new UsageError(`--prefix must be letters, digits and +=,.@_- (at most 100), got ${JSON.stringify(prefix)}`);
    const accounts = (stringOption(values, 'accounts') ?? '')
      .split(',')
      .map((a) => a.trim())
      .filter((a) => a !== '');
    const badAccount = accounts.find((a) => !ACCOUNT_ID.test(a));
    if (badAccount !== undefined) throw new UsageError(`--accounts must be 12-digit account ids, comma-separated, got ${JSON.stringify(badAccount)}`);
    const spec = {
      ...(accounts.length > 0 ? { accounts } : {}),
      policies: numberOption(values, 'policies', 10, { min: 1, max: 1_000_000 }),
      events: numberOption(values, 'events', 100, { min: 1, max: 100_000_000 }),
      seed: numberOption(values, 'seed', 1),
      prefix,
      deleteRatio: ratioOption(values, 'delete-ratio'),
      duplicateRatio: ratioOption(values, 'duplicate-ratio'),
      staleRatio: ratioOption(values, 'stale-ratio'),
      malformedRatio: ratioOption(values, 'malformed-ratio'),
    };
    if (spec.duplicateRatio + spec.staleRatio + spec.malformedRatio > 1) throw new UsageError('--duplicate-ratio, --stale-ratio and --malformed-ratio add up to more than 1');
    const rate = numberOption(values, 'rate', 0, { min: 0, max: 1_000_000 });
    const out = stringOption(values, 'out') ?? 'produced.jsonl';
    // 0 when absent: one event per record, as before.
    const aggregate = numberOption(values, 'aggregate', 0, { min: 1, max: 1_000_000 });

    const load = generateLoad(spec);
    // The log is (re)written only once Kinesis took the first records: a run
    // that cannot put anything (no such stream, no credentials) leaves an
    // earlier log as it was instead of an empty file.
    let logged = 0;
    // Chunks of a tenth of a second's worth keep the rate smooth; PutRecords takes 500 at most.
    // Aggregated, a chunk is user records: enough to fill up to 500 aggregates a call.
    const chunk = aggregate > 0 ? (rate > 0 ? Math.max(1, Math.ceil(rate / 10)) : Math.min(100_000, 500 * aggregate)) : rate > 0 ? Math.max(1, Math.min(500, Math.ceil(rate / 10))) : 500;
    let shards: ShardRange[] = aggregate > 0 ? await listShardRanges(ctx.aws.kinesis, ctx.config.streamName) : [];
    let kinesisRecords = 0;
    const put = async (slice: LoadRecord[]): Promise<PutResult[]> => {
      if (aggregate === 0) return putRecords(ctx.aws.kinesis, ctx.config.streamName, slice);
      const done = await putAggregated(ctx.aws.kinesis, ctx.config.streamName, slice, { maxRecords: aggregate, shards });
      shards = done.shards;
      kinesisRecords += done.kinesisRecords;
      return done.results;
    };
    const startedAt = Date.now();
    // A bar on a terminal; a line every 5 s otherwise.
    const progress = startProgress(load.length, { format: '[{bar}] {value}/{total} {rate} rec/s', plainEveryMs: 5_000 });
    const kinds: Record<string, number> = {};
    for (let sent = 0; sent < load.length; ) {
      const slice = load.slice(sent, sent + chunk);
      let puts: PutResult[];
      try {
        puts = await put(slice);
      } catch (error) {
        progress.stop();
        note(logged === 0 ? `Nothing was put; ${out} is left as it was.` : `${logged} record(s) were put before the failure; ${out} logs them.`);
        throw error;
      }
      if (logged === 0) startSendLog(out);
      appendSendLog(
        out,
        slice.map((record, i) => ({ record, put: puts[i]! })),
      );
      logged += slice.length;
      for (const record of slice) kinds[record.kind] = (kinds[record.kind] ?? 0) + 1;
      sent += slice.length;
      progress.increment(slice.length);
      if (rate > 0) {
        const due = startedAt + (sent / rate) * 1000;
        if (due > Date.now()) await sleep(due - Date.now());
      }
    }
    progress.stop();
    const seconds = (Date.now() - startedAt) / 1000;
    const result = {
      stream: ctx.config.streamName,
      records: load.length,
      kinds,
      seconds: Number(seconds.toFixed(2)),
      recordsPerSecond: Math.round(load.length / Math.max(seconds, 0.001)),
      log: out,
      ...(aggregate > 0 ? { aggregate, kinesisRecords } : {}),
    };
    const packed = aggregate > 0 ? ` as ${kinesisRecords} KPL aggregate(s) of at most ${aggregate}` : '';
    if (ctx.json) printJson(result);
    else
      print(
        `Put ${load.length} records (${Object.entries(kinds)
          .map(([k, n]) => `${k} ${n}`)
          .join(', ')})${packed} into ${ctx.config.streamName} in ${result.seconds} s (${result.recordsPerSecond}/s). Log: ${out}`,
      );
    return 0;
  },
};
