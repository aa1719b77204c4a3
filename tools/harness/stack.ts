// Starts a fresh local stack for a test file and stops it afterwards, even
// when the test fails. Each stack gets its own free ports and folder, so
// stacks never share state.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ExecutionContext, TestFn } from 'ava';
import { createAwsClients, destroyAwsClients } from '../../src/aws/clients.js';
import type { AwsClients, ClientOptions } from '../../src/aws/clients.js';
import { loadConfig } from '../../src/config/config.js';
import type { Config } from '../../src/config/config.js';
import { startStack } from '../local/stack.js';
import type { LocalStack } from '../local/stack.js';

export interface TestStack {
  stack: LocalStack;
  config: Config;
  /** Clients bound to this stack (not to the process environment). */
  clients(options?: Omit<ClientOptions, 'env'>): AwsClients;
}

export async function startTestStack(options: { shards?: number; settings?: Record<string, string> } = {}): Promise<TestStack> {
  const dir = mkdtempSync(join(tmpdir(), 'ips-stack-'));
  const stack = await startStack({ dir, shards: options.shards ?? 2, settings: options.settings ?? {} });
  const config = loadConfig({ ...stack.env });
  const made: AwsClients[] = [];
  const originalStop = stack.stop;
  stack.stop = async () => {
    made.forEach(destroyAwsClients);
    await originalStop();
  };
  return {
    stack,
    config,
    clients: (clientOptions = {}) => {
      const clients = createAwsClients(config, { ...clientOptions, env: stack.env });
      made.push(clients);
      return clients;
    },
  };
}

/** Registers a stack for the whole test file: started before, stopped after (always). */
export function useTestStack<Context>(test: TestFn<Context>, options: Parameters<typeof startTestStack>[0] = {}): () => TestStack {
  let current: TestStack | undefined;
  test.before(async () => {
    current = await startTestStack(options);
  });
  test.after.always(async () => {
    await current?.stack.stop();
  });
  return () => {
    if (!current) throw new Error('the test stack is not started');
    return current;
  };
}

export type { ExecutionContext };
