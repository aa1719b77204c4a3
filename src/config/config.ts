// The one place configuration is read. Every knob is an environment variable
// with a documented default (docs/configuration.md mirrors this table), so the
// same build runs on the local stack and on AWS; AWS endpoints and credentials
// come from the SDK's own variables (AWS_REGION, AWS_ENDPOINT_URL_KINESIS, ...).
import { hostname } from 'node:os';
import { DEFAULT_HOLDER_WAIT_MS } from '../aws/iam-rate/host-limiter.js';
import { closest } from './closest-name.js';

export interface Config {
  /** Names the application: the KCL application, the `managed-by` tag value, table prefixes. */
  appName: string;
  /**
   * `live` applies the stream to IAM; `shadow` plans each record and writes
   * nothing to IAM (docs/operations.md, "Shadow mode"), under a namespace of
   * its own (`namespace`), judging ownership by the live application's tag.
   */
  mode: 'live' | 'shadow';
  /** The KCL application name and the prefix of the tables: appName, or `<appName>-shadow` in shadow mode. */
  namespace: string;
  region: string;
  streamName: string;
  ledgerTable: string;
  /** The eventIds that left a ledger entry's window, kept eventIdTtlDays (docs/ledger.md, "The event archive"). */
  eventArchiveTable: string;
  deadLetterTable: string;
  /** KCL lease table: the daemon names it after the application. */
  leaseTable: string;
  /** IAM path every managed policy lies under; `/` + segments + `/`. */
  managedPathPrefix: string;
  /**
   * Accounts an event may name besides the worker's own (IPS_TARGET_ACCOUNTS,
   * comma-separated 12-digit ids); empty: only the worker's own. An event for
   * any other is `rejected account-not-allowed`.
   */
  targetAccounts: string[];
  /**
   * The role assumed in each target account (IPS_TARGET_ROLE_NAME): the
   * target role, or in shadow mode the read-only audit role (targetRoleName()).
   */
  targetRoleName: string;
  /** The ExternalId the target roles' trust policies ask for (IPS_TARGET_EXTERNAL_ID); undefined: none sent. */
  targetExternalId: string | undefined;
  /** Policies processed concurrently within one shard. */
  maxConcurrentPolicies: number;
  /** Entries in the in-process duplicate cache (per shard child). */
  dedupCacheSize: number;
  /** How long a ledger claim protects an event before another owner may take it over. */
  claimTtlMs: number;
  /**
   * How long after it was sent an IAM call may still take effect: the AWS
   * clients' request timeout. A call cancelled when its claim was lost may be
   * on the wire already, so after a lost or taken-over claim, IAM is
   * re-verified only once this has passed (docs/ledger.md).
   */
  lateWriteMs: number;
  /**
   * The largest clock offset from AWS's (as the SDK measures it from the Date
   * headers of DynamoDB's answers) with which this host may claim; undefined:
   * derived from claimTtlMs (docs/ledger.md, "Clocks"; ledger/clock-skew.ts).
   */
  maxClockOffsetMs: number | undefined;
  /** eventIds remembered in each policy's ledger entry to recognise producer retries; older ones go to the archive. */
  recentEventIds: number;
  /** How long an archived eventId (one that left a ledger entry's window) is kept: longer than the stream's retention. */
  eventIdTtlDays: number;
  /**
   * What a document may grant (docs/guardrails.md): `admin-equivalent`
   * (default) refuses any escalation action on all resources, `literal` only
   * Action "*" on Resource "*", `off` nothing.
   */
  guardrail: 'admin-equivalent' | 'literal' | 'off';
  /** Action patterns no event may grant on any resource, whatever the guardrail (IPS_DENIED_ACTIONS, comma-separated). */
  deniedActions: string[];
  /** A document naming an action no AWS service publishes: `apply` it and report the action (default), or `reject` the event. */
  unknownActions: 'apply' | 'reject';
  /** Attempts per AWS call (SDK retries with backoff and jitter) before the pipeline's own retry. */
  awsMaxAttempts: number;
  /**
   * How the IAM client meets IAM's rate limit (per account, shared by every
   * worker): `shared` (default), one limiter that learns the rate from
   * throttling for all record processors of a host, a token per attempt
   * (aws/iam-rate/host-limiter.ts); `adaptive`, the SDK's adaptive retry mode
   * (the same, one limiter per client); `standard`, retries with backoff only.
   * Measured under a rate limit in docs/performance.md.
   */
  iamRetryMode: 'standard' | 'adaptive' | 'shared';
  /**
   * `shared` mode: how long a record processor owed a token waits without a
   * word from the process holding the host's gate before it gates its own calls
   * (and tries to re-join six times as long later). Default: 2.5 tokens at the
   * gate's slowest rate (0.5 a second), 5 s; a live holder sends a keep-alive
   * every quarter of it.
   */
  iamLimiterWaitMs: number;
  /** Base of the pipeline's backoff between rounds for an unsettled policy (faults/backoff.ts). */
  retryBaseMs: number;
  /** Cap of the pipeline's backoff between rounds for an unsettled policy. */
  retryBackoffCapMs: number;
  /** Attempts of a checkpoint the daemon answers with throttling or a dependency error. */
  checkpointAttempts: number;
  /** While a batch is held by a fault, how often its settled prefix is checkpointed. */
  progressCheckpointMs: number;
  /** How long IAM's NoSuchEntity for a policy the ledger says is present counts as read lag. */
  iamVisibilityWindowMs: number;
  /** Consecutive transient IAM failures that open the circuit breaker. */
  breakerThreshold: number;
  /** How long the breaker stays open before a trial call. */
  breakerCooldownMs: number;
  /**
   * How long a policy's records may wait on its account's IAM being
   * unavailable (breaker open, AssumeRole refused) before they are parked in
   * the ledger table and stop holding the shard's checkpoint (docs/design.md,
   * "Parking"); 0: never park.
   */
  parkAfterMs: number;
  /** How often a record processor tries to apply the parked records of its shard again. */
  redriveEveryMs: number;
  logLevel: string;
  /** CloudWatch namespace of the Embedded Metric Format documents (metrics/emf.ts). */
  metricsNamespace: string;
  /**
   * Where the record processor's EMF documents go: `stderr` (JSON lines beside
   * the logs), `agent` (the CloudWatch agent at `emfAgentEndpoint`), or `off`.
   */
  metricsSink: 'stderr' | 'agent' | 'off';
  /** The CloudWatch agent's EMF endpoint, tcp://host:port or udp://host:port (AWS_EMF_AGENT_ENDPOINT). */
  emfAgentEndpoint: string | undefined;
  /** How often metrics are published (and the `metrics` log line written). */
  metricsIntervalMs: number;
  /** Names this worker in metrics (the `Worker` dimension) and in shard progress items: the task or host. */
  workerId: string;
  /** How often a record processor writes its shard's progress item into the ledger table while it has news. */
  progressReportMs: number;
}

type Env = Record<string, string | undefined>;

export class ConfigError extends Error {
  override name = 'ConfigError';
}

function text(env: Env, key: string, fallback: string): string {
  const value = env[key];
  return value === undefined || value === '' ? fallback : value;
}

function integer(env: Env, key: string, fallback: number, min = 0): number {
  const raw = env[key];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min) {
    throw new ConfigError(`${key} must be an integer >= ${min}, got ${JSON.stringify(raw)}`);
  }
  return value;
}

/** An integer, or undefined when unset (the default is derived elsewhere). */
function optionalInteger(env: Env, key: string, min = 0): number | undefined {
  const raw = env[key];
  return raw === undefined || raw === '' ? undefined : integer(env, key, 0, min);
}

function flag(env: Env, key: string, fallback: boolean): boolean {
  const raw = env[key];
  if (raw === undefined || raw === '') return fallback;
  if (/^(1|true|yes|on)$/i.test(raw)) return true;
  if (/^(0|false|no|off)$/i.test(raw)) return false;
  throw new ConfigError(`${key} must be true or false, got ${JSON.stringify(raw)}`);
}

function agentEndpoint(env: Env): string | undefined {
  const value = env.AWS_EMF_AGENT_ENDPOINT;
  if (value === undefined || value === '') return undefined;
  if (!/^(tcp|udp):\/\/[^/:]+:\d+\/?$/.test(value)) throw new ConfigError(`AWS_EMF_AGENT_ENDPOINT must look like tcp://host:port or udp://host:port, got ${JSON.stringify(value)}`);
  return value;
}

/** `agent` when an agent endpoint is set, `stderr` otherwise, unless IPS_METRICS_SINK says. */
function metricsSink(env: Env): Config['metricsSink'] {
  const value = text(env, 'IPS_METRICS_SINK', agentEndpoint(env) ? 'agent' : 'stderr');
  if (value !== 'stderr' && value !== 'agent' && value !== 'off') throw new ConfigError(`IPS_METRICS_SINK must be stderr, agent or off, got ${JSON.stringify(value)}`);
  return value;
}

function oneOf<T extends string>(env: Env, key: string, allowed: readonly T[], fallback: T): T {
  const value = text(env, key, fallback);
  if (!(allowed as readonly string[]).includes(value)) throw new ConfigError(`${key} must be one of ${allowed.join(', ')}, got ${JSON.stringify(value)}`);
  return value as T;
}

function list(env: Env, key: string): string[] {
  return text(env, key, '')
    .split(',')
    .map((item) => item.trim())
    .filter((item) => item !== '');
}

/** IPS_GUARDRAIL; the older IPS_REFUSE_ADMIN_GRANT=false still means `off` when IPS_GUARDRAIL is not set. */
function guardrail(env: Env): Config['guardrail'] {
  const fallback = flag(env, 'IPS_REFUSE_ADMIN_GRANT', true) ? 'admin-equivalent' : 'off';
  return oneOf(env, 'IPS_GUARDRAIL', ['admin-equivalent', 'literal', 'off'] as const, fallback);
}

const MANAGED_PATH = /^\/([\x21-\x7e]+\/)*$/;

/** IPS_TARGET_ACCOUNTS: 12-digit account ids, each once. */
function targetAccounts(env: Env): string[] {
  const accounts = list(env, 'IPS_TARGET_ACCOUNTS');
  const bad = accounts.find((account) => !/^\d{12}$/.test(account));
  if (bad !== undefined) throw new ConfigError(`IPS_TARGET_ACCOUNTS must be 12-digit AWS account ids, comma-separated, got ${JSON.stringify(bad)}`);
  return [...new Set(accounts)];
}

/** IAM role names: 1 to 64 of letters, digits and +=,.@_- (a role path is not part of the name). */
const ROLE_NAME = /^[\w+=,.@-]{1,64}$/;
/** The role the workers assume in each target account (infra/aws/target-account.ts names it so). */
export const DEFAULT_TARGET_ROLE_NAME = 'iam-policy-stream-target';
/** The read-only role of each target account: the drift audit's, and a shadow's. */
export const DEFAULT_TARGET_AUDIT_ROLE_NAME = 'iam-policy-stream-target-audit';

/**
 * IPS_TARGET_ROLE_NAME. A shadow writes nothing, so it reads each target
 * account through the read-only role the drift audit assumes there, never
 * through the workers' write role: the deployment names that role to both the
 * same way (IPS_TARGET_ROLE_NAME), and a shadow without the variable gets its
 * default name. A shadow given the write role's default name (the live
 * workers' environment copied with IPS_MODE=shadow) is refused rather than
 * handed credentials that could write IAM.
 */
function targetRoleName(env: Env, mode: Config['mode']): string {
  const fallback = mode === 'shadow' ? DEFAULT_TARGET_AUDIT_ROLE_NAME : DEFAULT_TARGET_ROLE_NAME;
  const name = resourceName(env, 'IPS_TARGET_ROLE_NAME', fallback, ROLE_NAME, 'role name (IAM): 1 to 64 letters, digits, +=,.@_-');
  if (mode === 'shadow' && name === DEFAULT_TARGET_ROLE_NAME) {
    throw new ConfigError(
      `IPS_TARGET_ROLE_NAME must name the target accounts' read-only audit role in shadow mode (default ${DEFAULT_TARGET_AUDIT_ROLE_NAME}), not the workers' write role ${DEFAULT_TARGET_ROLE_NAME}`,
    );
  }
  return name;
}

/** STS ExternalId: 2 to 1,224 of letters, digits and +=,.@:/_- . */
const EXTERNAL_ID = /^[\w+=,.@:/-]{2,1224}$/;

function targetExternalId(env: Env): string | undefined {
  const value = env.IPS_TARGET_EXTERNAL_ID;
  if (value === undefined || value === '') return undefined;
  if (!EXTERNAL_ID.test(value)) throw new ConfigError(`IPS_TARGET_EXTERNAL_ID must be 2 to 1224 of letters, digits and +=,.@:/_-, got a value of ${value.length} characters`);
  return value;
}

/** Kinesis stream names: 1 to 128 of letters, digits, `_`, `.`, `-`. */
const STREAM_NAME = /^[A-Za-z0-9_.-]{1,128}$/;
/** DynamoDB table names (and so the KCL application name, which names the lease table): 3 to 255 of the same. */
const TABLE_NAME = /^[A-Za-z0-9_.-]{3,255}$/;
const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

/** A stream or table name, checked here so a bad one is refused at start-up with its variable named, not later by AWS. */
function resourceName(env: Env, key: string, fallback: string, pattern: RegExp, what: string, derivedFrom?: string): string {
  const value = text(env, key, fallback);
  if (!pattern.test(value)) {
    const origin = env[key] === undefined || env[key] === '' ? (derivedFrom ? ` (derived from ${derivedFrom}; set ${key} or fix ${derivedFrom})` : '') : '';
    throw new ConfigError(`${key} must be a ${what}, got ${JSON.stringify(value)}${origin}`);
  }
  return value;
}

const TABLE_WORDS = 'DynamoDB table name: 3 to 255 letters, digits, _ . -';

export function loadConfig(env: Env = process.env): Config {
  const appName = resourceName(env, 'IPS_APP_NAME', 'iam-policy-stream', TABLE_NAME, 'KCL application and DynamoDB table name: 3 to 255 letters, digits, _ . -');
  const managedPathPrefix = text(env, 'IPS_MANAGED_PATH_PREFIX', '/stream-managed/');
  if (!MANAGED_PATH.test(managedPathPrefix) || managedPathPrefix === '/' || managedPathPrefix.length > 512) {
    throw new ConfigError(`IPS_MANAGED_PATH_PREFIX must look like /segment/.../ (not "/" alone, at most 512 chars), got ${JSON.stringify(managedPathPrefix)}`);
  }
  const mode = oneOf(env, 'IPS_MODE', ['live', 'shadow'] as const, 'live');
  // A shadow worker reads the same stream under its own KCL application and tables, so it never touches the live ones.
  const namespace = mode === 'shadow' ? `${appName}-shadow` : appName;
  const ledgerTable = resourceName(env, 'IPS_LEDGER_TABLE', `${namespace}-ledger`, TABLE_NAME, TABLE_WORDS, 'IPS_APP_NAME');
  const eventArchiveTable = resourceName(env, 'IPS_EVENT_ARCHIVE_TABLE', `${namespace}-event-archive`, TABLE_NAME, TABLE_WORDS, 'IPS_APP_NAME');
  // The archive has its own key schema, and kept apart it stays out of the ledger's scans.
  if (eventArchiveTable === ledgerTable) throw new ConfigError(`IPS_EVENT_ARCHIVE_TABLE must name another table than IPS_LEDGER_TABLE, got ${JSON.stringify(eventArchiveTable)} for both`);
  return {
    appName,
    mode,
    namespace,
    region: text(env, 'AWS_REGION', text(env, 'AWS_DEFAULT_REGION', 'us-east-1')),
    streamName: resourceName(env, 'IPS_STREAM_NAME', 'iam-policy-events', STREAM_NAME, 'Kinesis stream name: 1 to 128 letters, digits, _ . -'),
    ledgerTable,
    eventArchiveTable,
    deadLetterTable: resourceName(env, 'IPS_DEAD_LETTER_TABLE', `${namespace}-dead-letters`, TABLE_NAME, TABLE_WORDS, 'IPS_APP_NAME'),
    leaseTable: resourceName(env, 'IPS_LEASE_TABLE', namespace, TABLE_NAME, TABLE_WORDS, 'IPS_APP_NAME'),
    managedPathPrefix,
    targetAccounts: targetAccounts(env),
    targetRoleName: targetRoleName(env, mode),
    targetExternalId: targetExternalId(env),
    maxConcurrentPolicies: integer(env, 'IPS_MAX_CONCURRENT_POLICIES', 16, 1),
    dedupCacheSize: integer(env, 'IPS_DEDUP_CACHE_SIZE', 100_000, 1),
    claimTtlMs: integer(env, 'IPS_CLAIM_TTL_MS', 60_000, 1_000),
    lateWriteMs: integer(env, 'IPS_LATE_WRITE_MS', 15_000, 1_000),
    maxClockOffsetMs: optionalInteger(env, 'IPS_MAX_CLOCK_OFFSET_MS', 1),
    recentEventIds: integer(env, 'IPS_RECENT_EVENT_IDS', 32, 1),
    eventIdTtlDays: integer(env, 'IPS_EVENT_ID_TTL_DAYS', 8, 1),
    guardrail: guardrail(env),
    deniedActions: list(env, 'IPS_DENIED_ACTIONS'),
    unknownActions: oneOf(env, 'IPS_UNKNOWN_ACTIONS', ['apply', 'reject'] as const, 'apply'),
    awsMaxAttempts: integer(env, 'IPS_AWS_MAX_ATTEMPTS', 5, 1),
    iamRetryMode: oneOf(env, 'IPS_IAM_RETRY_MODE', ['standard', 'adaptive', 'shared'] as const, 'shared'),
    iamLimiterWaitMs: integer(env, 'IPS_IAM_LIMITER_WAIT_MS', DEFAULT_HOLDER_WAIT_MS, 100),
    retryBaseMs: integer(env, 'IPS_RETRY_BASE_MS', 100, 1),
    retryBackoffCapMs: integer(env, 'IPS_RETRY_BACKOFF_CAP_MS', 20_000, 10),
    checkpointAttempts: integer(env, 'IPS_CHECKPOINT_ATTEMPTS', 5, 1),
    progressCheckpointMs: integer(env, 'IPS_PROGRESS_CHECKPOINT_MS', 10_000, 100),
    iamVisibilityWindowMs: integer(env, 'IPS_IAM_VISIBILITY_WINDOW_MS', 30_000, 0),
    breakerThreshold: integer(env, 'IPS_BREAKER_THRESHOLD', 5, 1),
    breakerCooldownMs: integer(env, 'IPS_BREAKER_COOLDOWN_MS', 5_000, 10),
    parkAfterMs: integer(env, 'IPS_PARK_AFTER_MS', 300_000, 0),
    redriveEveryMs: integer(env, 'IPS_REDRIVE_EVERY_MS', 30_000, 100),
    logLevel: oneOf(env, 'IPS_LOG_LEVEL', LOG_LEVELS, 'info'),
    metricsNamespace: text(env, 'IPS_METRICS_NAMESPACE', 'IamPolicyStream'),
    metricsSink: metricsSink(env),
    emfAgentEndpoint: agentEndpoint(env),
    metricsIntervalMs: integer(env, 'IPS_METRICS_INTERVAL_MS', 60_000, 100),
    workerId: text(env, 'IPS_WORKER_ID', hostname()),
    progressReportMs: integer(env, 'IPS_PROGRESS_REPORT_MS', 10_000, 100),
  };
}

/**
 * IPS_* names read outside this module: the daemon's properties
 * (properties/*.properties, src/daemon/properties.ts) and the local stack
 * (tools/local). Both are listed in docs/configuration.md.
 */
const OTHER_SETTINGS = [
  'IPS_KCL_MAX_RECORDS',
  'IPS_KCL_IDLE_MILLIS',
  'IPS_KCL_FAILOVER_MILLIS',
  'IPS_KCL_SHARD_SYNC_MILLIS',
  'IPS_KCL_INITIAL_POSITION',
  'IPS_KCL_METRICS_LEVEL',
  'IPS_KCL_RETRIEVAL_MODE',
  'IPS_KCL_SHUTDOWN_GRACE_MILLIS',
  'IPS_LOCAL_SHARDS',
] as const;

let settingNames: string[] | undefined;

/**
 * Every IPS_* setting the product reads. The loader's own are found by
 * running it once over an empty environment that records what is asked of
 * it, so this list cannot fall behind loadConfig.
 */
export function knownSettings(): string[] {
  if (!settingNames) {
    const asked = new Set<string>(OTHER_SETTINGS);
    const recorder = new Proxy({} as Env, {
      get: (_target, key) => {
        if (typeof key === 'string' && key.startsWith('IPS_')) asked.add(key);
        return undefined;
      },
    });
    loadConfig(recorder);
    settingNames = [...asked].sort();
  }
  return settingNames;
}

/**
 * What start-up should warn about: an IPS_* variable no part of the product
 * reads (a typo such as IPS_STREM_NAME leaves the default in force without a
 * word otherwise), with the known name it most likely meant.
 */
export function configWarnings(env: Env = process.env): string[] {
  const known = knownSettings();
  const warnings: string[] = [];
  for (const name of Object.keys(env).sort()) {
    if (!name.startsWith('IPS_') || known.includes(name)) continue;
    const guess = closest(name, known);
    warnings.push(`${name} is not a setting (docs/configuration.md) and is ignored${guess ? `; did you mean ${guess}?` : ''}`);
  }
  return warnings;
}
