// `ips plan` and `ips replay --dry-run --reapply` run the same plan: records
// (from a file or read from the stream) decoded as the record processor
// decodes them, the world of each policy read (plan/world.ts), and the pure
// planner (plan/planner.ts) deciding each record's step. Then shown: a table
// and each update's diff for people, one JSON object per record for scripts.
import type { Config } from '../config/config.js';
import type { HashKeyRange } from '../contract/hash-key.js';
import { decodeRecord } from '../contract/decode.js';
import type { Decoded } from '../contract/decode.js';
import { accountRefusal, allowsAccount } from '../contract/account-gate.js';
import type { AccountGate } from '../contract/account-gate.js';
import { policyKey } from '../contract/policy-key.js';
import { targetAccountPool } from '../aws/clients.js';
import type { ClientOptions } from '../aws/clients.js';
import { payloadHash } from '../contract/payload-hash.js';
import type { RecordPosition } from '../contract/record-id.js';
import { recordId } from '../contract/record-id.js';
import type { DocumentGuard } from '../policy/document-guard.js';
import { planRecords, writesIam } from '../plan/planner.js';
import type { PlanAction, PlanInput, PlanStep } from '../plan/planner.js';
import { callerOf, readWorlds } from '../plan/world.js';
import type { PolicyQuestion, WorldSources } from '../plan/world.js';
import { isEmptyDocumentDiff, isEmptyTagDiff } from '../plan/diff.js';
import type { DocumentDiff, TagDiff } from '../plan/diff.js';
import { jsonText, table } from './cli/render.js';

/** A record to plan: its bytes and partition key, and where it comes from. */
export interface RecordToPlan {
  /** How the output names it: `line 3`, or the record's id (`<shardId>#<sequenceNumber>#<subSequenceNumber>`). */
  where: string;
  line?: number;
  data: Buffer;
  partitionKey: string;
  /** Its place in the stream and its shard's ancestors; none for a line of a file. */
  record?: RecordPosition & { lineage: string[] };
  /** The hash keys of its shard (every hash key for a line of a file). */
  hashKeyRange: HashKeyRange;
  /** The ledger epoch the record would be processed in. */
  epoch: number;
}

export interface PlannedRecord {
  where: string;
  line?: number;
  record?: RecordPosition;
  policy?: string;
  eventId?: string;
  type?: string;
  /** Actions of the document that no AWS service publishes: applied (IAM accepts them, they grant nothing), and reported. */
  unknownActions?: string[];
  step: PlanStep;
}

export interface PlanSources extends WorldSources {
  guard: DocumentGuard;
  appName: string;
  /** IPS_TARGET_ACCOUNTS: with the workers' own, the accounts an event may name. */
  targetAccounts: string[];
  /** Lets go of the target accounts' clients. */
  close(): void;
}

/**
 * What a plan reads, with the processor's configuration. A target account's
 * IAM is read through the role the workers assume there (aws/clients.ts),
 * built once per account, on the first event that names it.
 */
export function planSources(
  config: Config,
  aws: { iam: WorldSources['iam']; sts: Parameters<typeof callerOf>[0] },
  ledger: WorldSources['ledger'],
  guard: DocumentGuard,
  clientOptions: ClientOptions = {},
): PlanSources {
  const targets = targetAccountPool(config, 'ips-plan', clientOptions);
  let caller: ReturnType<typeof callerOf> | undefined;
  return {
    iam: aws.iam,
    ledger,
    guard,
    appName: config.appName,
    managedPathPrefix: config.managedPathPrefix,
    recentEventIds: config.recentEventIds,
    targetAccounts: config.targetAccounts,
    caller() {
      caller ??= callerOf(aws.sts);
      return caller;
    },
    iamOf: (account, partition) => targets.iamOf(account, partition),
    close: () => targets.close(),
  };
}

/** Decodes the records, reads what the plan needs of each policy, and plans every record. */
export async function planRecordsToApply(sources: PlanSources, records: RecordToPlan[]): Promise<PlannedRecord[]> {
  try {
    return await planAll(sources, records);
  } finally {
    sources.close();
  }
}

async function planAll(sources: PlanSources, records: RecordToPlan[]): Promise<PlannedRecord[]> {
  const gate: AccountGate = { own: records.length > 0 ? (await sources.caller()).account : '', targets: sources.targetAccounts };
  const decoded = records.map((item) => ({ item, decoded: decodeFor(sources, gate, item) }));
  const inputs: PlanInput[] = decoded.map(({ item, decoded: result }) =>
    result.ok
      ? { ok: true, event: result.event, payloadHash: payloadHash(result.event), ...(item.record ? { record: item.record } : {}) }
      : { ok: false, reason: result.reason, detail: result.detail },
  );
  const questions = new Map<string, PolicyQuestion>();
  decoded.forEach(({ item, decoded: result }) => {
    if (!result.ok) return;
    const { policyPath, eventId } = result.event;
    const key = policyKey(result.event);
    const question = questions.get(key) ?? { policy: key, paths: [], eventIds: [], epoch: item.epoch };
    if (!question.paths.includes(policyPath)) question.paths.push(policyPath);
    question.eventIds.push(eventId);
    questions.set(key, question);
  });
  const worlds = await readWorlds(sources, [...questions.values()]);
  const steps = planRecords(inputs, (policy) => worlds.get(policy) ?? {}, { managedPathPrefix: sources.managedPathPrefix, appName: sources.appName });
  return decoded.map(({ item, decoded: result }, i) => ({
    where: item.where,
    ...(item.line !== undefined ? { line: item.line } : {}),
    ...(item.record ? { record: { shardId: item.record.shardId, sequenceNumber: item.record.sequenceNumber, subSequenceNumber: item.record.subSequenceNumber } } : {}),
    ...(result.ok ? { policy: policyKey(result.event), eventId: result.event.eventId, type: result.event.type } : {}),
    ...(result.ok && result.unknownActions ? { unknownActions: result.unknownActions } : {}),
    ...(!result.ok && result.policyName !== undefined ? { policy: result.policyName } : {}),
    ...(!result.ok && result.eventId !== undefined ? { eventId: result.eventId } : {}),
    step: steps[i]!,
  }));
}

/** A record decoded as the record processor decodes it, an account the workers may not write to refused as it refuses it. */
function decodeFor(sources: PlanSources, gate: AccountGate, item: RecordToPlan): Decoded | { ok: false; reason: 'account-not-allowed'; detail: string; eventId: string; policyName: string } {
  const result = decodeRecord(item.data, item.partitionKey, { managedPathPrefix: sources.managedPathPrefix, guard: sources.guard, hashKeyRange: item.hashKeyRange });
  if (!result.ok || allowsAccount(gate, result.event.account)) return result;
  return { ok: false, reason: 'account-not-allowed', detail: accountRefusal(gate, result.event.account), eventId: result.event.eventId, policyName: policyKey(result.event) };
}

export function changesIam(planned: PlannedRecord[]): boolean {
  return planned.some((item) => writesIam(item.step.action));
}

/** How many records take each action. */
export function countActions(planned: PlannedRecord[]): Partial<Record<PlanAction, number>> {
  const counts: Partial<Record<PlanAction, number>> = {};
  for (const { step } of planned) counts[step.action] = (counts[step.action] ?? 0) + 1;
  return counts;
}

/** A record's step as --json shows it. */
export function planJson({ where, line, record, policy, eventId, type, unknownActions, step }: PlannedRecord): Record<string, unknown> {
  return {
    where,
    ...(line !== undefined ? { line } : {}),
    ...(record ? { ...record, recordId: recordId(record) } : {}),
    policy,
    eventId,
    type,
    ...step,
    ...(unknownActions ? { unknownActions } : {}),
  };
}

/** One JSON object per record (a line each). */
export function planJsonLines(planned: PlannedRecord[]): string {
  return planned.map((item) => jsonText(planJson(item))).join('\n');
}

/**
 * The plan as people read it: a table, then each change in full, then the
 * counts. `writesOnly`: the table lists only the records that write to IAM
 * (a replay's thousands of duplicates say nothing); the counts cover all.
 */
export function planText(planned: PlannedRecord[], { writesOnly = false } = {}): string {
  const shown = writesOnly ? planned.filter(({ step }) => writesIam(step.action)) : planned;
  const rows = shown.map(({ where, policy, eventId, unknownActions, step }) => ({
    where,
    policy: policy ?? '-',
    event: eventId ?? '-',
    action: step.reason ? `${step.action} (${step.reason})` : step.action,
    detail: unknownActions ? `${step.detail}; unknown actions: ${unknownActions.join(', ')}` : step.detail,
  }));
  const blocks = shown.filter(({ step }) => step.action === 'create' || step.action === 'update').map(changeText);
  const counts = Object.entries(countActions(planned))
    .map(([action, count]) => `${action}=${count}`)
    .join(' ');
  const writes = planned.filter(({ step }) => writesIam(step.action)).length;
  const summary = `${planned.length} record(s): ${counts || 'none'}. ${writes > 0 ? `IAM would change: ${writes} write step(s).` : 'IAM would not change.'}`;
  return [table(rows, ['where', 'policy', 'event', 'action', 'detail']), ...blocks, '', summary].join('\n');
}

const show = (value: unknown) => JSON.stringify(value);

function changeText({ where, policy, step }: PlannedRecord): string {
  const lines = [``, `${step.action} ${step.path ?? ''}${policy ?? ''} (${where}):`];
  if (step.document) lines.push(...documentLines(step.document));
  if (step.tags && !isEmptyTagDiff(step.tags)) lines.push(`  tags: ${tagText(step.tags)}`);
  if (lines.length === 2) lines.push(step.action === 'create' ? '  (no tags besides managed-by)' : `  ${step.detail}`);
  return lines.join('\n');
}

function documentLines(diff: DocumentDiff): string[] {
  if (isEmptyDocumentDiff(diff)) return [];
  return [
    '  document:',
    ...diff.top.map((change) => `    ~ ${change.key}: ${show(change.before)} -> ${show(change.after)}`),
    ...diff.removed.map((statement) => `    - ${show(statement)}`),
    ...diff.added.map((statement) => `    + ${show(statement)}`),
    ...diff.changed.flatMap((change) => [`    ~ Sid ${show(change.sid)}:`, `        - ${show(change.before)}`, `        + ${show(change.after)}`]),
  ];
}

/** `+key=value`, `-key`, `key: before -> after`, as `ips drift` writes tags. */
export function tagText(diff: TagDiff): string {
  return [
    ...Object.entries(diff.added).map(([key, value]) => `+${key}=${value}`),
    ...Object.keys(diff.removed).map((key) => `-${key}`),
    ...Object.entries(diff.changed).map(([key, { before, after }]) => `${key}: ${before} -> ${after}`),
  ].join(' ');
}
