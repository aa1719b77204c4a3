// The invariant checker: from what was written to the stream and what the
// processors logged, compute the IAM state the product promises and compare
// it with IAM. Each broken promise is reported as a violation.
import { GetPolicyCommand, GetPolicyVersionCommand, ListPolicyVersionsCommand } from '@aws-sdk/client-iam';
import type { IAMClient, Policy } from '@aws-sdk/client-iam';
import type { PolicyEvent } from '../../src/contract/event.js';
import { decodePolicyVersionDocument, documentsEqual } from '../../src/iam/document.js';
import { compareWithin } from '../../src/ledger/position.js';
import { foldEvents } from './expected-state.js';
import type { OutcomeLine } from './outcome-log.js';
import { outcomeRecordId, sentRecordId } from './outcome-log.js';
import type { SentPosition } from './outcome-log.js';
import type { OutgoingRecord } from '../../src/ops/producer.js';
import { isAttached, listPolicies } from '../../src/iam/policies.js';
import type { ShardInfo } from '../../src/stream/shard-tree.js';
import { decodeLanded } from './landed-record.js';

export interface SentRecord {
  record: OutgoingRecord;
  put: SentPosition;
}



export interface InvariantInput {
  sent: SentRecord[];
  outcomes: OutcomeLine[];
  iam: IAMClient;
  accountId: string;
  managedPathPrefix: string;
  appName: string;
  /** The stream's shards, listed after the records were put: a record is decoded with the hash key range of the shard it landed on. */
  shards: ShardInfo[];
  /** Policies the test attached to a role: a delete must retain them. */
  attached?: Set<string>;
  /** Policies created out of band (not owned), with their original default version id. */
  foreign?: Map<string, { arn: string; defaultVersionId: string }>;
}

export interface InvariantReport {
  events: number;
  outcomes: Record<string, number>;
  violations: string[];
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
    const final = lines.find((line) => line.outcome !== 'duplicate') ?? lines[0]!;
    outcomes[final.outcome] = (outcomes[final.outcome] ?? 0) + 1;
    const effects = lines.filter((line) => EFFECTS.has(line.outcome));
    if (effects.length > 1) violations.push(`${key(put)} took effect ${effects.length} times`);
  }

  // IAM equals the fold of the stream, in stream order per policy.
  const ordered = [...input.sent].sort((a, b) =>
    compareWithin({ ...a.put, subSequenceNumber: a.put.subSequenceNumber ?? 0 }, { ...b.put, subSequenceNumber: b.put.subSequenceNumber ?? 0 }),
  );
  const events: PolicyEvent[] = [];
  for (const { record, put } of ordered) {
    const decoded = decodeLanded(record, put.shardId, input.shards, input.managedPathPrefix);
    if (decoded.ok && !input.foreign?.has(decoded.event.policyName)) events.push(decoded.event);
  }
  const expected = foldEvents(events, input.attached ? { attached: input.attached } : {});
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
    if (!owned.Policy?.Tags?.some((tag) => tag.Key === 'managed-by' && tag.Value === input.appName)) violations.push(`${policy.name} lacks its ownership tag`);
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

  return { events: input.sent.length, outcomes, violations };
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
