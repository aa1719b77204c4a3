// The one way AWS clients are built. Endpoints are not configured here: the
// SDK reads AWS_ENDPOINT_URL_<SERVICE> itself, so the processor, the tools and
// the AWS CLI all reach the same stack (the local emulators or AWS).
import { Agent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { IAMClient } from '@aws-sdk/client-iam';
import { KinesisClient } from '@aws-sdk/client-kinesis';
import { STSClient } from '@aws-sdk/client-sts';
import { fromTemporaryCredentials } from '@aws-sdk/credential-providers';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { AssumeRoleError } from '../faults/errors.js';
import { errorCode } from '../faults/classify.js';
import type { Config } from '../config/config.js';
import type { AwsCallObserver } from './call-observer.js';
import { observeCalls } from './call-observer.js';
import { HostLimiter } from './iam-rate/host-limiter.js';
import type { LimiterEvent } from './iam-rate/host-limiter.js';
import { limitCalls, watchThrottles } from './iam-rate/limit-calls.js';

export interface AwsClients {
  kinesis: KinesisClient;
  dynamodb: DynamoDBClient;
  iam: IAMClient;
  sts: STSClient;
}

export interface ClientOptions {
  /** Sees every call each client makes (metrics, tests, fault injection). */
  observers?: AwsCallObserver[];
  /** Overrides the configured attempts per call (tools that must fail fast). */
  maxAttempts?: number;
  /**
   * Environment to read endpoints and credentials from instead of the process's
   * own (the same AWS_ENDPOINT_URL_* and AWS_* names): lets one process talk to
   * several local stacks, as the tests do.
   */
  env?: Record<string, string | undefined>;
  /** Hears the shared IAM limiter (Config.iamRetryMode `shared`): its fallbacks, re-joins and refused peers. */
  onIamLimiterEvent?: (event: LimiterEvent) => void;
}

const ENDPOINT_VARIABLES = {
  kinesis: 'AWS_ENDPOINT_URL_KINESIS',
  dynamodb: 'AWS_ENDPOINT_URL_DYNAMODB',
  iam: 'AWS_ENDPOINT_URL_IAM',
  sts: 'AWS_ENDPOINT_URL_STS',
} as const;

/** Explicit endpoint and credentials when an env is given; otherwise the SDK's defaults. */
function target(service: keyof typeof ENDPOINT_VARIABLES, options: ClientOptions) {
  const env = options.env;
  if (!env) return {};
  const endpoint = env[ENDPOINT_VARIABLES[service]] ?? env.AWS_ENDPOINT_URL;
  const { AWS_ACCESS_KEY_ID: accessKeyId, AWS_SECRET_ACCESS_KEY: secretAccessKey, AWS_SESSION_TOKEN: sessionToken } = env;
  return {
    ...(endpoint ? { endpoint } : {}),
    ...(accessKeyId && secretAccessKey ? { credentials: { accessKeyId, secretAccessKey, sessionToken } } : {}),
  };
}

function common(config: Config, options: ClientOptions) {
  return {
    region: options.env?.AWS_REGION ?? config.region,
    maxAttempts: options.maxAttempts ?? config.awsMaxAttempts,
    retryMode: 'standard' as const,
    // HTTP/1.1 with keep-alive. The Kinesis client would otherwise try HTTP/2,
    // which buys nothing for the unary calls made here.
    requestHandler: new NodeHttpHandler({
      httpAgent: new Agent({ keepAlive: true, maxSockets: 64 }),
      httpsAgent: new HttpsAgent({ keepAlive: true, maxSockets: 64 }),
      connectionTimeout: 3_000,
      // A call not answered by then is given up; re-verification after a lost claim waits as long.
      requestTimeout: config.lateWriteMs,
    }),
  };
}

/**
 * The host limiters this process uses, by key, with the client sets that use
 * each: the last set destroyed closes it (and removes its socket file, which
 * would otherwise outlive the process and be found stale by the next holder).
 */
const limiters = new Map<string, { limiter: HostLimiter; users: number; listeners: Set<(event: LimiterEvent) => void> }>();

/** What destroyAwsClients must release for a client set. */
const releases = new WeakMap<AwsClients, () => void>();

function retainLimiter(key: string, config: Config, listener: ((event: LimiterEvent) => void) | undefined): { limiter: HostLimiter; release: () => void } {
  let entry = limiters.get(key);
  if (!entry) {
    const listeners = new Set<(event: LimiterEvent) => void>();
    const limiter = new HostLimiter(key, undefined, {
      waitMs: config.iamLimiterWaitMs,
      onEvent: (event) => {
        for (const hear of listeners) hear(event);
      },
    });
    limiters.set(key, (entry = { limiter, users: 0, listeners }));
  }
  const held = entry;
  held.users++;
  if (listener) held.listeners.add(listener);
  let released = false;
  return {
    limiter: held.limiter,
    release: () => {
      if (released) return;
      released = true;
      if (listener) held.listeners.delete(listener);
      if (--held.users > 0) return;
      held.limiter.close();
      limiters.delete(key);
    },
  };
}

/**
 * IAM's rate limit is per account and every worker draws from it
 * (Config.iamRetryMode): `shared` (default) puts one limiter, shared by the
 * record processors of a host and learning the rate from IAM's throttling, in
 * front of each attempt; `adaptive` lets each SDK client do the same on its
 * own; `standard` only retries with backoff. Under a rate limit with several
 * record processors, `shared` met fewer throttles and applied changes faster
 * (docs/performance.md).
 */
function iamClient(
  config: Config,
  options: ClientOptions,
  base: ReturnType<typeof common>,
  account?: { id: string; credentials: AssumedCredentials; onHeld?: () => void },
): { iam: IAMClient; release?: () => void; limiter?: HostLimiter } {
  const mode = config.iamRetryMode ?? 'standard';
  const iam = new IAMClient({
    ...base,
    ...(mode === 'adaptive' ? { retryMode: 'adaptive' as const } : {}),
    ...target('iam', options),
    ...(account ? { credentials: account.credentials } : {}),
  });
  limitExceededIsARefusal(iam);
  if (mode !== 'shared') return { iam };
  // The processes that share a limit: one application, one region, one IAM
  // endpoint, one account (IAM's rate limit is the account's: a target
  // account's throttling never slows another's calls).
  const endpoint = options.env?.AWS_ENDPOINT_URL_IAM ?? options.env?.AWS_ENDPOINT_URL ?? process.env.AWS_ENDPOINT_URL_IAM ?? process.env.AWS_ENDPOINT_URL ?? 'aws';
  const key = `${config.appName}|${base.region}|${endpoint}${account ? `|${account.id}` : ''}`;
  const { limiter, release } = retainLimiter(key, config, options.onIamLimiterEvent);
  limitCalls(iam, limiter, 'iam-shared-rate-limit', account?.onHeld);
  return { iam, release, limiter };
}

/**
 * IAM's LimitExceeded is a refusal (5 versions, the document's size, an
 * account quota), not its rate: the SDK's retry reads the name it gives the
 * error, `LimitExceededException`, as throttling, and would send the same
 * refused call 4 more times over seconds (and, in adaptive mode, slow every
 * call down). Inside the retry loop the error takes IAM's own code as its
 * name, which the SDK does not count as throttling; the class and the code
 * the processor checks (iam/classify-iam-error.ts) stay the same.
 */
function limitExceededIsARefusal(client: IAMClient): void {
  const middleware = (next: (args: unknown) => Promise<unknown>) => async (args: unknown) => {
    try {
      return await next(args);
    } catch (error) {
      if ((error as { name?: string })?.name === 'LimitExceededException') (error as { name: string }).name = 'LimitExceeded';
      throw error;
    }
  };
  client.middlewareStack.addRelativeTo(middleware as never, { relation: 'after', toMiddleware: 'retryMiddleware', name: 'iam-limit-exceeded-is-a-refusal', override: true });
}

/** The clients; whoever makes them destroys them (destroyAwsClients), which also leaves the shared IAM limiter. */
export function createAwsClients(config: Config, options: ClientOptions = {}): AwsClients {
  const base = common(config, options);
  const { iam, release } = iamClient(config, options, base);
  const clients: AwsClients = {
    kinesis: new KinesisClient({ ...base, ...target('kinesis', options) }),
    dynamodb: new DynamoDBClient({ ...base, ...target('dynamodb', options) }),
    iam,
    sts: new STSClient({ ...base, ...target('sts', options) }),
  };
  if (release) releases.set(clients, release);
  for (const observer of options.observers ?? []) {
    observeCalls(clients.kinesis, 'kinesis', observer);
    observeCalls(clients.dynamodb, 'dynamodb', observer);
    observeCalls(clients.iam, 'iam', observer);
    observeCalls(clients.sts, 'sts', observer);
  }
  return clients;
}

/** Credentials of a target account's role, from the SDK's temporary-credentials provider. */
type AssumedCredentials = ReturnType<typeof fromTemporaryCredentials>;

export interface TargetAccount {
  /** The 12-digit account id. */
  account: string;
  /** The partition the worker's own ARN names (aws, aws-cn, aws-us-gov). */
  partition: string;
  /** Names the worker and shard in the assumed role's session (CloudTrail shows it): at most 64 of [\w+=,.@-]. */
  sessionName: string;
  /** Told of every AssumeRole that failed (a metric and a log line), with the account and the role ARN. */
  onAssumeRoleFailure?: (failure: AssumeRoleError) => void;
}

/** A target account's IAM and STS clients, both signed with the assumed role's credentials. */
export interface TargetAccountClients {
  account: string;
  roleArn: string;
  iam: IAMClient;
  sts: STSClient;
  /**
   * When the account's IAM last throttled an attempt of a call (each SDK
   * attempt counts), or the account's shared gate last held one for its turn
   * (the gate paces the account's calls only after IAM throttled a process of
   * the host: this one may never meet a throttle itself), epoch ms.
   */
  lastRateBoundAt(): number | undefined;
  /**
   * Calls per second the host's shared gate for the account allows now (what
   * IAM allows the account, learned from every process's throttles; Infinity:
   * no limit learned); undefined when not known (another retry mode than
   * `shared`, a follower not yet told the holder's rate).
   */
  allowedRate(): number | undefined;
}

/** The ARN of the role the workers assume in a target account (Config.targetRoleName). */
export function targetRoleArn(config: Pick<Config, 'targetRoleName'>, partition: string, account: string): string {
  return `arn:${partition}:iam::${account}:role/${config.targetRoleName}`;
}

/**
 * A session name from the worker and shard, as STS allows it (2 to 64 of
 * [\w+=,.@-]): the shard is kept whole, the worker cut to fit.
 */
export function roleSessionName(worker: string, shardId: string): string {
  const clean = (text: string) => text.replace(/[^\w+=,.@-]/g, '-');
  const shard = clean(shardId).slice(0, 40);
  const name = `${clean(worker).slice(0, 64 - shard.length - 1)}@${shard}`;
  return name.length >= 2 ? name : `ips@${shard}`;
}

/**
 * The clients of a target account: IAM (with the same middleware as the own
 * account's: LimitExceeded is a refusal, the call observers, and, in `shared`
 * mode, a host limiter of the account's own) and STS, signed with the
 * credentials of Config.targetRoleName in that account. The credentials come
 * from the SDK's temporary-credentials provider (STS AssumeRole, with the
 * ExternalId when configured); each client caches them and refreshes them
 * before they expire. An AssumeRole that fails becomes an AssumeRoleError
 * naming the account and the role ARN (transient: the record waits and is
 * tried again, visible in `onAssumeRoleFailure`'s metric and log).
 */
export function createTargetAccountClients(config: Config, to: TargetAccount, options: ClientOptions = {}): TargetAccountClients {
  const base = common(config, options);
  const roleArn = targetRoleArn(config, to.partition, to.account);
  const env = options.env;
  const endpoint = env ? (env.AWS_ENDPOINT_URL_STS ?? env.AWS_ENDPOINT_URL) : undefined;
  const master =
    env?.AWS_ACCESS_KEY_ID && env.AWS_SECRET_ACCESS_KEY ? { accessKeyId: env.AWS_ACCESS_KEY_ID, secretAccessKey: env.AWS_SECRET_ACCESS_KEY, sessionToken: env.AWS_SESSION_TOKEN } : undefined;
  const assume = fromTemporaryCredentials({
    params: {
      RoleArn: roleArn,
      RoleSessionName: to.sessionName,
      ...(config.targetExternalId !== undefined ? { ExternalId: config.targetExternalId } : {}),
    },
    ...(master ? { masterCredentials: master } : {}),
    clientConfig: { region: base.region, maxAttempts: base.maxAttempts, ...(endpoint ? { endpoint } : {}) },
  });
  const credentials: AssumedCredentials = async (properties) => {
    try {
      return await assume(properties);
    } catch (error) {
      const failure = new AssumeRoleError(to.account, roleArn, errorCode(error), error);
      to.onAssumeRoleFailure?.(failure);
      throw failure;
    }
  };
  let rateBoundAt: number | undefined;
  const rateBound = () => {
    rateBoundAt = Date.now();
  };
  const { iam, release, limiter } = iamClient(config, options, base, { id: to.account, credentials, onHeld: rateBound });
  // The IAM client's provider is the SDK's cache of the assumed credentials: the STS client signs
  // with the same ones rather than assuming the role again for a cache of its own.
  const sts = new STSClient({ ...base, ...target('sts', options), credentials: iam.config.credentials });
  if (release) targetReleases.set(iam, release);
  for (const observer of options.observers ?? []) {
    observeCalls(iam, 'iam', observer);
    observeCalls(sts, 'sts', observer);
  }
  watchThrottles(iam, rateBound);
  return { account: to.account, roleArn, iam, sts, lastRateBoundAt: () => rateBoundAt, allowedRate: () => limiter?.allowedRate };
}

const targetReleases = new WeakMap<IAMClient, () => void>();

export function destroyTargetAccountClients(clients: TargetAccountClients): void {
  clients.iam.destroy();
  clients.sts.destroy();
  targetReleases.get(clients.iam)?.();
  targetReleases.delete(clients.iam);
}

/** Target accounts' IAM clients for an operator's command: each built on its first use, all destroyed by `close`. */
export interface TargetAccountPool {
  iamOf(account: string, partition: string): IAMClient;
  close(): void;
}

/** A pool whose clients assume Config.targetRoleName in each account, under one session name (CloudTrail shows the command). */
export function targetAccountPool(config: Config, sessionName: string, options: ClientOptions = {}): TargetAccountPool {
  const targets = new Map<string, TargetAccountClients>();
  return {
    iamOf(account, partition) {
      let clients = targets.get(account);
      if (!clients) targets.set(account, (clients = createTargetAccountClients(config, { account, partition, sessionName }, options)));
      return clients.iam;
    },
    close() {
      for (const clients of targets.values()) destroyTargetAccountClients(clients);
      targets.clear();
    },
  };
}

export function destroyAwsClients(clients: AwsClients): void {
  clients.kinesis.destroy();
  clients.dynamodb.destroy();
  clients.iam.destroy();
  clients.sts.destroy();
  releases.get(clients)?.();
  releases.delete(clients);
}
