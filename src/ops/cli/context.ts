// What every subcommand works with: the configuration (the same IPS_*
// variables as the processor), AWS clients built the one way the project
// builds them, and a way to ask the operator for confirmation.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline/promises';
import { createAwsClients, destroyAwsClients } from '../../aws/clients.js';
import type { AwsClients } from '../../aws/clients.js';
import { configWarnings, loadConfig } from '../../config/config.js';
import type { Config } from '../../config/config.js';
import { projectRoot } from '../../config/paths.js';
import { UsageError } from './usage-error.js';

export interface OpsContext {
  config: Config;
  aws: AwsClients;
  json: boolean;
  /** The environment the configuration was read from (with the local stack's file under --local). */
  env?: Record<string, string | undefined>;
  /** Asks a yes/no question on the terminal; false when there is no terminal to ask. */
  confirm(question: string): Promise<boolean>;
  close(): void;
}

/** KEY=VALUE lines, as the local stack writes them. */
export function readEnvFile(file: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const match = /^\s*([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(line);
    if (match) env[match[1]!] = match[2]!.replace(/^(['"])(.*)\1$/, '$2');
  }
  return env;
}

export function localStackEnvFile(): string {
  return join(projectRoot(), '.local', 'stack', 'stack.env');
}

async function askOnTerminal(question: string): Promise<boolean> {
  if (!process.stdin.isTTY) return false;
  const prompt = createInterface({ input: process.stdin, output: process.stderr });
  try {
    return /^y(es)?$/i.test((await prompt.question(`${question} [y/N] `)).trim());
  } finally {
    prompt.close();
  }
}

export function createOpsContext(options: { json: boolean; local: boolean; env?: Record<string, string | undefined> }): OpsContext {
  let env = options.env ?? process.env;
  if (options.local) {
    const file = localStackEnvFile();
    if (!existsSync(file)) throw new UsageError(`--local: ${file} does not exist; start the local stack with npm start or npm run stack:up`);
    env = { ...env, ...readEnvFile(file) };
  }
  const config = loadConfig(env);
  for (const warning of configWarnings(env)) process.stderr.write(`ips: warning: ${warning}\n`);
  // Fail fast: an operator waits at a terminal, the SDK's backoff would hide an outage.
  const aws = createAwsClients(config, { env, maxAttempts: 3 });
  return { config, aws, env, json: options.json, confirm: askOnTerminal, close: () => destroyAwsClients(aws) };
}
