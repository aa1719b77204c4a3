// A reconciler wired to IAM as it really behaves, for the integration tests
// of the IAM step: moto alone, the realistic-IAM layer in front of it (reads
// lag writes, DeletePolicy conflicts), the fault proxy in front of that (lost
// answers on cue). Clients straight to moto tell what IAM really holds.
import type { ExecutionContext, TestFn } from 'ava';
import { createAwsClients, destroyAwsClients } from '../../src/aws/clients.js';
import type { AwsClients } from '../../src/aws/clients.js';
import { loadConfig } from '../../src/config/config.js';
import type { PolicyDeleted, PolicyUpserted } from '../../src/contract/event.js';
import { IamReconciler } from '../../src/iam/reconciler.js';
import type { ReconcilerOptions, StepHint } from '../../src/iam/reconciler.js';
import { LOCAL_ACCOUNT_ID } from '../../tools/local/stack.js';
import { Metrics } from '../../src/metrics/metrics.js';
import { startFaultProxy } from '../../tools/harness/fault-proxy.js';
import type { FaultProxy } from '../../tools/harness/fault-proxy.js';
import { readManagedPolicy } from './iam-state.js';
import type { ActualPolicy } from './iam-state.js';
import { startMoto } from './moto.js';
import type { Moto } from './moto.js';
import { silentLogger } from './pipeline.js';
import type { RealisticIam } from '../../tools/harness/realistic-iam.js';
import { RejectedEventError } from '../../src/faults/errors.js';
import { retryUntilSettled } from '../../src/faults/retry.js';
import { policyArn } from '../../src/iam/policies.js';

export const PREFIX = '/stream-managed/';
export const arn = (name: string) => policyArn({ account: LOCAL_ACCOUNT_ID }, PREFIX, name);
export const doc = (bucket: string) => ({
  Version: '2012-10-17',
  Statement: [{ Effect: 'Allow', Action: 's3:GetObject', Resource: `arn:aws:s3:::${bucket}/*` }],
});
export const trust = JSON.stringify({ Version: '2012-10-17', Statement: [{ Effect: 'Allow', Principal: { Service: 'ec2.amazonaws.com' }, Action: 'sts:AssumeRole' }] });

let moto: Moto | undefined;

/** Starts moto for the test file (before), stops it after, even on failure. */
export function useMoto<Context>(test: TestFn<Context>): void {
  test.before(async () => {
    moto = await startMoto();
  });
  test.after.always(async () => {
    await moto?.stop();
  });
}

let counter = 0;
export function upsert(name: string, document: object): PolicyUpserted {
  return { specVersion: '1', eventId: `r${counter++}`, type: 'policy.upserted', policyName: name, policyPath: PREFIX, pathGiven: true, document, tags: {} } as PolicyUpserted;
}
export function remove(name: string): PolicyDeleted {
  return { specVersion: '1', eventId: `r${counter++}`, type: 'policy.deleted', policyName: name, policyPath: PREFIX, pathGiven: true } as PolicyDeleted;
}

export interface Rig {
  /** The reconciler, its IAM calls through the fault proxy and the realistic layer. */
  r: IamReconciler;
  /** Calls as the reconciler makes them, retried by the pipeline until they settle. */
  settle: { upsert(event: PolicyUpserted, hint?: StepHint): Promise<string>; delete(event: PolicyDeleted, hint?: StepHint): Promise<string> };
  proxy: FaultProxy;
  layer: RealisticIam;
  /** A client through the realistic layer (lagging reads), for the test's own writes. */
  iam: AwsClients['iam'];
  /** A client straight to moto: what IAM really holds. */
  truth: AwsClients['iam'];
  metrics: Metrics;
  /** Another reconciler on the same clients, with its own options. */
  reconciler(options: Partial<ReconcilerOptions>): IamReconciler;
}

/** A reconciler in front of realistic IAM; everything is closed when the test ends. */
export async function rig(t: ExecutionContext, options: { lagMs?: [number, number]; sdkAttempts?: number; seed?: number; maxPoliciesPerAccount?: number } = {}): Promise<Rig> {
  if (!moto) throw new Error('moto is not started: call useMoto(test) in the test file');
  const env = moto.env;
  const proxy = await startFaultProxy({
    target: env.AWS_ENDPOINT_URL_IAM!,
    protocol: 'iam',
    rate: 0,
    realisticIam: { lagMs: options.lagMs ?? [0, 0], seed: options.seed ?? 7, ...(options.maxPoliciesPerAccount !== undefined ? { maxPoliciesPerAccount: options.maxPoliciesPerAccount } : {}) },
  });
  const layer = proxy.realisticIam!;
  const config = { ...loadConfig(env), breakerCooldownMs: 20 };
  const metrics = new Metrics();
  const processor = createAwsClients(config, { env: { ...env, AWS_ENDPOINT_URL_IAM: proxy.endpoint }, maxAttempts: options.sdkAttempts ?? 1, observers: [metrics.awsCallCounter()] });
  const tester = createAwsClients(config, { env: { ...env, AWS_ENDPOINT_URL_IAM: layer.endpoint } });
  const direct = createAwsClients(config, { env });
  t.teardown(async () => {
    [processor, tester, direct].forEach(destroyAwsClients);
    await proxy.close();
  });
  const r = new IamReconciler({ iam: processor.iam, sts: processor.sts, config, metrics, logger: silentLogger, attempts: 4, baseDelayMs: 5, maxDelayMs: 40, visibilityWindowMs: 10_000 });
  const retry = { baseMs: 20, capMs: 200, logger: silentLogger, metrics, what: {} };
  // As the pipeline does: a transient fault runs the step again later; a refusal is final.
  const settled = (step: () => Promise<string>) =>
    retryUntilSettled(async () => {
      try {
        return await step();
      } catch (error) {
        if (error instanceof RejectedEventError) return `rejected:${error.reason}`;
        throw error;
      }
    }, retry);
  const settle = {
    upsert: (event: PolicyUpserted, hint: StepHint = {}) => settled(() => r.upsert(event, hint)),
    delete: (event: PolicyDeleted, hint: StepHint = {}) => settled(() => r.delete(event, hint)),
  };
  const reconciler = (extra: Partial<ReconcilerOptions>) =>
    new IamReconciler({ iam: processor.iam, sts: processor.sts, config, metrics, logger: silentLogger, attempts: 4, baseDelayMs: 5, maxDelayMs: 40, ...extra });
  return { r, settle, proxy, layer, iam: tester.iam, truth: direct.iam, metrics, reconciler };
}

/** What IAM really holds for a managed policy (straight from the emulator). */
export const actual = (rig: Rig, name: string): Promise<ActualPolicy | undefined> => readManagedPolicy(rig.truth, LOCAL_ACCOUNT_ID, PREFIX, name);
