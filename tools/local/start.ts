// `npm start`: the whole product on the local stack. Brings up the emulators,
// runs the MultiLangDaemon with the record processor, sends the demo events,
// shows what happened to each, and keeps running until Ctrl-C, which stops
// the daemon (gracefully), its children and the emulators.
import { ListPolicyVersionsCommand } from '@aws-sdk/client-iam';
import { ScanCommand } from '@aws-sdk/client-dynamodb';
import { spawn } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync, readSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { createAwsClients, createTargetAccountClients, destroyAwsClients, destroyTargetAccountClients } from '../../src/aws/clients.js';
import type { AwsClients } from '../../src/aws/clients.js';
import { loadConfig } from '../../src/config/config.js';
import type { Config } from '../../src/config/config.js';
import { shutdownGraceOf, startDaemon } from '../../src/daemon/daemon.js';
import type { RunningDaemon } from '../../src/daemon/daemon.js';
import { listPolicies } from '../../src/iam/policies.js';
import { outcomeRecordId, readOutcomes, sentRecordId } from '../oracle/outcome-log.js';
import { putRecords } from '../../src/ops/producer.js';
import { demoWaves } from './demo.js';
import { projectRoot } from '../../src/config/paths.js';
import { recordDaemon, StackInUseError, startStack, stopStackIn } from './stack.js';
import type { LocalStack } from './stack.js';
import { startupEstimate, startupSteps } from './startup.js';

const say = (text: string) => process.stdout.write(`${text}\n`);
// The SDK's notice about Node versions of 2027 is noise in a demo.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
const root = projectRoot();
const dir = join(root, '.local', 'stack');
const logFile = join(dir, 'logs', 'daemon.log');
const since = (start: number) => `${Math.round((Date.now() - start) / 1000)} s`;
const startedAt = Date.now();
const force = process.argv.slice(2).includes('--force');
/** Where this run's part of the daemon's log starts (the file is appended to across runs). */
let logStart = 0;

await main();

/** Brings everything up, runs the demo, shows the result, then waits for Ctrl-C. */
async function main(): Promise<void> {
  const { stack, config, daemon } = await startEverything();
  const shutdown = stopOnSignal(stack, daemon);
  const clients = createAwsClients(config, { env: stack.env });
  try {
    const { settled, total } = await runDemo(clients, config, daemon, shutdown.stopping);
    await showState(clients, config, stack.env);
    if (settled < total) say(`\nOnly ${settled} of ${total} demo events settled in time; see ${logFile}.`);
  } finally {
    destroyAwsClients(clients);
  }
  printHints(config);
}

async function startEverything(): Promise<{ stack: LocalStack; config: Config; daemon: RunningDaemon }> {
  try {
    // A stack left by an earlier run that was killed goes; one a running npm start keeps stays, unless --force.
    await stopStackIn(dir, { force });
  } catch (error) {
    if (!(error instanceof StackInUseError)) throw error;
    say(`Refused: ${error.message} (npm start -- --force).`);
    process.exit(1);
  }
  say('Starting the local AWS stack (Kinesis, DynamoDB, IAM/STS emulators)...');
  const stack = await startStack({ dir, shards: Number(process.env.IPS_LOCAL_SHARDS ?? 4), owner: process.pid });
  for (const emulator of stack.emulators) say(`  ${emulator.name.padEnd(9)} ${emulator.endpoint}`);
  say(`  environment: ${join(dir, 'stack.env')}`);
  // The record processors' EMF documents would be a quarter of the daemon's log
  // here, with no CloudWatch to read them; the per-minute "metrics" log line
  // still counts everything. IPS_METRICS_SINK=stderr brings them back.
  const env = { IPS_METRICS_SINK: 'off', ...process.env, ...stack.env };
  const config = loadConfig(env);
  say(`Starting the KCL MultiLangDaemon (stream ${config.streamName}); its log: ${logFile}`);
  logStart = existsSync(logFile) ? statSync(logFile).size : 0;
  const daemon = startDaemon({ propertiesFile: join(root, 'properties', 'local.properties'), env, workDir: dir, log: logFile });
  recordDaemon(dir, daemon.pid);
  startGuardian(daemon, stack);
  return { stack, config, daemon };
}

/** The daemon's log from byte `from` to its end now. */
function readLogFrom(from: number): string {
  const end = existsSync(logFile) ? statSync(logFile).size : 0;
  if (end <= from) return '';
  const fd = openSync(logFile, 'r');
  try {
    const buffer = Buffer.alloc(end - from);
    readSync(fd, buffer, 0, buffer.length, from);
    return buffer.toString('utf8');
  } finally {
    closeSync(fd);
  }
}

/**
 * Whatever ends this process (kill -9, a wrapper killing it), the guardian
 * stops the daemon and the emulators after it: they run in process groups of
 * their own, which a terminal's Ctrl-C does not reach.
 */
function startGuardian(daemon: RunningDaemon, stack: LocalStack): void {
  const grace = shutdownGraceOf(readFileSync(daemon.propertiesPath, 'utf8')) + 10_000;
  const guardian = spawn(
    process.execPath,
    ['--import', 'tsx', join(root, 'tools', 'local', 'guardian.ts'), String(process.pid), String(grace), String(daemon.pid), ...stack.emulators.map((e) => String(e.pid))],
    { cwd: root, detached: true, stdio: 'ignore' },
  );
  guardian.unref();
}

/**
 * Ctrl-C (or the daemon exiting) stops the daemon, its record processors and
 * the emulators, in that order, once. The same Ctrl-C may arrive twice (the
 * terminal signals the whole process group, and a wrapper such as tsx or npm
 * may relay it); a second one a moment later hurries the daemon's stop (it is
 * killed instead of waiting for its graceful shutdown), and the emulators are
 * still stopped before this process exits.
 */
function stopOnSignal(stack: LocalStack, daemon: RunningDaemon): { stopping: () => boolean } {
  let stopping: Promise<void> | undefined;
  let firstSignalAt = 0;
  let hurried = false;
  const shutdown = (code: number) => {
    stopping ??= (async () => {
      say('\nStopping the daemon and its record processors gracefully (Ctrl-C again to hurry)...');
      await daemon.stop();
      say('Stopping the emulators...');
      await stack.stop();
      say('Stopped. Nothing is left running.');
      process.exit(code);
    })();
  };
  const onSignal = () => {
    if (!stopping) {
      firstSignalAt = Date.now();
      shutdown(0);
    } else if (!hurried && Date.now() - firstSignalAt > RELAYED_SIGNAL_MS) {
      hurried = true;
      say('Hurrying: the daemon is killed now; the emulators are stopped next.');
      daemon.hurry();
    }
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  void daemon.exited.then((code) => {
    if (!stopping) {
      say(`The daemon exited (code ${code}); see ${logFile}`);
      shutdown(1);
    }
  });
  return { stopping: () => stopping !== undefined };
}

/** A signal this soon after the first is the same Ctrl-C relayed, not a second one. */
const RELAYED_SIGNAL_MS = 1_000;

/** Sends the demo in waves and shows each event's outcome as the processor logs it. */
async function runDemo(clients: AwsClients, config: Config, daemon: RunningDaemon, stopping: () => boolean): Promise<{ settled: number; total: number }> {
  let settled = 0;
  let total = 0;
  const steps = new Set<string>();
  let logRead = logStart;
  let firstOutcomeAt: number | undefined;
  for (const [n, wave] of demoWaves().entries()) {
    const sent = await putRecords(
      clients.kinesis,
      config.streamName,
      wave.map((item) => item.record),
    );
    total += sent.length;
    if (n === 0) {
      say(`Sent ${sent.length} demo events (${since(startedAt)} after the start). Waiting for the processor.`);
      for (const line of startupEstimate(readFileSync(daemon.propertiesPath, 'utf8')).lines) say(line);
      say('');
    } else say(`\nSent ${sent.length} more events for the same policies:\n`);
    const wanted = new Map(sent.map((put, i) => [sentRecordId(put), wave[i]!]));
    const shown = new Set<string>();
    const deadline = Date.now() + 180_000;
    while (shown.size < wanted.size && Date.now() < deadline && !stopping()) {
      if (firstOutcomeAt === undefined) {
        // The daemon's start-up steps as they happen, until the first outcome.
        const text = readLogFrom(logRead);
        const complete = text.lastIndexOf('\n') + 1;
        logRead += Buffer.byteLength(text.slice(0, complete));
        for (const step of startupSteps(text.slice(0, complete), steps)) say(`  daemon: ${step} (${since(startedAt)})`);
      }
      for (const line of readOutcomes(logFile)) {
        const key = outcomeRecordId(line);
        const item = wanted.get(key);
        if (!item || shown.has(key)) continue;
        shown.add(key);
        if (firstOutcomeAt === undefined) {
          firstOutcomeAt = Date.now();
          say(`First outcome ${since(startedAt)} after the start:`);
        }
        const reason = line.outcome === 'rejected' && line.reason ? ` ${line.reason}` : '';
        say(`  ${(line.outcome + reason).padEnd(30)} ${line.partitionKey.padEnd(18)} ${String(line.latencyMs ?? '?').padStart(6)} ms   expected: ${item.expect}`);
      }
      await sleep(250);
    }
    settled += shown.size;
  }
  return { settled, total };
}

async function showState(clients: AwsClients, config: Config, env: Record<string, string>): Promise<void> {
  say(`\nManaged policies now in the emulated IAM (${config.managedPathPrefix}), the worker's own account and each target account (read through its role):`);
  const show = async (iam: AwsClients['iam']) => {
    for (const policy of await listPolicies(iam, config.managedPathPrefix)) {
      const versions = await iam.send(new ListPolicyVersionsCommand({ PolicyArn: policy.Arn }));
      say(`  ${policy.Arn}  (${versions.Versions?.length ?? 0} version(s), default ${policy.DefaultVersionId})`);
    }
  };
  await show(clients.iam);
  for (const account of config.targetAccounts) {
    const target = createTargetAccountClients(config, { account, partition: 'aws', sessionName: 'npm-start-demo' }, { env });
    try {
      await show(target.iam);
    } finally {
      destroyTargetAccountClients(target);
    }
  }
  const letters = await clients.dynamodb.send(new ScanCommand({ TableName: config.deadLetterTable, Select: 'COUNT' }));
  say(`Dead letters: ${letters.Count ?? 0} (table ${config.deadLetterTable})`);
}

function printHints(config: Config): void {
  say('\nThe processor keeps running. Try it from another shell:');
  say(`  set -a; . ${join(dir, 'stack.env')}; set +a`);
  say(`  aws kinesis put-record --stream-name ${config.streamName} --partition-key my-policy --cli-binary-format raw-in-base64-out \\`);
  say(
    `    --data '{"specVersion":"1","eventId":"e-1","type":"policy.upserted","policy":{"name":"my-policy"},"document":{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}]}}'`,
  );
  say(`  (in another account: "account":"111111111111" in the event, partition key 111111111111/my-policy; allowed: ${config.targetAccounts.join(', ') || 'none'})`);
  say('Or look at it with the operator tool:  npm run ops -- status --local   (and: dead-letters list, replay, produce)');
  say('Press Ctrl-C to stop everything.');
}
