// npm run bench -- --drift-policies N : what a drift audit of N policies
// costs, on the local stack. Two cases, each on a fresh IAM (moto) and its
// own tables: every policy tagged with the owner tag alone, and every policy
// with tags of its own besides it. For each:
//
//   - IAM calls, counted by the realistic-IAM layer in front of moto (it
//     pages GetAccountAuthorizationDetails as IAM does and counts every call
//     by action), per policy, and the audit's wall time: `ips drift`'s audit
//     (src/ops/drift-audit.ts) beside the per-policy reads it made before
//     (bench/baselines/per-policy-audit.ts, with --drift-before: about three
//     calls per policy, which moto answers slowly);
//   - DynamoDB read units of the audit (ReturnConsumedCapacity on its
//     client), with no archived eventIds, with 100,000 archived through the
//     ledger (the event archive table), and (first case) with the same
//     100,000 where versions before the archive table kept them (the ledger
//     table).
//
// The ledger entries are written through the ledger's own claim and
// completion, each with a full window of 32 eventIds as a busy policy has;
// the policies are created in IAM directly (the reconciler's own creation is
// measured by the daemon scenarios). Ends with one line per case:
//   drift-audit: policies=N tags=owner-only iam-calls-per-policy=... read-units-ratio=... seconds=...
import { createHash } from 'node:crypto';
import { BatchWriteItemCommand } from '@aws-sdk/client-dynamodb';
import type { AttributeValue, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { CreatePolicyCommand, IAMClient } from '@aws-sdk/client-iam';
import { createAwsClients, destroyAwsClients } from '../src/aws/clients.js';
import { loadConfig } from '../src/config/config.js';
import type { Config } from '../src/config/config.js';
import { OWNER_TAG } from '../src/contract/ownership.js';
import { documentHash } from '../src/iam/document.js';
import { ledgerFromConfig } from '../src/ledger/dynamodb-ledger.js';
import type { DynamoDbLedger } from '../src/ledger/dynamodb-ledger.js';
import { eventArchiveTableDefinition } from '../src/ledger/event-archive-table.js';
import { legacyArchivedEventKey } from '../src/ledger/event-archive.js';
import { LEDGER_KEY, LEDGER_TTL_ATTRIBUTE, ledgerTableDefinition } from '../src/ledger/table.js';
import { DriftAudit } from '../src/ops/drift-audit.js';
import { ensureTable } from '../src/ops/provision.js';
import { meterCapacity } from '../tools/harness/consumed-capacity.js';
import { startRealisticIam } from '../tools/harness/realistic-iam.js';
import type { LocalStack } from '../tools/local/stack.js';
import { perPolicyAudit } from './baselines/per-policy-audit.js';
import { fmt, table } from './lib/stats.js';

export type TagCase = 'owner-only' | 'arbitrary';

export interface AuditRun {
  audit: 'GetAccountAuthorizationDetails' | 'per-policy reads (before)';
  iamCalls: Record<string, number>;
  callsPerPolicy: number;
  seconds: number;
  drifted: number;
}

export interface DriftCaseResult {
  tags: TagCase;
  policies: number;
  audits: AuditRun[];
  archivedEventIds: number;
  /** Read units of the audit: no archived eventIds, 100,000 in the archive table, 100,000 more in the ledger table as before it. */
  readUnits: { none: number; archived: number; archivedInLedger?: number };
  readUnitsRatio: number;
  /** Measured for the first case only: the layout does not depend on the tags. */
  readUnitsRatioInLedger?: number;
  /** Wall time of `ips drift`'s audit, the first run (no archived eventIds). */
  seconds: number;
}

/** The window each entry holds (IPS_RECENT_EVENT_IDS' default): a policy with archived eventIds has a full one. */
const WINDOW = 32;
/** Writes and ledger steps in flight while the bench sets a case up. */
const SETUP_CONCURRENCY = 16;

async function eachLimited<T>(items: T[], limit: number, work: (item: T, index: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) {
        const index = next++;
        await work(items[index]!, index);
      }
    }),
  );
}

const sha = (text: string) => createHash('sha256').update(text).digest('hex');

function documentOf(i: number) {
  return {
    Version: '2012-10-17',
    Statement: [
      { Sid: 'Read', Effect: 'Allow', Action: ['s3:GetObject', 's3:ListBucket'], Resource: [`arn:aws:s3:::team-bucket-${i}`, `arn:aws:s3:::team-bucket-${i}/*`] },
      { Sid: 'Queue', Effect: 'Allow', Action: 'sqs:SendMessage', Resource: `arn:aws:sqs:us-east-1:123456789012:queue-${i % 97}` },
    ],
  };
}

function tagsOf(tagCase: TagCase, i: number): Record<string, string> | undefined {
  if (tagCase === 'owner-only') return undefined;
  return { team: `team-${i % 17}`, 'cost-center': `cc-${i % 41}`, environment: i % 2 ? 'prod' : 'staging' };
}

/** N policies in IAM, created as the reconciler creates them (path, owner tag, the event's tags), and their ledger entries. */
async function seed(config: Config, iam: IAMClient, ledger: DynamoDbLedger, tagCase: TagCase, policies: number): Promise<string[]> {
  const names = Array.from({ length: policies }, (_, i) => `drift-bench-${tagCase}-${i}`);
  await eachLimited(names, SETUP_CONCURRENCY, async (name, i) => {
    const tags = tagsOf(tagCase, i);
    await iam.send(
      new CreatePolicyCommand({
        PolicyName: name,
        Path: config.managedPathPrefix,
        PolicyDocument: JSON.stringify(documentOf(i)),
        Tags: [{ Key: OWNER_TAG, Value: config.appName }, ...Object.entries(tags ?? {}).map(([Key, Value]) => ({ Key, Value }))],
      }),
    );
    const events = Array.from({ length: WINDOW }, (_, n) => ({ eventId: `${name}-event-${n + 1_000}`, payloadHash: sha(`${name}-${n}`) }));
    const position = { shardId: 'shardId-000000000000', sequenceNumber: String(49_000_000_000_000_000_000_000_000_000_000_000_000_000_000_000n + BigInt(i)), subSequenceNumber: 0, lineage: [] };
    const claim = await ledger.claim({ policy: name, record: position, eventId: events.at(-1)!.eventId, payloadHash: events.at(-1)!.payloadHash, owner: 'drift-bench', epoch: 0 });
    if (!claim.won) throw new Error(`claim on ${name} refused: ${claim.because}`);
    await ledger.complete({
      policy: name,
      token: claim.token,
      epoch: 0,
      position,
      events,
      docHash: documentHash(documentOf(i)),
      state: 'present',
      desired: { path: config.managedPathPrefix, document: documentOf(i), ...(tags ? { tags } : {}) },
      outcome: 'created',
    });
  });
  return names;
}

/** `perPolicy` eventIds of each policy archived through the ledger, as completions archive them. */
async function archive(ledger: DynamoDbLedger, names: string[], perPolicy: number): Promise<void> {
  await eachLimited(names, SETUP_CONCURRENCY, async (name) => {
    const events = Array.from({ length: perPolicy }, (_, n) => ({ eventId: `${name}-event-${n}`, payloadHash: sha(`${name}-old-${n}`) }));
    await ledger.archiveEvents(name, 0, events);
  });
}

/** The same archived eventIds where versions before the archive table wrote them: `#event#` items in the ledger table. */
async function archiveInLedger(dynamodb: DynamoDBClient, config: Config, names: string[], perPolicy: number, now: number): Promise<void> {
  const expiresAt = Math.floor(now / 1000) + config.eventIdTtlDays * 86_400;
  await eachLimited(names, SETUP_CONCURRENCY, async (name) => {
    const items: Record<string, AttributeValue>[] = Array.from({ length: perPolicy }, (_, n) => ({
      [LEDGER_KEY]: { S: legacyArchivedEventKey(name, `${name}-event-${n}`) },
      epoch: { N: '0' },
      [LEDGER_TTL_ATTRIBUTE]: { N: String(expiresAt) },
      payloadHash: { S: sha(`${name}-old-${n}`) },
    }));
    for (let at = 0; at < items.length; at += 25) {
      let pending = items.slice(at, at + 25).map((Item) => ({ PutRequest: { Item } }));
      while (pending.length > 0) {
        const result = await dynamodb.send(new BatchWriteItemCommand({ RequestItems: { [config.ledgerTable]: pending } }));
        pending = (result.UnprocessedItems?.[config.ledgerTable] ?? []) as typeof pending;
      }
    }
  });
}

async function resetIam(stack: LocalStack): Promise<void> {
  const response = await fetch(`${stack.env.AWS_ENDPOINT_URL_IAM}/moto-api/reset`, { method: 'POST' });
  if (!response.ok) throw new Error(`moto reset answered ${response.status}`);
}

/** One audit through a fresh realistic-IAM layer, so that its calls are counted alone. */
async function counted(stack: LocalStack, config: Config, policies: number, audit: DriftAuditRunner): Promise<AuditRun> {
  const layer = await startRealisticIam({ target: stack.env.AWS_ENDPOINT_URL_IAM!, lagMs: [0, 0], policyAccess: { allow: [config.managedPathPrefix] } });
  const iam = new IAMClient({ endpoint: layer.endpoint, region: config.region, credentials: { accessKeyId: 'test', secretAccessKey: 'test' }, maxAttempts: config.awsMaxAttempts });
  try {
    const started = performance.now();
    const drifted = await audit.run(iam);
    const seconds = (performance.now() - started) / 1000;
    const iamCalls = { ...layer.stats.calls };
    const total = Object.values(iamCalls).reduce((sum, n) => sum + n, 0);
    return { audit: audit.name, iamCalls, callsPerPolicy: total / policies, seconds, drifted };
  } finally {
    iam.destroy();
    await layer.close();
  }
}

interface DriftAuditRunner {
  name: AuditRun['audit'];
  /** Runs the audit; the number of drifted policies it found. */
  run(iam: IAMClient): Promise<number>;
}

export async function runDriftBench(options: {
  stack: LocalStack;
  policies: number;
  archived: number;
  runTag: string;
  /** Also run the per-policy reads of the audit before GetAccountAuthorizationDetails (about 3 IAM calls per policy: slow on moto). */
  before: boolean;
  say: (message: string) => void;
}): Promise<DriftCaseResult[]> {
  const { stack, policies, archived, runTag, say } = options;
  const results: DriftCaseResult[] = [];
  for (const tagCase of ['owner-only', 'arbitrary'] as TagCase[]) {
    await resetIam(stack);
    const config = { ...loadConfig({ ...stack.env, IPS_APP_NAME: `drift-${runTag}-${tagCase}` }), iamVisibilityWindowMs: 0 };
    const aws = createAwsClients(config, { env: stack.env });
    const audited = createAwsClients(config, { env: stack.env });
    try {
      await ensureTable(aws.dynamodb, ledgerTableDefinition(config.ledgerTable));
      await ensureTable(aws.dynamodb, eventArchiveTableDefinition(config.eventArchiveTable));
      const ledger = ledgerFromConfig(aws.dynamodb, config);
      let t = performance.now();
      const names = await seed(config, aws.iam, ledger, tagCase, policies);
      say(`${tagCase}: ${policies} policies in IAM and the ledger in ${((performance.now() - t) / 1000).toFixed(0)} s`);

      // The audit's own DynamoDB client, metered: its ledger reads are what is measured.
      const meter = meterCapacity(audited.dynamodb);
      const auditedLedger = ledgerFromConfig(audited.dynamodb, config);
      const current: DriftAuditRunner = {
        name: 'GetAccountAuthorizationDetails',
        run: async (iam) => (await new DriftAudit({ iam, ledger: auditedLedger, config }).run()).drift.length,
      };
      const before: DriftAuditRunner = { name: 'per-policy reads (before)', run: async (iam) => (await perPolicyAudit(iam, auditedLedger, config.appName)).drifted };

      meter.reset();
      const first = await counted(stack, config, policies, current);
      const none = meter.totalReadUnits();
      say(`${tagCase}: audit ${fmt(first.callsPerPolicy, 3)} IAM calls/policy, ${fmt(none, 1)} read units, ${first.seconds.toFixed(1)} s`);
      const old = options.before ? await counted(stack, config, policies, before) : undefined;
      if (old) say(`${tagCase}: per-policy reads ${fmt(old.callsPerPolicy, 3)} IAM calls/policy, ${old.seconds.toFixed(1)} s`);

      t = performance.now();
      const perPolicy = Math.ceil(archived / policies);
      await archive(ledger, names, perPolicy);
      say(`${tagCase}: ${perPolicy * policies} eventIds archived in ${((performance.now() - t) / 1000).toFixed(0)} s`);
      meter.reset();
      const withArchive = await counted(stack, config, policies, current);
      const archivedUnits = meter.totalReadUnits();
      say(`${tagCase}: audit with the archive: ${fmt(archivedUnits, 1)} read units, ${withArchive.seconds.toFixed(1)} s`);

      // The layout before the archive table, once: it does not depend on the tags.
      let inLedger: AuditRun | undefined;
      let inLedgerUnits: number | undefined;
      if (results.length === 0) {
        await archiveInLedger(aws.dynamodb, config, names, perPolicy, Date.now());
        meter.reset();
        inLedger = await counted(stack, config, policies, current);
        inLedgerUnits = meter.totalReadUnits();
        say(`${tagCase}: audit with the archive in the ledger table (before the archive table): ${fmt(inLedgerUnits, 1)} read units, ${inLedger.seconds.toFixed(1)} s`);
      }

      for (const run of [first, old, withArchive, inLedger])
        if (run && run.drifted !== 0) throw new Error(`${tagCase}: ${run.audit} found ${run.drifted} drifted policies in an account without drift`);
      results.push({
        tags: tagCase,
        policies,
        audits: old ? [first, old] : [first],
        archivedEventIds: perPolicy * policies,
        readUnits: { none, archived: archivedUnits, ...(inLedgerUnits !== undefined ? { archivedInLedger: inLedgerUnits } : {}) },
        readUnitsRatio: archivedUnits / none,
        ...(inLedgerUnits !== undefined ? { readUnitsRatioInLedger: inLedgerUnits / none } : {}),
        seconds: first.seconds,
      });
    } finally {
      destroyAwsClients(aws);
      destroyAwsClients(audited);
    }
  }
  return results;
}

/** The tables, and apart the one line per case that scripts read (printed last). */
export function driftReport(results: DriftCaseResult[]): { text: string; lines: string[] } {
  const lines: string[] = [];
  const archived = results[0]?.archivedEventIds ?? 0;
  lines.push(`Drift audit (local stack; IAM calls counted by the realistic-IAM layer; read units as DynamoDB reports them)`);
  lines.push(
    table(
      ['tags', 'audit', 'policies', 'IAM calls', 'calls/policy', 'seconds'],
      results.flatMap((result) =>
        result.audits.map((run) => [
          result.tags,
          run.audit,
          String(result.policies),
          Object.entries(run.iamCalls)
            .sort()
            .map(([action, n]) => `${action} ${n}`)
            .join(', '),
          fmt(run.callsPerPolicy, 3),
          run.seconds.toFixed(1),
        ]),
      ),
    ),
  );
  lines.push('');
  lines.push(`The audit's DynamoDB read units, with ${archived.toLocaleString('en-US')} archived eventIds against none`);
  lines.push(
    table(
      ['tags', 'none', 'archive table', 'ratio', 'in the ledger table (before)', 'ratio (before)'],
      results.map((result) => [
        result.tags,
        fmt(result.readUnits.none, 1),
        fmt(result.readUnits.archived, 1),
        fmt(result.readUnitsRatio, 2),
        result.readUnits.archivedInLedger === undefined ? '(first case only)' : fmt(result.readUnits.archivedInLedger, 1),
        result.readUnitsRatioInLedger === undefined ? '' : fmt(result.readUnitsRatioInLedger, 2),
      ]),
    ),
  );
  const summary = results.map((result) => {
    const current = result.audits[0]!;
    return `drift-audit: policies=${result.policies} tags=${result.tags} iam-calls-per-policy=${current.callsPerPolicy.toFixed(3)} read-units-ratio=${result.readUnitsRatio.toFixed(2)} seconds=${Math.round(result.seconds)}`;
  });
  return { text: lines.join('\n'), lines: summary };
}
