// One measured run: one record processor under the real MultiLangDaemon, on
// its own stream, lease table and tables of the shared local stack.
//
//   1. provision the stream and the tables (names derived from the run id),
//      optionally prepare IAM (pre-existing policies);
//   2. start the daemon and wait until every shard's child says it is ready,
//      so JVM start-up, lease taking and table creation are not measured;
//   3. t0; put every record (PutRecords, 500 a call); wait until each put
//      record has an outcome line in the daemon's log (test/support's
//      waitForOutcomes, the same reader the end-to-end tests use);
//   4. ask each child for its metrics line (SIGUSR2: AWS calls by service,
//      operation and outcome), kill the daemon, read the children's peak RSS;
//   5. optionally, read IAM straight from the emulator and compare it with the
//      fold of the stream (tools/oracle/invariants.ts), so that a processor is
//      measured only for consuming the stream to the state it must reach.
//
// Throughput is records / (time of the last outcome line - t0): the clock
// starts before the first PutRecords and stops at the last record's outcome.
import { mkdirSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { join } from 'node:path';
import { createAwsClients, destroyAwsClients } from '../../src/aws/clients.js';
import type { AwsClients } from '../../src/aws/clients.js';
import { loadConfig } from '../../src/config/config.js';
import type { Config } from '../../src/config/config.js';
import { startDaemon } from '../../src/daemon/daemon.js';
import type { LocalStack } from '../../tools/local/stack.js';
import { provision } from '../../src/ops/provision.js';
import { putRecords } from '../../src/ops/producer.js';
import type { OutgoingRecord, PutResult } from '../../src/ops/producer.js';
import type { OutcomeLine } from '../../tools/oracle/outcome-log.js';
import { waitForOutcomes } from '../../tools/harness/daemon.js';
import { listShards } from '../../src/stream/shard-tree.js';
import { checkInvariants } from '../../tools/oracle/invariants.js';
import { readOutcomes } from '../../tools/oracle/outcome-log.js';
import { LOCAL_ACCOUNT_ID } from '../../tools/local/stack.js';
import { awsCalls, lastMetricsPerChild, waitForLines } from './child-log.js';
import type { MetricsLine } from './child-log.js';
import { ChildMemorySampler } from './proc.js';
import type { ChildMemory } from './proc.js';
import { PROCESSORS, propertiesTemplateFor } from './processors.js';
import type { ProcessorName } from './processors.js';
import { percentile } from './stats.js';

export interface DaemonRunSpec {
  stack: LocalStack;
  processor: ProcessorName;
  scenario: string;
  /** Names the KCL application (lease table) and, unless overridden, the stream and tables. */
  appName: string;
  streamName: string;
  shards: number;
  records: OutgoingRecord[];
  /** Extra environment for the daemon and its children (IPS_LEDGER_TABLE for a replay, ...). */
  env?: Record<string, string>;
  /** Skip creating the stream (a replay reads one that already has the records). */
  reuseStream?: boolean;
  /** Records already on the stream to wait for instead of putting `records` (replay). */
  replayOf?: PutResult[];
  /** Warm-up records of the original run, also on the stream (replayed too, not measured). */
  replayWarmups?: number;
  /**
   * Put the records once before the clock starts and wait for them: the
   * measured run is the producer putting the same events again (same
   * eventIds, new records) to the same children, whose caches are warm.
   * AWS calls are counted from a metrics reading taken between the two.
   */
  primed?: boolean;
  /** Runs before the daemon starts (e.g. create the policies an update-heavy run updates). */
  prepare?: (clients: AwsClients, config: Config) => Promise<void>;
  /**
   * The emulators' own endpoints (no proxy): when given, IAM is read after the
   * run and compared with the fold of every record put (warm-up ones too).
   */
  truthEnv?: Record<string, string>;
  /** Counters read when the clock starts and when the last outcome is in (a proxy's calls and refusals); the result has the difference. */
  probe?: () => Record<string, number>;
  dir: string;
  timeoutMs: number;
  log?: (message: string) => void;
}

export interface DaemonRunResult {
  scenario: string;
  processor: ProcessorName;
  appName: string;
  streamName: string;
  events: number;
  /** Warm-up records processed before the clock started (counted in the per-record call figures). */
  warmupRecords: number;
  /** From the first PutRecords call (a replay: from the first batch reaching a child) to the last record's outcome line. */
  elapsedMs: number;
  putMs?: number;
  eventsPerSecond: number;
  latencyMs: { p50?: number; p99?: number; max?: number };
  outcomes: Record<string, number>;
  /** Batches the children processed (distinct shard + batch arrival time). */
  batches: number;
  /** Records whose outcome changed IAM (created, updated, deleted), warm-up records included (the call counts include theirs). */
  changes: number;
  /** Changes per second over the measured time (warm-up changes left out). */
  changesPerSecond: number;
  /** What `probe` counted between the start of the clock and the last outcome. */
  probed?: Record<string, number>;
  /** IAM compared with the fold of the stream (truthEnv): what differs; empty when equal. */
  stateViolations?: string[];
  /** Per batch, the policies whose IAM state changed (created, updated, deleted), summed over batches. */
  policiesChangedPerBatchSum: number;
  awsCalls: { byService: Record<string, number>; byOperation: Record<string, number> } | undefined;
  /** AWS calls the children made, per record they were delivered (events + warm-up records). */
  iamCallsPerEvent?: number;
  dynamodbCallsPerEvent?: number;
  /** Successful CreatePolicy + CreatePolicyVersion + DeletePolicy: calls that gave a policy a new state. */
  iamStateWrites?: number;
  /** The same calls refused by IAM, which changed nothing (EntityAlreadyExists on an optimistic create). */
  iamRefusedStateWrites?: number;
  /** DeletePolicyVersion, SetDefaultPolicyVersion, TagPolicy, UntagPolicy: housekeeping writes. */
  iamOtherWrites?: number;
  children: (ChildMemory & { loggedRssBytes?: number })[];
  peakChildRssBytes?: number;
  metricsLines: number;
  logFile: string;
  puts: PutResult[];
  notes: string[];
}

/** Upserts of a policy outside every scenario, with partition keys spread over the shards. */
function warmupRecords(shards: number): OutgoingRecord[] {
  const count = Math.max(1, shards * 4);
  return Array.from({ length: count }, (_, i) => {
    const name = `bench-warmup-${i}`;
    const event = {
      specVersion: '1',
      eventId: `warmup-${i}-${Date.now()}`,
      type: 'policy.upserted',
      policy: { name },
      document: { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: 's3:GetObject', Resource: `arn:aws:s3:::${name}/*` }] },
    };
    return { partitionKey: name, data: Buffer.from(JSON.stringify(event)) };
  });
}

/** Asks each child for its metrics line now (SIGUSR2) and returns those lines. */
async function metricsReading(logFile: string, pids: number[]): Promise<MetricsLine[]> {
  const asked = Date.now();
  for (const pid of pids) process.kill(pid, 'SIGUSR2');
  const deadline = Date.now() + 10_000;
  for (;;) {
    const lines = lastMetricsPerChild(logFile).filter((line) => pids.includes(line.pid) && line.time >= asked);
    if (lines.length === pids.length || Date.now() > deadline) return lines;
    await sleep(100);
  }
}

type CallCounts = ReturnType<typeof awsCalls>;
function minus(total: CallCounts, before: CallCounts | undefined): CallCounts {
  if (!before) return total;
  const subtract = (a: Record<string, number>, b: Record<string, number>) => Object.fromEntries(Object.entries(a).map(([key, value]) => [key, value - (b[key] ?? 0)]));
  return {
    byService: subtract(total.byService, before.byService),
    byOperation: subtract(total.byOperation, before.byOperation),
    succeededByOperation: subtract(total.succeededByOperation, before.succeededByOperation),
  };
}

const STATE_WRITES = ['iam:CreatePolicy', 'iam:CreatePolicyVersion', 'iam:DeletePolicy'];
const OTHER_WRITES = ['iam:DeletePolicyVersion', 'iam:SetDefaultPolicyVersion', 'iam:TagPolicy', 'iam:UntagPolicy'];
const CHANGED = new Set(['created', 'updated', 'deleted']);

export async function runUnderDaemon(spec: DaemonRunSpec): Promise<DaemonRunResult> {
  const log = spec.log ?? (() => {});
  const processor = PROCESSORS[spec.processor];
  const dir = join(spec.dir, `${spec.scenario}-${spec.processor}`);
  mkdirSync(dir, { recursive: true });
  const logFile = join(dir, 'daemon.log');
  const env: Record<string, string> = { ...spec.stack.env, IPS_APP_NAME: spec.appName, IPS_STREAM_NAME: spec.streamName, ...spec.env };
  const config = loadConfig(env);
  const clients = createAwsClients(config, { env });
  const notes: string[] = [];
  const warmupRecordsSent = warmupRecords(spec.shards);
  try {
    if (!spec.reuseStream) await provision(config, clients, spec.shards);
    await spec.prepare?.(clients, config);

    // The child inherits the daemon's environment: keep the bench runner's own
    // loader flags (tsx) away from it, so our child runs as in production.
    const daemonEnv: Record<string, string | undefined> = { ...process.env, ...env };
    delete daemonEnv.NODE_OPTIONS;
    const daemon = startDaemon({ propertiesFile: propertiesTemplateFor(processor, dir), env: daemonEnv, workDir: dir, log: logFile });
    let sampler: ChildMemorySampler | undefined;
    let puts: PutResult[];
    let outcomes: Map<string, OutcomeLine>;
    let t0: number | undefined;
    let putMs: number | undefined;
    let warmups: PutResult[] = [];
    let baseline: MetricsLine[] | undefined;
    let warmupChanges = 0;
    let probeStart: Record<string, number> | undefined;
    let probeEnd: Record<string, number> | undefined;
    try {
      const ready = await waitForLines(logFile, processor.ready, spec.shards, 180_000);
      if (!ready) notes.push('children not seen ready within 180 s; measured anyway');
      if (spec.replayOf) {
        // A replay: the records are on the stream already and flow as soon as
        // the children start; the clock starts when the first batch reaches a child.
        sampler = new ChildMemorySampler(daemon.pid);
        puts = spec.replayOf;
        log(`  ${spec.processor}: daemon ready, replaying ${puts.length} records`);
      } else {
        // One warm-up record per shard, waited for: the daemon starts polling a
        // shard only some time after its child answered initialize, and the
        // child's first calls open its connections. Neither belongs in the figures.
        warmups = await putRecords(clients.kinesis, config.streamName, warmupRecordsSent);
        warmupChanges = [...(await waitForOutcomes([logFile], warmups, 120_000)).values()].filter((line) => CHANGED.has(line.outcome)).length;
        sampler = new ChildMemorySampler(daemon.pid);
        if (spec.primed) {
          log(`  ${spec.processor}: priming with ${spec.records.length} records`);
          await waitForOutcomes([logFile], await putRecords(clients.kinesis, config.streamName, spec.records), spec.timeoutMs);
          baseline = await metricsReading(
            logFile,
            sampler.known().map((child) => child.pid),
          );
        }
        log(`  ${spec.processor}: daemon ready, warm-up records processed; putting ${spec.records.length} records`);
        probeStart = spec.probe?.();
        t0 = Date.now();
        puts = await putRecords(clients.kinesis, config.streamName, spec.records);
        putMs = Date.now() - t0;
      }
      outcomes = await waitForOutcomes([logFile], puts, spec.timeoutMs);
      probeEnd = spec.probe?.();
    } catch (error) {
      await daemon.crash();
      throw error;
    }
    const childPids = sampler.known().map((child) => child.pid);
    // Every record has its outcome: read the children's counters now (their
    // periodic line can be a minute old). Nothing else is needed from the
    // daemon, and nothing of its state is reused, so it is simply killed.
    const reading = await metricsReading(logFile, childPids);
    await daemon.crash();
    const children = sampler.stop();

    const lines = [...outcomes.values()];
    const lastOutcome = Math.max(...lines.map((line) => line.time));
    const start = t0 ?? Math.min(...lines.map((line) => line.time - (line.processingMs ?? 0)));
    const elapsedMs = lastOutcome - start;
    // A replayed record arrived on the stream long before the run: its put-to-outcome latency means nothing.
    const latencies = spec.replayOf ? [] : lines.map((line) => line.latencyMs).filter((v): v is number => typeof v === 'number');
    const counts: Record<string, number> = {};
    for (const line of lines) counts[line.outcome] = (counts[line.outcome] ?? 0) + 1;
    const measuredChanges = lines.filter((line) => CHANGED.has(line.outcome)).length;
    const probed = probeStart && probeEnd ? Object.fromEntries(Object.entries(probeEnd).map(([key, value]) => [key, value - (probeStart[key] ?? 0)])) : undefined;

    let stateViolations: string[] | undefined;
    if (spec.truthEnv && !spec.replayOf && !spec.primed) {
      const truth = createAwsClients(loadConfig(spec.truthEnv), { env: spec.truthEnv });
      try {
        const sentRecords = [...warmupRecordsSent, ...spec.records];
        const report = await checkInvariants({
          shards: await listShards(clients.kinesis, config.streamName),
          sent: [...warmups, ...puts].map((put, i) => ({ record: sentRecords[i]!, put })),
          outcomes: readOutcomes(logFile),
          iam: truth.iam,
          accountId: LOCAL_ACCOUNT_ID,
          managedPathPrefix: config.managedPathPrefix,
          appName: config.appName,
        });
        stateViolations = report.violations;
        if (stateViolations.length > 0) notes.push(`IAM differs from the fold of the stream: ${stateViolations.slice(0, 5).join('; ')}${stateViolations.length > 5 ? '; ...' : ''}`);
      } finally {
        destroyAwsClients(truth);
      }
    }

    // Records of one batch share the time they reached the child: time - processingMs.
    const batches = new Map<string, Set<string>>();
    for (const line of lines) {
      const key = `${line.shard}#${line.time - (line.processingMs ?? 0)}`;
      const changed = batches.get(key) ?? new Set<string>();
      if (CHANGED.has(line.outcome)) changed.add(line.partitionKey);
      batches.set(key, changed);
    }

    const complete = reading.length === childPids.length;
    if (!complete) notes.push(`${childPids.length - reading.length} children did not answer the metrics reading; their last logged line is used`);
    const metrics: MetricsLine[] = complete ? reading : lastMetricsPerChild(logFile);
    const calls = metrics.length > 0 ? minus(awsCalls(metrics), baseline ? awsCalls(baseline) : undefined) : undefined;
    if (!calls) notes.push('no metrics line from the children: AWS call counts unavailable');
    const sum = (names: string[]) => names.reduce((total, name) => total + (calls?.byOperation[name] ?? 0), 0);
    const succeeded = (names: string[]) => names.reduce((total, name) => total + (calls?.succeededByOperation[name] ?? 0), 0);
    const enriched = children.map((child) => {
      const line = metrics.find((m) => m.pid === child.pid);
      return {
        ...child,
        ...(line?.rssBytes !== undefined ? { loggedRssBytes: line.rssBytes } : {}),
      };
    });
    const events = puts.length;
    // The children's counters cover every record they got, the warm-up ones too.
    // A primed run counts from the reading taken after priming: warm-up and priming calls are excluded.
    const delivered = events + (spec.primed ? 0 : spec.replayOf ? (spec.replayWarmups ?? 0) : warmups.length);
    return {
      scenario: spec.scenario,
      processor: spec.processor,
      appName: spec.appName,
      streamName: spec.streamName,
      events,
      warmupRecords: spec.replayOf ? (spec.replayWarmups ?? 0) : warmups.length,
      elapsedMs,
      ...(putMs !== undefined ? { putMs } : {}),
      eventsPerSecond: (events / elapsedMs) * 1000,
      latencyMs: { p50: percentile(latencies, 50), p99: percentile(latencies, 99), max: percentile(latencies, 100) },
      outcomes: counts,
      batches: batches.size,
      changes: measuredChanges + (spec.primed || spec.replayOf ? 0 : warmupChanges),
      changesPerSecond: (measuredChanges / elapsedMs) * 1000,
      ...(probed ? { probed } : {}),
      ...(stateViolations ? { stateViolations } : {}),
      policiesChangedPerBatchSum: [...batches.values()].reduce((total, set) => total + set.size, 0),
      awsCalls: calls,
      ...(calls
        ? {
            iamCallsPerEvent: (calls.byService.iam ?? 0) / delivered,
            dynamodbCallsPerEvent: (calls.byService.dynamodb ?? 0) / delivered,
            iamStateWrites: succeeded(STATE_WRITES),
            iamRefusedStateWrites: sum(STATE_WRITES) - succeeded(STATE_WRITES),
            iamOtherWrites: sum(OTHER_WRITES),
          }
        : {}),
      children: enriched,
      ...(enriched.length > 0 ? { peakChildRssBytes: Math.max(...enriched.map((child) => child.peakRssBytes)) } : {}),
      metricsLines: metrics.length,
      logFile,
      puts,
      notes,
    };
  } finally {
    destroyAwsClients(clients);
  }
}
