// Starts and stops the whole local stack: emulators, stream, tables. The
// endpoints are handed out under the SDK's own variable names, so the
// processor, the tools, the AWS CLI and any SDK reach the same stack.
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { createAwsClients, destroyAwsClients } from '../../src/aws/clients.js';
import { loadConfig } from '../../src/config/config.js';
import { provision } from '../../src/ops/provision.js';
import type { EmulatorProcess } from './emulators.js';
import { isAlive, killGroup } from '../../src/daemon/processes.js';
import { endpointsOf, startEmulators } from './emulators.js';
import { LOCAL_TARGET_ACCOUNTS, provisionTargetRoles } from './target-roles.js';

export interface StackOptions {
  /** Where logs, stack.env and stack.json go. */
  dir: string;
  shards?: number;
  /** Extra configuration (IPS_* variables) for the processor and the tools. */
  settings?: Record<string, string>;
  /**
   * The process that keeps this stack running and stops it (npm start): while
   * it lives, another stack command refuses to stop the stack without --force.
   */
  owner?: number;
}

/** What stack.json records about a running stack. */
interface StackRecord {
  emulators: EmulatorProcess[];
  env: Record<string, string>;
  owner?: number;
  /** The daemon npm start runs on the stack (its own process group). */
  daemon?: number;
}

/** Another running `npm start` uses the stack: stopping it needs --force. */
export class StackInUseError extends Error {
  override name = 'StackInUseError';
}

export interface LocalStack {
  dir: string;
  env: Record<string, string>;
  emulators: EmulatorProcess[];
  stop(): Promise<void>;
}

/** The emulators' moto account: STS GetCallerIdentity answers with it. */
export const LOCAL_ACCOUNT_ID = '123456789012';

export function stackEnv(emulators: EmulatorProcess[], settings: Record<string, string> = {}): Record<string, string> {
  const endpoints = endpointsOf(emulators);
  return {
    AWS_REGION: 'us-east-1',
    // Tools that read only the older name (the AWS CLI v1, some SDKs) find the same region.
    AWS_DEFAULT_REGION: 'us-east-1',
    AWS_ACCESS_KEY_ID: 'local',
    AWS_SECRET_ACCESS_KEY: 'local',
    AWS_ENDPOINT_URL_KINESIS: endpoints.kinesis,
    AWS_ENDPOINT_URL_DYNAMODB: endpoints.dynamodb,
    AWS_ENDPOINT_URL_IAM: endpoints.iam,
    AWS_ENDPOINT_URL_STS: endpoints.iam,
    AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
    // The emulated target accounts (tools/local/target-roles.ts), each with the role the workers assume.
    IPS_TARGET_ACCOUNTS: LOCAL_TARGET_ACCOUNTS.join(','),
    ...settings,
  };
}

export async function startStack(options: StackOptions): Promise<LocalStack> {
  mkdirSync(options.dir, { recursive: true });
  const emulators = await startEmulators(join(options.dir, 'logs'));
  const stop = async () => {
    await Promise.all(emulators.map((emulator) => killGroup(emulator.pid)));
    forgetStack(options.dir, emulators);
  };
  try {
    const env = stackEnv(emulators, options.settings);
    const config = loadConfig({ ...process.env, ...env });
    const clients = createAwsClients(config, { env });
    try {
      await provision(config, clients, options.shards ?? 4);
      await provisionTargetRoles(env, config, LOCAL_ACCOUNT_ID);
    } finally {
      destroyAwsClients(clients);
    }
    writeFileSync(
      join(options.dir, 'stack.env'),
      Object.entries(env)
        .map(([k, v]) => `${k}=${v}\n`)
        .join(''),
    );
    writeRecord(options.dir, { emulators, env, ...(options.owner ? { owner: options.owner } : {}) });
    return { dir: options.dir, env, emulators, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

/** Records the daemon running on the stack, so that a forced stop reaches it too. */
export function recordDaemon(dir: string, pid: number): void {
  const record = readRecord(dir);
  if (record) writeRecord(dir, { ...record, daemon: pid });
}

/**
 * Stops a stack started by another process (npm run stack:down, or before a
 * new stack starts). A stack that a running `npm start` keeps is refused
 * unless `force`: then that npm start is asked to stop as Ctrl-C would
 * (daemon first, gracefully, then its emulators), and whatever is left after
 * its stop had time to finish is killed.
 */
export async function stopStackIn(dir: string, options: { force?: boolean } = {}): Promise<EmulatorProcess[]> {
  const record = readRecord(dir);
  if (!record) return [];
  const running = record.emulators.filter((emulator) => isAlive(emulator.pid));
  const owner = record.owner !== undefined && record.owner !== process.pid && isAlive(record.owner) ? record.owner : undefined;
  if (owner !== undefined && running.length > 0) {
    if (!options.force) {
      throw new StackInUseError(`the local stack in ${dir} belongs to a running npm start (pid ${owner}); stop it with Ctrl-C in its terminal, or pass --force to stop it from here`);
    }
    try {
      process.kill(owner, 'SIGTERM');
    } catch {
      /* gone already */
    }
    const deadline = Date.now() + OWNER_STOP_MS;
    while (Date.now() < deadline && isAlive(owner)) await sleep(200);
  }
  if (record.daemon !== undefined && isAlive(record.daemon)) await killGroup(record.daemon);
  await Promise.all(running.map((emulator) => killGroup(emulator.pid)));
  forgetStack(dir, record.emulators);
  return running;
}

/** How long a forced stop gives the running npm start to stop its daemon gracefully and then its emulators. */
const OWNER_STOP_MS = 90_000;

function readRecord(dir: string): StackRecord | undefined {
  try {
    return JSON.parse(readFileSync(join(dir, 'stack.json'), 'utf8')) as StackRecord;
  } catch {
    return undefined;
  }
}

function writeRecord(dir: string, record: StackRecord): void {
  writeFileSync(join(dir, 'stack.json'), JSON.stringify(record, null, 2));
}

/**
 * A stopped stack leaves no endpoints behind: `ips --local` then says to start
 * one, not "connection refused". Only this stack's files go: a newer stack
 * that took the folder over (--force) keeps its own.
 */
function forgetStack(dir: string, emulators: EmulatorProcess[]): void {
  const current = readRecord(dir);
  if (current && !current.emulators.some((emulator) => emulators.some((mine) => mine.pid === emulator.pid))) return;
  rmSync(join(dir, 'stack.json'), { force: true });
  rmSync(join(dir, 'stack.env'), { force: true });
}
