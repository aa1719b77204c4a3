// The invariant checker: from what was written to the stream and what the
// processors logged, compute the IAM state the product promises and compare
// it with IAM. Each broken promise is reported as a violation.
//
// The order the promise speaks of is the one the stream gives a policy's
// records, and no other: sequence numbers order records within one shard
// only (after a reshard a child's may run lower than its parent's last one);
// across shards the order is the lineage the KCL enforces, a child's records
// after its parents'. With the partition key the policy name, a policy's
// records lie on one lineage path, except a record sent with an explicit hash
// key to a shard whose range does not hold the name's hash: that record has
// no place in the policy's order and must take no effect.
import { GetPolicyCommand, GetPolicyVersionCommand, ListPolicyVersionsCommand } from '@aws-sdk/client-iam';
import type { IAMClient, Policy } from '@aws-sdk/client-iam';
import { decodeRecord } from '../../src/contract/decode.js';
import type { PolicyEvent } from '../../src/contract/event.js';
import { ALL_HASH_KEYS } from '../../src/contract/hash-key.js';
import { decodePolicyVersionDocument, documentsEqual } from '../../src/iam/document.js';
import { compareWithin } from '../../src/ledger/position.js';
import { hashKeyOf } from '../../src/ops/aggregate.js';
import { OWNER_TAG } from '../../src/contract/ownership.js';
import { ancestorsOf } from '../../src/stream/shard-tree.js';
import type { ShardInfo } from '../../src/stream/shard-tree.js';
import { foldEvents } from './expected-state.js';
import type { ExpectedPolicy } from './expected-state.js';
import type { OutcomeLine } from './outcome-log.js';
import { outcomeRecordId, sentRecordId } from './outcome-log.js';
import type { SentPosition } from './outcome-log.js';
import type { OutgoingRecord } from '../../src/ops/producer.js';
import { isAttached, listPolicies } from '../../src/iam/policies.js';

export interface SentRecord {
  record: OutgoingRecord;
  put: SentPosition;
}

export interface InvariantInput {
  sent: SentRecord[];
  /** The stream's shards (stream/shard-tree.ts listShards), parents and hash key ranges: the order of a policy's records is their lineage. */
  shards: ShardInfo[];
  outcomes: OutcomeLine[];
  iam: IAMClient;
  accountId: string;
  managedPathPrefix: string;
  appName: string;
  /** Policies the test attached to a role: a delete must retain them. */
  attached?: Set<string>;
  /** Policies created out of band (not owned), with their original default version id. */
  foreign?: Map<string, { arn: string; defaultVersionId: string }>;
  /** For a check after `replay --reapply`: the state the first pass left (its report's `expected`), which the replayed events meet. */
  reappliedOver?: Map<string, ExpectedPolicy>;
}

export interface InvariantReport {
  events: number;
  outcomes: Record<string, number>;
  violations: string[];
  /** The state IAM must hold: the fold of the stream. */
  expected: Map<string, ExpectedPolicy>;
}

const EFFECTS = new Set(['created', 'updated', 'deleted']);

export async function checkInvariants(input: InvariantInput): Promise<InvariantReport> {
  const violations: string[] = [];
  const key = sentRecordId;

  // Every record has an outcome, and no record takes effect twice.
  const byRecord = new Map<string, OutcomeLine[]>();
  for (const line of input.outcomes) {
    const k = outcomeRecordId(line);
    byRecord.set(k, [...(byRecord.get(k) ?? []), line]);
  }
  const outcomes: Record<string, number> = {};
  for (const { put } of input.sent) {
    const lines = byRecord.get(key(put));
    if (!lines || lines.length === 0) {
      violations.push(`no outcome for ${key(put)}`);
      continue;
    }
    // A parked record has a second outcome once redriven: that one is its verdict (`duplicate` too: the
    // redrive that applied it was killed before its outcome line was written, and the next one found it done).
    const final =
      lines.find((line) => line.outcome !== 'duplicate' && line.outcome !== 'parked') ?? lines.find((line) => line.redriven) ?? lines.find((line) => line.outcome !== 'duplicate') ?? lines[0]!;
    outcomes[final.outcome] = (outcomes[final.outcome] ?? 0) + 1;
    const effects = lines.filter((line) => EFFECTS.has(line.outcome));
    if (effects.length > 1) violations.push(`${key(put)} took effect ${effects.length} times`);
  }

  // IAM equals the fold of the stream, in stream order per policy.
  const perPolicy = new Map<string, { sent: SentRecord; event: PolicyEvent }[]>();
  for (const sent of input.sent) {
    const { record, put } = sent;
    // Decoded whatever shard it landed on: where it landed is judged just below, against the shard's range.
    const decoded = decodeRecord(record.data, record.partitionKey, { managedPathPrefix: input.managedPathPrefix, hashKeyRange: ALL_HASH_KEYS });
    if (!decoded.ok || input.foreign?.has(decoded.event.policyName)) continue;
    if (!holdsKey(input.shards, put.shardId, record.partitionKey)) {
      const effects = (byRecord.get(key(put)) ?? []).filter((line) => EFFECTS.has(line.outcome));
      if (effects.length > 0) violations.push(`${key(put)} took effect (${effects[0]!.outcome}) though ${put.shardId}'s hash key range does not hold its partition key`);
      continue;
    }
    const name = decoded.event.policyName;
    const records = perPolicy.get(name) ?? [];
    records.push({ sent, event: decoded.event });
    perPolicy.set(name, records);
  }
  const lineage = ancestorSets(input.shards);
  const events: PolicyEvent[] = [];
  for (const [name, records] of perPolicy) {
    events.push(...inStreamOrder(name, records, lineage, violations).map((item) => item.event));
  }
  const expected = foldEvents(events, { ...(input.attached ? { attached: input.attached } : {}), ...(input.reappliedOver ? { initial: input.reappliedOver } : {}) });
  const managed = await listManaged(input.iam, input.managedPathPrefix, violations);
  for (const policy of expected.values()) {
    const actual = managed.get(policy.name);
    if (policy.document === undefined) {
      if (actual) violations.push(`${policy.name} should not exist`);
      continue;
    }
    if (!actual) {
      violations.push(`${policy.name} is missing`);
      continue;
    }
    if (policy.path !== undefined && actual.Path !== policy.path) violations.push(`${policy.name} is under ${actual.Path ?? '?'}, expected ${policy.path}`);
    const version = await input.iam.send(new GetPolicyVersionCommand({ PolicyArn: actual.Arn, VersionId: actual.DefaultVersionId }));
    const document = decodePolicyVersionDocument(version.PolicyVersion?.Document ?? '');
    if (!documentsEqual(document, policy.document)) violations.push(`${policy.name} has a different default document`);
    const versions = await input.iam.send(new ListPolicyVersionsCommand({ PolicyArn: actual.Arn }));
    if ((versions.Versions?.length ?? 0) > 5) violations.push(`${policy.name} has more than 5 versions`);
    const owned = await input.iam.send(new GetPolicyCommand({ PolicyArn: actual.Arn }));
    violations.push(...tagViolations(policy.name, owned.Policy?.Tags ?? [], policy.tags ?? {}, input.appName));
  }
  for (const name of managed.keys()) {
    if (!expected.has(name) && !input.foreign?.has(name)) violations.push(`${name} exists but no event asked for it`);
  }

  // Attached policies are never deleted.
  for (const name of input.attached ?? []) {
    const actual = managed.get(name);
    if (!actual) {
      violations.push(`attached policy ${name} was deleted`);
      continue;
    }
    if (!(await isAttached(input.iam, actual.Arn ?? ''))) violations.push(`attached policy ${name} lost its attachment`);
  }

  // Policies the processor does not own are untouched.
  for (const [name, { arn, defaultVersionId }] of input.foreign ?? []) {
    try {
      const policy = await input.iam.send(new GetPolicyCommand({ PolicyArn: arn }));
      if (policy.Policy?.DefaultVersionId !== defaultVersionId) violations.push(`foreign policy ${name} was modified`);
    } catch {
      violations.push(`foreign policy ${name} was deleted`);
    }
  }

  return { events: input.sent.length, outcomes, violations, expected };
}

/**
 * Whether the shard's hash key range holds the partition key's hash (MD5, as
 * Kinesis routes a record without an explicit hash key). A shard the stream no
 * longer lists (past retention) cannot say: it is taken to hold it.
 */
function holdsKey(shards: ShardInfo[], shardId: string, partitionKey: string): boolean {
  const shard = shards.find((s) => s.shardId === shardId);
  if (!shard) return true;
  const hash = hashKeyOf(partitionKey);
  return shard.startingHashKey <= hash && hash <= shard.endingHashKey;
}

/** Each shard's ancestors: a shard's ancestors are a strict subset of its descendants' ones, so their count orders a lineage path. */
function ancestorSets(shards: ShardInfo[]): Map<string, Set<string>> {
  return new Map(shards.map((shard) => [shard.shardId, new Set(ancestorsOf(shards, shard.shardId))]));
}

/**
 * A policy's records in the order the stream gives them: shard after shard
 * along the lineage (parents first), by sequence and subsequence number
 * within a shard. Records on two shards neither of which descends from the
 * other have no order: that is reported, and they are folded shard by shard.
 */
function inStreamOrder<T extends { sent: SentRecord }>(policy: string, records: T[], lineage: Map<string, Set<string>>, violations: string[]): T[] {
  const byShard = new Map<string, T[]>();
  for (const item of records) byShard.set(item.sent.put.shardId, [...(byShard.get(item.sent.put.shardId) ?? []), item]);
  const ancestors = (shardId: string) => lineage.get(shardId) ?? new Set<string>();
  const path = [...byShard.keys()].sort((a, b) => ancestors(a).size - ancestors(b).size || (a < b ? -1 : a > b ? 1 : 0));
  for (let i = 1; i < path.length; i++) {
    if (!ancestors(path[i]!).has(path[i - 1]!)) violations.push(`${policy} has records on ${path[i - 1]} and ${path[i]}, neither descending from the other: no stream order`);
  }
  const position = (item: T) => ({ ...item.sent.put, subSequenceNumber: item.sent.put.subSequenceNumber ?? 0 });
  return path.flatMap((shardId) => byShard.get(shardId)!.sort((a, b) => compareWithin(position(a), position(b))));
}

/**
 * Every tag of a policy against the fold: `managed-by` = the application, and
 * exactly the tags of the last applied upsert besides it.
 */
function tagViolations(policy: string, actual: { Key?: string; Value?: string }[], expected: Record<string, string>, appName: string): string[] {
  const found: string[] = [];
  const have = new Map(actual.map((tag) => [tag.Key ?? '', tag.Value ?? '']));
  if (have.get(OWNER_TAG) !== appName) found.push(`${policy} lacks its ownership tag`);
  for (const [key, value] of Object.entries(expected)) {
    if (key === OWNER_TAG) continue;
    if (!have.has(key)) found.push(`${policy} lacks tag ${key}=${value}`);
    else if (have.get(key) !== value) found.push(`${policy} has tag ${key}=${have.get(key)}, expected ${key}=${value}`);
  }
  for (const [key, value] of have) {
    if (key !== OWNER_TAG && !(key in expected)) found.push(`${policy} has tag ${key}=${value}, expected none`);
  }
  return found;
}

/** The policies under the prefix by name; a name under two paths (IAM forbids it, moto does not) is a violation. */
async function listManaged(iam: IAMClient, pathPrefix: string, violations: string[]): Promise<Map<string, Policy>> {
  const policies = new Map<string, Policy>();
  for (const policy of await listPolicies(iam, pathPrefix)) {
    if (!policy.PolicyName) continue;
    const other = policies.get(policy.PolicyName);
    if (other) violations.push(`${policy.PolicyName} exists under both ${other.Path ?? '?'} and ${policy.Path ?? '?'}`);
    policies.set(policy.PolicyName, policy);
  }
  return policies;
}

/** One summary line per reliability run. */
export function summaryLine(name: string, report: InvariantReport, extra: Record<string, number> = {}): string {
  const outcomes = Object.entries(report.outcomes)
    .sort()
    .map(([k, v]) => `${k}=${v}`)
    .join(' ');
  const more = Object.entries(extra)
    .map(([k, v]) => `${k}=${v}`)
    .join(' ');
  return `[${name}] events=${report.events} ${more} outcomes: ${outcomes} invariant-violations=${report.violations.length}`;
}
