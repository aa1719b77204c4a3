// `npm start`: the whole product on the local stack. Brings up the emulators,
// runs the MultiLangDaemon with the record processor, sends the demo events,
// shows what happened to each, and keeps running until Ctrl-C, which stops
// the daemon (gracefully), its children and the emulators.
import { ListPolicyVersionsCommand } from '@aws-sdk/client-iam';
import { ScanCommand } from '@aws-sdk/client-dynamodb';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { createAwsClients, destroyAwsClients } from '../../src/aws/clients.js';
import type { AwsClients } from '../../src/aws/clients.js';
import { loadConfig } from '../../src/config/config.js';
import type { Config } from '../../src/config/config.js';
import { startDaemon } from '../../src/daemon/daemon.js';
import type { RunningDaemon } from '../../src/daemon/daemon.js';
import { listPolicies } from '../../src/iam/policies.js';
import { outcomeRecordId, readOutcomes, sentRecordId } from '../oracle/outcome-log.js';
import { putRecords } from '../../src/ops/producer.js';
import { demoWaves } from './demo.js';
import { projectRoot } from '../../src/config/paths.js';
import { startStack, stopStackIn } from './stack.js';
import type { LocalStack } from './stack.js';

const say = (text: string) => process.stdout.write(`${text}\n`);
// The SDK's notice about Node versions of 2027 is noise in a demo.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
const root = projectRoot();
const dir = join(root, '.local', 'stack');
const logFile = join(dir, 'logs', 'daemon.log');

await main();

/** Brings everything up, runs the demo, shows the result, then waits for Ctrl-C. */
async function main(): Promise<void> {
  const { stack, config, daemon } = await startEverything();
  const shutdown = stopOnSignal(stack, daemon);
  const clients = createAwsClients(config, { env: stack.env });
  try {
    const { settled, total } = await runDemo(clients, config, shutdown.stopping);
    await showState(clients, config);
    if (settled < total) say(`\nOnly ${settled} of ${total} demo events settled in time; see ${logFile}.`);
  } finally {
    destroyAwsClients(clients);
  }
  printHints(config);
}

async function startEverything(): Promise<{ stack: LocalStack; config: Config; daemon: RunningDaemon }> {
  await stopStackIn(dir); // a stack left by an earlier run that was killed
  say('Starting the local AWS stack (Kinesis, DynamoDB, IAM/STS emulators)...');
  const stack = await startStack({ dir, shards: Number(process.env.IPS_LOCAL_SHARDS ?? 4) });
  for (const emulator of stack.emulators) say(`  ${emulator.name.padEnd(9)} ${emulator.endpoint}`);
  say(`  environment: ${join(dir, 'stack.env')}`);
  const env = { ...process.env, ...stack.env };
  const config = loadConfig(env);
  say(`Starting the KCL MultiLangDaemon (stream ${config.streamName}); its log: ${logFile}`);
  const daemon = startDaemon({ propertiesFile: join(root, 'properties', 'local.properties'), env, workDir: dir, log: logFile });
  return { stack, config, daemon };
}

/** Ctrl-C (or the daemon exiting) stops the daemon, its record processors and the emulators. */
function stopOnSignal(stack: LocalStack, daemon: RunningDaemon): { stopping: () => boolean } {
  let stopping = false;
  const shutdown = async (code: number): Promise<never> => {
    if (!stopping) {
      stopping = true;
      say('\nStopping the daemon and its record processors...');
      await daemon.stop();
      say('Stopping the emulators...');
      await stack.stop();
      say('Stopped. Nothing is left running.');
    }
    process.exit(code);
  };
  process.on('SIGINT', () => void shutdown(0));
  process.on('SIGTERM', () => void shutdown(0));
  void daemon.exited.then((code) => {
    if (!stopping) {
      say(`The daemon exited (code ${code}); see ${logFile}`);
      void shutdown(1);
    }
  });
  return { stopping: () => stopping };
}

/** Sends the demo in waves and shows each event's outcome as the processor logs it. */
async function runDemo(clients: AwsClients, config: Config, stopping: () => boolean): Promise<{ settled: number; total: number }> {
  let settled = 0;
  let total = 0;
  for (const [n, wave] of demoWaves().entries()) {
    const sent = await putRecords(clients.kinesis, config.streamName, wave.map((item) => item.record));
    total += sent.length;
    say(n === 0 ? `Sent ${sent.length} demo events. Waiting for the processor (the daemon takes up to ~30 s to take its first leases)...\n` : `\nSent ${sent.length} more events for the same policies:\n`);
    const wanted = new Map(sent.map((put, i) => [sentRecordId(put), wave[i]!]));
    const shown = new Set<string>();
    const deadline = Date.now() + 180_000;
    while (shown.size < wanted.size && Date.now() < deadline && !stopping()) {
      for (const line of readOutcomes(logFile)) {
        const key = outcomeRecordId(line);
        const item = wanted.get(key);
        if (!item || shown.has(key)) continue;
        shown.add(key);
        const reason = line.outcome === 'rejected' && line.reason ? ` ${line.reason}` : '';
        say(`  ${(line.outcome + reason).padEnd(30)} ${line.partitionKey.padEnd(18)} ${String(line.latencyMs ?? '?').padStart(6)} ms   expected: ${item.expect}`);
      }
      await sleep(250);
    }
    settled += shown.size;
  }
  return { settled, total };
}

async function showState(clients: AwsClients, config: Config): Promise<void> {
  say(`\nManaged policies now in the emulated IAM (${config.managedPathPrefix}):`);
  for (const policy of await listPolicies(clients.iam, config.managedPathPrefix)) {
    const versions = await clients.iam.send(new ListPolicyVersionsCommand({ PolicyArn: policy.Arn }));
    say(`  ${policy.Arn}  (${versions.Versions?.length ?? 0} version(s), default ${policy.DefaultVersionId})`);
  }
  const letters = await clients.dynamodb.send(new ScanCommand({ TableName: config.deadLetterTable, Select: 'COUNT' }));
  say(`Dead letters: ${letters.Count ?? 0} (table ${config.deadLetterTable})`);
}

function printHints(config: Config): void {
  say('\nThe processor keeps running. Try it from another shell:');
  say(`  set -a; . ${join(dir, 'stack.env')}; set +a`);
  say(`  aws kinesis put-record --stream-name ${config.streamName} --partition-key my-policy --cli-binary-format raw-in-base64-out \\`);
  say(`    --data '{"specVersion":"1","eventId":"e-1","type":"policy.upserted","policy":{"name":"my-policy"},"document":{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}]}}'`);
  say('Or look at it with the operator tool:  npm run ops -- status --local   (and: dead-letters list, replay, produce)');
  say('Press Ctrl-C to stop everything.');
}
