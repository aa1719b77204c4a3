// npm run bench [-- --quick] : the record processor against the baselines a
// user would pick instead, on the local stack (emulators), every figure
// measured in this run. Prints a table and the targets, writes
// bench/results/<timestamp>.json, and prints the command that reproduces it.
//
// Options:
//   --quick                  smaller run (fewer events, no replay scenario)
//   --events N               events per daemon scenario (default 2000; --quick 500)
//   --scenarios a,b          subset of fresh-1,fresh-16,fresh-256,update-4,reput-256,replay-256,
//                            update-heavy,mixed
//   --processors a,b         subset of sequential,noop,ours
//   --shards N               shards per stream (default 1: one child, per-shard figures)
//   --passes N               warm passes of the in-process replay (default 10; --quick 5)
//   --skip-in-process        no in-process warm-replay measurement
//   --skip-memory            no full-cache memory measurement
//   --latency dynamodb=MS,iam=MS
//                            add a fixed delay to every DynamoDB and IAM/STS call the
//                            record processors make (a loopback proxy), standing in for
//                            the network round trip to AWS that the emulators lack
//   --iam-rate N             IAM's rate limit: the processors' IAM calls go through a
//                            proxy holding a token bucket per account (N calls/s, burst
//                            --iam-burst, default N) that refuses past it as IAM does
//                            (400 Throttling). Default scenarios then: fresh-256,
//                            update-heavy, mixed; processors: sequential, ours; the
//                            report adds the iam-limited table and lines, and checks
//                            that IAM ends equal to the fold of the stream
//   --iam-burst N            the bucket's size (default: the rate)
//   --env K=V,K=V            extra environment for the record processors (e.g.
//                            IPS_IAM_RETRY_MODE=standard), the same for every processor
//   --out FILE               where the JSON goes (default bench/results/<timestamp>.json)
//   --drift-policies N       instead of the above: a drift audit of N policies, with the owner
//                            tag alone and with tags of their own, against the per-policy reads
//                            it made before; IAM calls per policy, the audit's DynamoDB read
//                            units with --drift-archived archived eventIds against none, wall
//                            time (bench/drift-audit.ts)
//   --drift-archived N       archived eventIds for --drift-policies (default 100000)
//   --drift-before           with --drift-policies: also the per-policy reads the audit made before
//                            (about 3 IAM calls per policy; slow on moto at thousands of policies)
//   --accounts N             instead of the above: one stream serving N target accounts on one
//                            worker, IAM limited to --iam-rate calls/s per account (default 10):
//                            aggregate changes/s against N x rate, then one account failing
//                            outright and throttled to 1 call/s, the others' changes/s against
//                            the rate and the impaired account's records parked or lost
//                            (bench/accounts.ts); --events is per account (default 300),
//                            --shards defaults to 4
//   --park-after-ms N        with --accounts: the workers' IPS_PARK_AFTER_MS (default 5000)
//
// Method and limits: docs/performance.md.
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, openSync, closeSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { join, relative } from 'node:path';
import { parseArgs } from 'node:util';
import { projectRoot } from '../src/config/paths.js';
import { startStack } from '../tools/local/stack.js';
import type { LocalStack } from '../tools/local/stack.js';
import { runUnderDaemon } from './lib/daemon-run.js';
import type { DaemonRunResult } from './lib/daemon-run.js';
import type { ProcessorName } from './lib/processors.js';
import { childNodeFlags, PROCESSORS } from './lib/processors.js';
import { createPreexisting, freshScenario, mixedScenario, replayScenario, reputScenario, updateHeavyScenario, updateScenario } from './lib/scenarios.js';
import type { Scenario } from './lib/scenarios.js';
import { fmt, table } from './lib/stats.js';
import { startFaultProxy } from '../tools/harness/fault-proxy.js';
import type { FaultProxy } from '../tools/harness/fault-proxy.js';
import type { InProcessResult } from './in-process.js';
import { driftReport, runDriftBench } from './drift-audit.js';
import { accountsReport, benchAccounts, runAccountsBench } from './accounts.js';

const root = projectRoot();
const { values: args } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    events: { type: 'string' },
    scenarios: { type: 'string' },
    processors: { type: 'string' },
    shards: { type: 'string', default: '1' },
    passes: { type: 'string' },
    'skip-in-process': { type: 'boolean', default: false },
    'skip-memory': { type: 'boolean', default: false },
    latency: { type: 'string' },
    'iam-rate': { type: 'string' },
    'iam-burst': { type: 'string' },
    env: { type: 'string' },
    out: { type: 'string' },
    'drift-policies': { type: 'string' },
    'drift-archived': { type: 'string', default: '100000' },
    'drift-before': { type: 'boolean', default: false },
    accounts: { type: 'string' },
    'park-after-ms': { type: 'string', default: '5000' },
  },
});

const quick = args.quick!;
const events = Number(args.events ?? (quick ? 500 : 2_000));
const shards = Number(args.shards);
const passes = Number(args.passes ?? (quick ? 5 : 10));
const iamRate = args['iam-rate'] === undefined ? undefined : positive('--iam-rate', args['iam-rate']);
const iamBurst = args['iam-burst'] === undefined ? undefined : positive('--iam-burst', args['iam-burst']);
const processorEnv = parseEnv(args.env);
const processors = (args.processors ?? (iamRate ? 'sequential,ours' : 'sequential,noop,ours')).split(',') as ProcessorName[];
for (const name of processors) if (!PROCESSORS[name]) throw new Error(`unknown processor ${name}`);
const allScenarios = ['fresh-1', 'fresh-16', 'fresh-256', 'update-4', 'reput-256', 'replay-256', 'update-heavy', 'mixed'];
const defaultScenarios = iamRate ? 'fresh-256,update-heavy,mixed' : quick ? 'fresh-1,fresh-16,fresh-256,update-4,reput-256' : allScenarios.slice(0, 6).join(',');
const wanted = (args.scenarios ?? defaultScenarios).split(',');
for (const name of wanted) if (!allScenarios.includes(name)) throw new Error(`unknown scenario ${name} (one of ${allScenarios.join(', ')})`);

const latency = parseLatency(args.latency);
/** Records per batch in update-heavy and mixed (IPS_KCL_MAX_RECORDS for every processor): small enough that coalescing cannot fold every revision. */
const HEAVY_BATCH = 16;
const MIXED_BATCH = 64;

function positive(flag: string, text: string): number {
  const value = Number(text);
  if (!(value > 0)) throw new Error(`${flag} takes a number above 0, got "${text}"`);
  return value;
}

/** `K=V,K=V` → environment entries. */
function parseEnv(text: string | undefined): Record<string, string> {
  if (!text) return {};
  return Object.fromEntries(
    text.split(',').map((pair) => {
      const at = pair.indexOf('=');
      if (at <= 0) throw new Error(`--env takes K=V,K=V, got "${text}"`);
      return [pair.slice(0, at), pair.slice(at + 1)];
    }),
  );
}

/** `dynamodb=10,iam=60` → per-service delays in milliseconds. */
function parseLatency(text: string | undefined): { dynamodb: number; iam: number } | undefined {
  if (text === undefined) return undefined;
  const delays = { dynamodb: 0, iam: 0 };
  for (const part of text.split(',')) {
    const [service, value] = part.split('=');
    const ms = Number(value);
    if ((service !== 'dynamodb' && service !== 'iam') || !Number.isInteger(ms) || ms < 0) {
      throw new Error(`--latency takes dynamodb=<ms>,iam=<ms>, got "${text}"`);
    }
    delays[service] = ms;
  }
  return delays;
}

const started = new Date();
const stamp = started.toISOString().replace(/[:.]/g, '-');
const outFile = args.out ?? join(root, 'bench', 'results', `${stamp}.json`);
const reproduce = ['npm run bench', ...(process.argv.length > 2 ? ['--', ...process.argv.slice(2)] : [])].join(' ');
const say = (message: string) => process.stderr.write(`[bench] ${message}\n`);
const MB = 1024 * 1024;

if (!existsSync(join(root, 'dist', 'intake', 'main.js'))) {
  throw new Error('dist/intake/main.js is missing: build first (npm run bench runs the setup, which builds)');
}

function git(...command: string[]): string {
  try {
    return execFileSync('git', command, { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return 'unknown';
  }
}

/** moto's own reset: IAM empty again, so every run starts from the same state. */
async function resetIam(stack: LocalStack): Promise<void> {
  const response = await fetch(`${stack.env.AWS_ENDPOINT_URL_IAM}/moto-api/reset`, { method: 'POST' });
  if (!response.ok) throw new Error(`moto reset answered ${response.status}`);
}

function scenarioList(): Scenario[] {
  const list: Scenario[] = [];
  const fresh256 = freshScenario(256, events, 256);
  if (wanted.includes('fresh-1')) list.push(freshScenario(1, events, 1));
  if (wanted.includes('fresh-16')) list.push(freshScenario(16, events, 16));
  if (wanted.includes('fresh-256') || wanted.includes('replay-256')) list.push(fresh256);
  if (wanted.includes('replay-256')) list.push(replayScenario(fresh256));
  if (wanted.includes('update-4')) list.push(updateScenario(4, events, 4));
  if (wanted.includes('reput-256')) list.push(reputScenario(256, events, 257));
  if (wanted.includes('update-heavy')) list.push(updateHeavyScenario(16, events, 16, HEAVY_BATCH));
  if (wanted.includes('mixed')) list.push(mixedScenario(64, events, 64, MIXED_BATCH));
  return list;
}

async function runChild(script: string[], env: Record<string, string>, stderrFile: string): Promise<string> {
  const err = openSync(stderrFile, 'a');
  const childEnv: Record<string, string | undefined> = { ...process.env, ...env };
  delete childEnv.NODE_OPTIONS;
  const child = spawn(process.execPath, script, { cwd: root, env: childEnv, stdio: ['ignore', 'pipe', err] });
  closeSync(err);
  let out = '';
  child.stdout!.on('data', (chunk: Buffer) => (out += chunk.toString()));
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  if (code !== 0) throw new Error(`${script.join(' ')} exited with ${code} (see ${stderrFile})`);
  return out.trim().split('\n').pop() ?? '';
}

interface MemoryResult {
  entries: number;
  cacheSize: number;
  rssBytes: Record<string, number>;
  cacheHeapBytes: number;
  cacheHeapBytesPerPolicy: number;
  peakRssBytes: number;
}

/** --drift-policies: the drift audit's cost alone, on its own local stack. */
async function driftMain(policies: number, archived: number): Promise<void> {
  const workDir = mkdtempSync(join(tmpdir(), 'ips-bench-'));
  say(`work folder ${workDir}; results to ${relative(root, outFile)}`);
  const stack = await startStack({ dir: workDir, shards: 1 });
  let results: Awaited<ReturnType<typeof runDriftBench>>;
  try {
    results = await runDriftBench({ stack, policies, archived, runTag: stamp.slice(11, 19).replace(/-/g, ''), before: args['drift-before']!, say });
  } finally {
    await stack.stop();
  }
  finishStandalone({ driftPolicies: policies, driftArchived: archived, driftBefore: args['drift-before'] }, { drift: results }, workDir, driftReport(results));
}

/** A run of its own (--drift-policies, --accounts): its JSON to outFile, its report and the lines that sum it up to stdout. */
function finishStandalone(options: Record<string, unknown>, results: Record<string, unknown>, workDir: string, report: { text: string; lines: string[] }): void {
  const result = {
    startedAt: started.toISOString(),
    finishedAt: new Date().toISOString(),
    durationSeconds: Math.round((Date.now() - started.getTime()) / 1000),
    reproduce,
    options,
    environment: {
      node: process.version,
      cpus: cpus().length,
      cpuModel: cpus()[0]?.model,
      memoryBytes: totalmem(),
      loadavgAtEnd: loadavg(),
      commit: git('rev-parse', 'HEAD'),
      dirty: git('status', '--porcelain', '--', 'src', 'bench') !== '',
    },
    ...results,
    workDir,
  };
  mkdirSync(join(outFile, '..'), { recursive: true });
  writeFileSync(outFile, `${JSON.stringify(result, null, 2)}\n`);
  process.stdout.write(`${report.text}\n\nResults: ${relative(root, outFile)}\nReproduce: ${reproduce}\n\n${report.lines.join('\n')}\n`);
}

/** --accounts: many accounts from one stream under a per-account IAM rate limit, on its own local stack. */
async function accountsMain(accounts: number): Promise<void> {
  const workDir = mkdtempSync(join(tmpdir(), 'ips-bench-'));
  say(`work folder ${workDir}; results to ${relative(root, outFile)}`);
  const rate = iamRate ?? 10;
  const runShards = args.shards === '1' ? 4 : shards;
  const perAccount = Number(args.events ?? 300);
  const stack = await startStack({ dir: workDir, shards: runShards, settings: { IPS_TARGET_ACCOUNTS: benchAccounts(accounts).join(',') } });
  let runs: Awaited<ReturnType<typeof runAccountsBench>>;
  try {
    runs = await runAccountsBench({
      stack,
      accounts,
      rate,
      eventsPerAccount: perAccount,
      shards: runShards,
      parkAfterMs: positive('--park-after-ms', args['park-after-ms']!),
      workDir,
      runTag: stamp.slice(11, 19).replace(/-/g, ''),
      say,
    });
  } finally {
    await stack.stop();
  }
  finishStandalone(
    { accounts, iamRate: rate, eventsPerAccount: perAccount, shards: runShards, parkAfterMs: args['park-after-ms'] },
    { accounts: runs },
    workDir,
    accountsReport(runs, { accounts, rate }),
  );
}

async function main(): Promise<void> {
  const workDir = mkdtempSync(join(tmpdir(), 'ips-bench-'));
  say(`work folder ${workDir}; results to ${relative(root, outFile)}`);
  const t = Date.now();
  const stack = await startStack({ dir: workDir, shards });
  say(`local stack up in ${((Date.now() - t) / 1000).toFixed(1)} s`);
  const proxies: FaultProxy[] = [];
  // What the processors are given: the stack's endpoints, or delaying (and rate-limiting) proxies in front of them.
  const runStack: LocalStack = { ...stack, env: { ...stack.env } };
  let iamProxy: FaultProxy | undefined;
  const proxied = async (variable: string, protocol: 'dynamodb' | 'iam', latencyMs: number, rateLimit?: { ratePerSecond: number; burst?: number }) => {
    const proxy = await startFaultProxy({ target: stack.env[variable]!, protocol, rate: 0, latencyMs, ...(rateLimit ? { rateLimit } : {}) });
    proxies.push(proxy);
    runStack.env[variable] = proxy.endpoint;
    return proxy;
  };
  if (latency) {
    await proxied('AWS_ENDPOINT_URL_DYNAMODB', 'dynamodb', latency.dynamodb);
    await proxied('AWS_ENDPOINT_URL_STS', 'iam', latency.iam);
    say(`latency added to the processors' calls: DynamoDB ${latency.dynamodb} ms, IAM and STS ${latency.iam} ms`);
  }
  if (latency || iamRate) {
    iamProxy = await proxied('AWS_ENDPOINT_URL_IAM', 'iam', latency?.iam ?? 0, iamRate ? { ratePerSecond: iamRate, ...(iamBurst ? { burst: iamBurst } : {}) } : undefined);
    if (iamRate) say(`IAM rate limit: ${iamRate} calls/s per account, burst ${iamBurst ?? iamRate} (--iam-rate)`);
  }
  const runs: DaemonRunResult[] = [];
  let inProcess: InProcessResult | undefined;
  let memory: MemoryResult | undefined;
  const runTag = stamp.slice(11, 19).replace(/-/g, '');
  try {
    const scenarios = scenarioList();
    const originals = new Map<string, DaemonRunResult>();
    for (const scenario of scenarios) {
      say(`scenario ${scenario.name}: ${scenario.description}`);
      for (const processor of processors) {
        const runStart = Date.now();
        const original = scenario.replayOf ? originals.get(`${scenario.replayOf}/${processor}`) : undefined;
        if (scenario.replayOf && !original) continue;
        if (!scenario.replayOf) await resetIam(stack);
        const appName = `bench-${runTag}-${scenario.name}-${processor}`;
        const result = await runUnderDaemon({
          stack: runStack,
          processor,
          scenario: scenario.name,
          appName,
          streamName: original?.streamName ?? `${appName}-stream`,
          shards,
          records: scenario.records,
          env: {
            ...processorEnv,
            ...scenario.daemonEnv,
            ...(original
              ? {
                  IPS_LEDGER_TABLE: `${original.appName}-ledger`,
                  IPS_DEAD_LETTER_TABLE: `${original.appName}-dead-letters`,
                  BENCH_IDEMPOTENCY_TABLE: `${original.appName}-seq-idempotency`,
                }
              : {}),
          },
          ...(original ? { reuseStream: true, replayOf: original.puts, replayWarmups: original.warmupRecords } : {}),
          // Under a rate limit, a processor counts only for reaching the state the stream asks for.
          ...(iamRate && processor !== 'noop' ? { truthEnv: stack.env } : {}),
          ...(iamProxy ? { probe: () => ({ iamRequests: iamProxy!.calls, iamThrottled: iamProxy!.rateLimited }) } : {}),
          ...(scenario.primed ? { primed: true } : {}),
          ...(scenario.preexisting ? { prepare: (clients, config) => createPreexisting(scenario.preexisting!, clients, config) } : {}),
          dir: workDir,
          timeoutMs: 900_000,
          log: say,
        });
        runs.push(result);
        originals.set(`${scenario.name}/${processor}`, result);
        say(
          `  ${processor}: ${result.events} events in ${(result.elapsedMs / 1000).toFixed(1)} s = ${fmt(result.eventsPerSecond)} events/s` +
            (iamRate
              ? `, ${result.changes} changes, ${fmt(result.changesPerSecond)} changes/s, ${result.probed?.iamThrottled ?? '?'} throttled, IAM state ${result.stateViolations?.length === 0 ? 'as folded' : `DIFFERS (${result.stateViolations?.length ?? '?'})`}`
              : '') +
            ` (run took ${((Date.now() - runStart) / 1000).toFixed(0)} s)`,
        );
      }
    }

    // Under a rate limit those two would measure the limit, not what they are about.
    if (!args['skip-in-process'] && !iamRate) {
      say(`in-process warm replay: ${events} events over 256 policies, ${passes} warm passes`);
      await resetIam(stack);
      const out = await runChild(
        [...childNodeFlags(), '--import', 'tsx', join(root, 'bench', 'in-process.ts'), JSON.stringify({ events, policies: 256, passes, batchSize: 1_000, seed: 4242 })],
        { ...runStack.env, IPS_APP_NAME: `bench-${runTag}-in-process`, IPS_STREAM_NAME: `bench-${runTag}-in-process-stream` },
        join(workDir, 'in-process.log'),
      );
      inProcess = JSON.parse(out) as InProcessResult;
    }
    if (!args['skip-memory'] && !iamRate) {
      say('memory: a child with a full 100,000-entry duplicate cache');
      const out = await runChild([...childNodeFlags(), '--expose-gc', join(root, 'bench', 'cache-rss.mjs'), '100000'], {}, join(workDir, 'cache-rss.log'));
      memory = JSON.parse(out) as MemoryResult;
    }
  } finally {
    for (const proxy of proxies) await proxy.close();
    await stack.stop();
  }

  const report = buildReport(runs, inProcess, memory);
  const result = {
    startedAt: started.toISOString(),
    finishedAt: new Date().toISOString(),
    durationSeconds: Math.round((Date.now() - started.getTime()) / 1000),
    reproduce,
    options: { quick, events, shards, passes, processors, scenarios: wanted, latencyMs: latency ?? null, iamRate: iamRate ?? null, iamBurst: iamBurst ?? iamRate ?? null, processorEnv },
    environment: {
      node: process.version,
      cpus: cpus().length,
      cpuModel: cpus()[0]?.model,
      memoryBytes: totalmem(),
      loadavgAtEnd: loadavg(),
      commit: git('rev-parse', 'HEAD'),
      dirty: git('status', '--porcelain', '--', 'src', 'properties', 'kcl', 'bench') !== '',
      daemonProperties: readFileSync(join(root, 'properties', 'local.properties'), 'utf8'),
    },
    runs: runs.map(({ puts: _puts, ...rest }) => rest),
    inProcess,
    memory,
    targets: report.targets,
    iamLimited: report.iamLimitedLines,
    workDir,
  };
  mkdirSync(join(outFile, '..'), { recursive: true });
  writeFileSync(outFile, `${JSON.stringify(result, null, 2)}\n`);
  process.stdout.write(`${report.text}\n\nResults: ${relative(root, outFile)}\nReproduce: ${reproduce}\n`);
}

function buildReport(runs: DaemonRunResult[], inProcess: InProcessResult | undefined, memory: MemoryResult | undefined) {
  const find = (scenario: string, processor: ProcessorName) => runs.find((r) => r.scenario === scenario && r.processor === processor);
  const ratio = (a: number | undefined, b: number | undefined) => (a !== undefined && b ? a / b : undefined);
  const mb = (bytes: number | undefined) => (bytes === undefined ? undefined : bytes / MB);
  const lines: string[] = [];

  lines.push('Under the MultiLangDaemon (local stack; events/s from the first PutRecords to the last outcome line; replay: from the first batch reaching the child)');
  if (latency) lines.push(`With added latency on every processor call: DynamoDB ${latency.dynamodb} ms, IAM and STS ${latency.iam} ms (--latency)`);
  lines.push('');
  lines.push(
    table(
      ['scenario', 'processor', 'events', 'events/s', 'x (a)', 'x (b)', 'IAM calls/ev', 'DDB calls/ev', 'p50 ms', 'p99 ms', 'child peak RSS MiB', 'batches', 'outcomes'],
      runs.map((run) => {
        const seq = find(run.scenario, 'sequential');
        const noop = find(run.scenario, 'noop');
        return [
          run.scenario,
          run.processor === 'sequential' ? '(a) sequential' : run.processor === 'noop' ? '(b) no-op' : 'ours',
          String(run.events),
          fmt(run.eventsPerSecond, 1),
          fmt(ratio(run.eventsPerSecond, seq?.eventsPerSecond)),
          fmt(ratio(run.eventsPerSecond, noop?.eventsPerSecond)),
          fmt(run.iamCallsPerEvent, 3),
          fmt(run.dynamodbCallsPerEvent, 3),
          fmt(run.latencyMs.p50, 0),
          fmt(run.latencyMs.p99, 0),
          fmt(mb(run.peakChildRssBytes), 0),
          String(run.batches),
          Object.entries(run.outcomes)
            .sort(([, a], [, b]) => b - a)
            .map(([k, v]) => `${k} ${v}`)
            .join(', '),
        ];
      }),
    ),
  );

  const iamLimitedLines: string[] = [];
  if (iamRate) {
    const ceiling = iamRate; // changes/s at one IAM call per change
    lines.push('');
    lines.push(
      `Under an IAM rate limit of ${iamRate} calls/s per account (burst ${iamBurst ?? iamRate}; --iam-rate): changes = records that created, updated or deleted a policy; ` +
        `ceiling = ${ceiling} changes/s (the limit at one IAM call per change); IAM calls = the children's SDK calls (commands, warm-up included), ` +
        `requests = HTTP requests reaching the limit (SDK retries included); throttled = requests refused; IAM = fold: IAM read after the run equals the fold of the stream`,
    );
    lines.push('');
    const limited = runs.filter((run) => run.processor !== 'noop' && !run.scenario.startsWith('replay') && !run.scenario.startsWith('reput'));
    lines.push(
      table(
        ['scenario', 'processor', 'events', 'events/s', 'x (a)', 'changes', 'changes/s', 'x ceiling', 'IAM calls', 'IAM calls/change', 'IAM requests', 'throttled', 'p50 ms', 'p99 ms', 'IAM = fold'],
        limited.map((run) => {
          const seq = find(run.scenario, 'sequential');
          const iam = run.awsCalls?.byService.iam;
          return [
            run.scenario,
            run.processor === 'sequential' ? '(a) sequential' : 'ours',
            String(run.events),
            fmt(run.eventsPerSecond, 1),
            fmt(ratio(run.eventsPerSecond, seq?.eventsPerSecond)),
            String(run.changes),
            fmt(run.changesPerSecond, 1),
            fmt(run.changesPerSecond / ceiling),
            iam === undefined ? '-' : String(iam),
            fmt(ratio(iam, run.changes), 3),
            String(run.probed?.iamRequests ?? '-'),
            String(run.probed?.iamThrottled ?? '-'),
            fmt(run.latencyMs.p50, 0),
            fmt(run.latencyMs.p99, 0),
            run.stateViolations === undefined ? '-' : run.stateViolations.length === 0 ? 'yes' : `NO (${run.stateViolations.length})`,
          ];
        }),
      ),
    );
    lines.push('');
    for (const scenario of [...new Set(limited.map((run) => run.scenario))]) {
      const ours = find(scenario, 'ours');
      const seq = find(scenario, 'sequential');
      const line =
        `iam-limited ${scenario}: ours ${fmt(ours?.eventsPerSecond, 1)} events/s (${fmt(ours?.changesPerSecond, 1)} changes/s), ` +
        `sequential ${fmt(seq?.eventsPerSecond, 1)} events/s, ratio ${fmt(ratio(ours?.eventsPerSecond, seq?.eventsPerSecond))}, ` +
        `ceiling ${fmt(ceiling, 1)} changes/s, IAM calls per applied change ${fmt(ratio(ours?.awsCalls?.byService.iam, ours?.changes), 2)}`;
      iamLimitedLines.push(line);
      lines.push(line);
    }
  }

  if (inProcess) {
    lines.push('');
    lines.push(
      `In process (bench/in-process.ts: the child's pipeline wiring, real DynamoDB ledger and IAM reconciler on the emulators; ${inProcess.options.events} events over ${inProcess.options.policies} policies, batches of ${inProcess.options.batchSize})`,
    );
    lines.push('');
    const row = (name: string, pass: InProcessResult['cold']) => [
      name,
      String(pass.records),
      fmt(pass.eventsPerSecond, 0),
      fmt(pass.dynamodbCallsPerRecord, 3),
      fmt(pass.iamCallsPerRecord, 3),
      Object.entries(pass.outcomes)
        .map(([k, v]) => `${k} ${v}`)
        .join(', '),
    ];
    lines.push(
      table(
        ['pass', 'records', 'events/s', 'DDB calls/rec', 'IAM calls/rec', 'outcomes'],
        [
          row('cold: first delivery', inProcess.cold),
          row(`warm: same records again x${inProcess.options.passes} (warm cache)`, inProcess.warm),
          row(`no-op: same batches, outcome line only x${inProcess.options.passes}`, inProcess.noop),
          row('restart: same records, new pipeline (ledger answers)', inProcess.ledger),
        ],
      ),
    );
  }
  if (memory) {
    lines.push('');
    lines.push(
      `Memory (bench/cache-rss.mjs on dist/, node ${childNodeFlags().join(' ') || '(no flags)'} as in executableName): cache of ${memory.entries.toLocaleString('en-US')} entries full (${memory.cacheSize.toLocaleString('en-US')} keys) holds ` +
        `${fmt(mb(memory.cacheHeapBytes), 1)} MiB of heap (${memory.cacheHeapBytesPerPolicy} B per policy + eventId); RSS: modules ${fmt(mb(memory.rssBytes.modulesLoaded), 0)} MiB, ` +
        `cache filled ${fmt(mb(memory.rssBytes.cacheFilled), 0)} MiB, after 20 batches of 1,000 ${fmt(mb(memory.rssBytes.afterBatches), 0)} MiB, peak ${fmt(mb(memory.peakRssBytes), 0)} MiB`,
    );
  }

  // Targets: reported as measured, not asserted.
  const targets: { target: string; measured: string; verdict: 'PASS' | 'FAIL' | 'n/a' | 'info' }[] = [];
  const verdict = (ok: boolean | undefined) => (ok === undefined ? 'n/a' : ok ? 'PASS' : 'FAIL');
  // Under a rate limit the speed-up targets are the ones below (iamRate); these are about the unlimited runs.
  if (!iamRate) {
    const r256 = ratio(find('fresh-256', 'ours')?.eventsPerSecond, find('fresh-256', 'sequential')?.eventsPerSecond);
    targets.push({ target: '>= 8x sequential at 256 policies', measured: r256 === undefined ? '-' : `${fmt(r256)}x`, verdict: verdict(r256 === undefined ? undefined : r256 >= 8) });
    const r1 = ratio(find('fresh-1', 'ours')?.eventsPerSecond, find('fresh-1', 'sequential')?.eventsPerSecond);
    targets.push({ target: 'no slower than sequential at 1 policy', measured: r1 === undefined ? '-' : `${fmt(r1)}x`, verdict: verdict(r1 === undefined ? undefined : r1 >= 1) });
  }
  const reputOurs = find('reput-256', 'ours');
  const reputNoop = find('reput-256', 'noop');
  if (reputOurs && reputNoop) {
    const warmRatio = reputOurs.eventsPerSecond / reputNoop.eventsPerSecond;
    const ddb = reputOurs.awsCalls?.byService.dynamodb;
    targets.push({
      target: 'warm replay >= 0.9x no-op, 0 DynamoDB calls per cached duplicate (under the daemon: producer re-put, warm cache)',
      measured: `${fmt(warmRatio)}x no-op, ${ddb ?? '?'} DynamoDB calls for ${reputOurs.events} duplicates`,
      verdict: verdict(ddb === undefined ? undefined : warmRatio >= 0.9 && ddb === 0),
    });
  }
  if (inProcess) {
    const warmRatio = inProcess.warm.eventsPerSecond / inProcess.noop.eventsPerSecond;
    targets.push({
      target: 'not a target, for the record: in process, warm replay vs a loop that only logs (no parsing, no daemon)',
      measured: `${fmt(warmRatio)}x that loop, ${inProcess.warm.dynamodbCalls} DynamoDB calls for ${inProcess.warm.records} duplicates`,
      verdict: 'info',
    });
  } else if (!iamRate) targets.push({ target: 'warm replay >= 0.9x no-op, 0 DynamoDB calls per cached duplicate', measured: '-', verdict: 'n/a' });
  const ours = runs.filter((run) => run.processor === 'ours' && run.iamStateWrites !== undefined);
  if (ours.length > 0) {
    const worst = ours.map((run) => ({ run, bound: run.policiesChangedPerBatchSum + run.warmupRecords }));
    targets.push({
      target: 'IAM writes per batch <= distinct policies changed in it (ours, every run; successful CreatePolicy, CreatePolicyVersion, DeletePolicy)',
      measured:
        worst.map(({ run, bound }) => `${run.scenario} ${run.iamStateWrites}/${bound}`).join('; ') +
        `; refused by IAM, no change: ${ours.map((run) => `${run.scenario} ${run.iamRefusedStateWrites ?? 0}`).join(', ')}`,
      verdict: verdict(worst.every(({ run, bound }) => run.iamStateWrites! <= bound)),
    });
  }
  if (iamRate) {
    for (const scenario of ['fresh-256', 'update-heavy']) {
      const ours = find(scenario, 'ours');
      const perChange = ratio(ours?.awsCalls?.byService.iam, ours?.changes);
      targets.push({
        target: `IAM calls per applied change <= 1.5 in ${scenario} (ours; floor 1.0 per create or delete, 2.0 per update of a policy at IAM's 5 versions)`,
        measured: perChange === undefined ? '-' : `${fmt(perChange, 2)} (${ours!.awsCalls!.byService.iam} calls, ${ours!.changes} changes)`,
        verdict: verdict(perChange === undefined ? undefined : perChange <= 1.5),
      });
    }
    const ours = find('fresh-256', 'ours');
    const seq = find('fresh-256', 'sequential');
    targets.push({
      target: `under --iam-rate ${iamRate}, fresh-256: ours >= 0.6x the ceiling (${iamRate} changes/s) in applied changes/s`,
      measured: ours ? `${fmt(ours.changesPerSecond, 1)} changes/s = ${fmt(ours.changesPerSecond / iamRate)}x` : '-',
      verdict: verdict(ours ? ours.changesPerSecond >= 0.6 * iamRate : undefined),
    });
    const r = ratio(ours?.eventsPerSecond, seq?.eventsPerSecond);
    targets.push({
      target: `under --iam-rate ${iamRate}, fresh-256: ours >= 4x sequential in events/s`,
      measured: r === undefined ? '-' : `${fmt(r)}x (${fmt(ours?.eventsPerSecond, 1)} vs ${fmt(seq?.eventsPerSecond, 1)} events/s)`,
      verdict: verdict(r === undefined ? undefined : r >= 4),
    });
    const checked = runs.filter((run) => run.stateViolations !== undefined);
    targets.push({
      target: 'IAM ends equal to the fold of the stream (every processor and scenario under the limit)',
      measured: checked.map((run) => `${run.scenario}/${run.processor} ${run.stateViolations!.length === 0 ? 'equal' : `${run.stateViolations!.length} differences`}`).join('; ') || '-',
      verdict: verdict(checked.length === 0 ? undefined : checked.every((run) => run.stateViolations!.length === 0)),
    });
  }
  if (memory) {
    targets.push({
      target: 'child RSS <= 150 MB with a 100,000-entry cache',
      measured: `peak ${fmt(memory.peakRssBytes / 1e6, 0)} MB (${fmt(mb(memory.peakRssBytes), 0)} MiB); daemon runs, cache nearly empty: ${fmt(Math.max(...ours.map((r) => r.peakChildRssBytes ?? 0)) / 1e6, 0)} MB`,
      verdict: verdict(memory.peakRssBytes <= 150e6),
    });
  }
  lines.push('');
  lines.push('Targets (measured in this run, not asserted)');
  lines.push('');
  lines.push(
    table(
      ['target', 'measured', 'verdict'],
      targets.map((t) => [t.target, t.measured, t.verdict]),
    ),
  );
  return { text: lines.join('\n'), targets, iamLimitedLines };
}

if (args.accounts !== undefined) await accountsMain(positive('--accounts', args.accounts));
else if (args['drift-policies'] !== undefined) await driftMain(positive('--drift-policies', args['drift-policies']), positive('--drift-archived', args['drift-archived']!));
else await main();
