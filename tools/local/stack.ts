// Starts and stops the whole local stack: emulators, stream, tables. The
// endpoints are handed out under the SDK's own variable names, so the
// processor, the tools, the AWS CLI and any SDK reach the same stack.
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createAwsClients, destroyAwsClients } from '../../src/aws/clients.js';
import { loadConfig } from '../../src/config/config.js';
import { provision } from '../../src/ops/provision.js';
import type { EmulatorProcess } from './emulators.js';
import { isAlive, killGroup } from '../../src/daemon/processes.js';
import { endpointsOf, startEmulators } from './emulators.js';

export interface StackOptions {
  /** Where logs, stack.env and stack.json go. */
  dir: string;
  shards?: number;
  /** Extra configuration (IPS_* variables) for the processor and the tools. */
  settings?: Record<string, string>;
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
    ...settings,
  };
}

export async function startStack(options: StackOptions): Promise<LocalStack> {
  mkdirSync(options.dir, { recursive: true });
  const emulators = await startEmulators(join(options.dir, 'logs'));
  const stop = async () => {
    await Promise.all(emulators.map((emulator) => killGroup(emulator.pid)));
    forgetStack(options.dir);
  };
  try {
    const env = stackEnv(emulators, options.settings);
    const config = loadConfig({ ...process.env, ...env });
    const clients = createAwsClients(config, { env });
    try {
      await provision(config, clients, options.shards ?? 4);
    } finally {
      destroyAwsClients(clients);
    }
    writeFileSync(join(options.dir, 'stack.env'), Object.entries(env).map(([k, v]) => `${k}=${v}\n`).join(''));
    writeFileSync(join(options.dir, 'stack.json'), JSON.stringify({ emulators, env }, null, 2));
    return { dir: options.dir, env, emulators, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

/** Stops a stack started by another process (npm run stack:down). */
export async function stopStackIn(dir: string): Promise<EmulatorProcess[]> {
  let emulators: EmulatorProcess[];
  try {
    emulators = (JSON.parse(readFileSync(join(dir, 'stack.json'), 'utf8')) as { emulators: EmulatorProcess[] }).emulators;
  } catch {
    return [];
  }
  const running = emulators.filter((emulator) => isAlive(emulator.pid));
  await Promise.all(running.map((emulator) => killGroup(emulator.pid)));
  forgetStack(dir);
  return running;
}

/** A stopped stack leaves no endpoints behind: `ips --local` then says to start one, not "connection refused". */
function forgetStack(dir: string): void {
  rmSync(join(dir, 'stack.json'), { force: true });
  rmSync(join(dir, 'stack.env'), { force: true });
}
