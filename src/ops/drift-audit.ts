// The drift audit: IAM against the ledger, with no stream involved.
//
// For every ledger entry, IAM is compared with the desired state the ledger
// last applied (`desired`: path, document, tags; `policyState`). A policy may
// have drifted in these ways:
//
//   missing              the ledger says present, IAM has no policy of that name (deleted out of band)
//   path                 IAM has the name under another path than the ledger's
//   document             the default version's document differs (compared by meaning, iam/document.ts)
//   tags                 the tags differ from the desired ones
//   ownership-tag        the `managed-by` tag is missing or names another application
//   too-many-versions    more than IAM's 5 versions
//   present-but-deleted  the ledger says deleted, IAM has our policy
//   unknown-to-ledger    a policy under the managed path, tagged managed-by=<app>, that the ledger never saw
//
// IAM is read through one account-wide listing, GetAccountAuthorizationDetails
// (every customer-managed policy with its versions' documents, a page per
// 1,000), so an audit costs pages, not reads per policy, against the rate
// limit the workers share. The audit looks at documents under the managed
// path only (its role's per-policy reads are scoped to it): a name the ledger
// knows that IAM now lists elsewhere is judged from the listing's path alone.
// Tags are not in the listing: ListPolicyTags is read only where it can tell
// something (judge, tagReadBudget). A policy it cannot read (AccessDenied, which waiting does not
// change; a fault that outlasts the retries) is reported on its own as
// `failed`, and the audit goes on with the others; an audit that cannot run at
// all (the listing or the ledger scan fails) throws. Either way the caller
// publishes `drift_audit_failed` (commands/drift.ts).
//
// What is not judged: an entry a worker holds a live claim on (its IAM step
// may be running: `in-flight`), one completed within IAM's visibility window
// (IAM may not show it yet: `settling`), and one whose ledger entry changed
// while it was being read (`in-flight` too), and one without a desired state
// (written before the ledger kept it, or never applied: `unchecked`). The
// description is not compared: IAM sets it only when a policy is created.
//
// Repair (drift-repair.ts) is a worker's re-verification, run by the
// operator: the same claim and the same converge function
// (pipeline/converge.ts). Drift the reconciler cannot undo (a path, a missing
// ownership tag, an unknown policy) is reported, never touched.
import { ListPolicyTagsCommand, NoSuchEntityException } from '@aws-sdk/client-iam';
import type { IAMClient, ManagedPolicyDetail, Tag } from '@aws-sdk/client-iam';
import type { Config } from '../config/config.js';
import { OWNER_TAG, ownedBy } from '../contract/ownership.js';
import { retry } from '../faults/retry.js';
import { RETRY } from '../faults/retry-policies.js';
import { errorCode, isAccessDenied, isProgrammingError, isRetriable } from '../faults/classify.js';
import { decodePolicyVersionDocument, documentsEqual } from '../iam/document.js';
import { listPolicyDetails } from '../iam/policy-details.js';
import { MAX_VERSIONS } from '../iam/versions.js';
import type { DynamoDbLedger } from '../ledger/dynamodb-ledger.js';
import type { LedgerEntry } from '../ledger/ledger.js';
import { policyKey, splitPolicyKey } from '../contract/policy-key.js';

export type DriftKind = 'missing' | 'path' | 'document' | 'tags' | 'ownership-tag' | 'too-many-versions' | 'present-but-deleted' | 'unknown-to-ledger';

/** Policies looked at concurrently: IAM throttles, and an audit is not in a hurry. */
const CONCURRENCY = 4;

export interface Drift {
  policy: string;
  kinds: DriftKind[];
  /** What differs, in words. */
  details: string[];
  /** The ledger's state for the policy (none for unknown-to-ledger). */
  ledgerState?: string;
  /** Where IAM has the policy, if it has it. */
  arn?: string;
  /** Why --repair leaves it alone, when it does. */
  notRepairable?: string;
}

export type NotJudged = { policy: string; why: 'in-flight' | 'settling' | 'unchecked'; detail: string };

/**
 * A policy the audit could not look at: `access-denied` (the audit's role may
 * not read it; waiting will not change that) or `read-failed` (a fault that
 * outlasted the retries).
 */
export type AuditFailure = { policy: string; reason: 'access-denied' | 'read-failed'; detail: string };

export interface AuditResult {
  ledgerEntries: number;
  managedPolicies: number;
  drift: Drift[];
  notJudged: NotJudged[];
  /** Policies the audit could not judge: the audit is incomplete when there is any. */
  failed: AuditFailure[];
}

export interface AuditOptions {
  iam: IAMClient;
  ledger: DynamoDbLedger;
  config: Config;
  now?: () => number;
  /** Called as each ledger entry or unknown policy has been looked at. */
  onProgress?: (done: number) => void;
  /**
   * Whose IAM `iam` reads, and so which ledger entries are audited: the
   * worker's own account (`own`: keys without an account, and `<id>/<name>`)
   * or a target account (keys `<id>/<name>`). Absent: keys without an account
   * only, the own account as it was before accounts existed.
   */
  account?: { id: string; own: boolean };
}

type Verdict = { kind: 'ok' } | { kind: 'drift'; drift: Drift } | { kind: 'not-judged'; notJudged: NotJudged } | { kind: 'failed'; failure: AuditFailure };

/** Why one policy could not be read, as a verdict; a programming error is no verdict and goes up. */
function failedVerdict(policy: string, error: unknown): Verdict {
  if (isProgrammingError(error)) throw error;
  const message = error instanceof Error ? error.message : String(error);
  return { kind: 'failed', failure: { policy, reason: isAccessDenied(error) ? 'access-denied' : 'read-failed', detail: `${errorCode(error)}: ${message}`.slice(0, 500) } };
}

/** Runs `work` over items with at most `limit` at a time. */
async function eachLimited<T>(items: AsyncIterable<T> | Iterable<T>, limit: number, work: (item: T) => Promise<void>): Promise<void> {
  const running = new Set<Promise<void>>();
  let failure: unknown;
  for await (const item of items) {
    if (failure !== undefined) break;
    const task: Promise<void> = work(item)
      .catch((error: unknown) => {
        failure ??= error;
      })
      .finally(() => running.delete(task));
    running.add(task);
    if (running.size >= limit) await Promise.race(running);
  }
  await Promise.all(running);
  if (failure !== undefined) throw failure;
}

/**
 * An AWS read, tried again while it fails for reasons that pass (throttling,
 * 5xx). AccessDenied is not one of them here: the audit's role is what it is
 * for the whole run.
 */
async function patiently<T>(read: () => Promise<T>): Promise<T> {
  return (await retry(RETRY.auditRead, read, { retriable: (error) => isRetriable(error) && !isAccessDenied(error) })) as T;
}

/** A policy as the account listing shows it; its versions only under the managed path (the audit looks at no document elsewhere). */
interface ListedPolicy {
  name: string;
  arn: string;
  path: string;
  defaultVersionId?: string;
  /** Every version with its document (URL-encoded, as IAM gives it); empty outside the managed path. */
  versions: { versionId: string; document?: string; isDefault: boolean }[];
}

function listedPolicy(detail: ManagedPolicyDetail, managedPathPrefix: string): ListedPolicy {
  const path = detail.Path ?? '/';
  const arn = detail.Arn ?? '';
  const managed = path.startsWith(managedPathPrefix);
  return {
    name: detail.PolicyName ?? arn.slice(arn.lastIndexOf('/') + 1),
    arn,
    path,
    ...(detail.DefaultVersionId ? { defaultVersionId: detail.DefaultVersionId } : {}),
    versions: managed
      ? (detail.PolicyVersionList ?? []).map((version) => ({
          versionId: version.VersionId ?? '',
          ...(version.Document !== undefined ? { document: version.Document } : {}),
          isDefault: version.IsDefaultVersion === true,
        }))
      : [],
  };
}

/**
 * Tag reads one audit makes for policies whose ledger entry holds only the
 * owner tag: the listing has no tags, and reading them all would cost a call
 * per policy. A random sample of this size per run (25, or 3% of the
 * policies, whichever is more) finds a removed ownership tag within a few
 * dozen runs at most; a small account has all of them read every run.
 */
export function tagReadBudget(policies: number): number {
  return Math.max(25, Math.ceil(policies * 0.03));
}

/** The policy's tags (one ListPolicyTags page holds IAM's 50), or undefined when IAM no longer has it. */
async function policyTags(iam: IAMClient, arn: string): Promise<Tag[] | undefined> {
  const tags: Tag[] = [];
  let marker: string | undefined;
  try {
    do {
      const page = await patiently(() => iam.send(new ListPolicyTagsCommand({ PolicyArn: arn, MaxItems: 100, ...(marker ? { Marker: marker } : {}) })));
      tags.push(...(page.Tags ?? []));
      marker = page.IsTruncated ? page.Marker : undefined;
    } while (marker);
  } catch (error) {
    if (error instanceof NoSuchEntityException) return undefined;
    throw error;
  }
  return tags;
}

/** Whether the desired tags go beyond the owner tag: then the audit reads the policy's tags every run. */
function hasOwnTags(tags: Record<string, string> | undefined): boolean {
  return Object.keys(tags ?? {}).some((key) => key !== OWNER_TAG);
}

function tagMap(tags: readonly { Key?: string; Value?: string }[] | undefined): Map<string, string> {
  return new Map((tags ?? []).filter((tag) => tag.Key !== undefined).map((tag) => [tag.Key!, tag.Value ?? '']));
}

/** How two tag sets differ, the ownership tag left out: `+k=v` missing in IAM, `-k` extra in IAM, `k: a -> b` changed. */
export function tagDifferences(wanted: Record<string, string>, have: Map<string, string>): string[] {
  const differences: string[] = [];
  for (const [key, value] of Object.entries(wanted)) {
    if (key === OWNER_TAG) continue;
    if (!have.has(key)) differences.push(`+${key}=${value}`);
    else if (have.get(key) !== value) differences.push(`${key}: ${have.get(key)} -> ${value}`);
  }
  for (const key of have.keys()) if (key !== OWNER_TAG && !(key in wanted)) differences.push(`-${key}`);
  return differences;
}

export class DriftAudit {
  private readonly now: () => number;

  constructor(private readonly options: AuditOptions) {
    this.now = options.now ?? Date.now;
  }

  async run(): Promise<AuditResult> {
    const { iam, ledger, config } = this.options;
    const startedAt = this.now();
    // Every customer-managed policy of the account with its versions' documents, a page per 1,000 (IAM
    // names are unique whatever the path); documents are kept only under the managed path.
    const listed = (await patiently(() => listPolicyDetails(iam))).map((detail) => listedPolicy(detail, config.managedPathPrefix));
    const byName = new Map(listed.map((policy) => [policy.name, policy]));
    const managed = listed.filter((policy) => policy.path.startsWith(config.managedPathPrefix));
    // Owner-tag-only policies whose tags are read this run: random draws, capped so that they never add up past the budget.
    const budget = tagReadBudget(managed.length);
    const tagSample = Math.min(1, budget / Math.max(1, managed.length));
    let sampled = 0;
    const sample = () => sampled < budget && Math.random() < tagSample && ++sampled <= budget;
    const drift: Drift[] = [];
    const notJudged: NotJudged[] = [];
    const failed: AuditFailure[] = [];
    const known = new Set<string>();
    let done = 0;
    const record = (verdict: Verdict) => {
      if (verdict.kind === 'drift') drift.push(verdict.drift);
      else if (verdict.kind === 'not-judged') notJudged.push(verdict.notJudged);
      else if (verdict.kind === 'failed') failed.push(verdict.failure);
      this.options.onProgress?.(++done);
    };

    // The ledger's keys of this account's policies (contract/policy-key.ts), and the name each stands for in its IAM.
    const scope = this.options.account;
    const nameIn = (key: string): string | undefined => {
      const { account, policyName } = splitPolicyKey(key);
      if (account === undefined) return !scope || scope.own ? policyName : undefined;
      return scope?.id === account ? policyName : undefined;
    };
    const entries = async function* () {
      for await (const entry of ledger.entries()) if (nameIn(entry.policy) !== undefined) yield entry;
    };
    await eachLimited(entries(), CONCURRENCY, async (entry) => {
      const name = nameIn(entry.policy)!;
      known.add(name);
      let verdict: Verdict;
      try {
        verdict = await this.judge(entry, byName.get(name), startedAt, sample());
        if (verdict.kind === 'drift') {
          // The ledger may have moved while IAM was read (a worker completed an event): then this is no verdict.
          const fresh = await patiently(() => ledger.get(entry.policy));
          if (!fresh || fresh.updatedAt !== entry.updatedAt || (fresh.claim && fresh.claim.expiresAt >= this.now())) {
            verdict = { kind: 'not-judged', notJudged: { policy: entry.policy, why: 'in-flight', detail: 'the ledger entry changed during the audit' } };
          }
        }
      } catch (error) {
        verdict = failedVerdict(entry.policy, error);
      }
      record(verdict);
    });

    // Ours by path and tag, yet never in the ledger: only these need their tags read to tell.
    const strangers = managed.filter((policy) => !known.has(policy.name));
    // A target account's stranger is named by the key an event for it would have.
    const keyOf = (name: string) => (scope && !scope.own ? policyKey({ account: scope.id, policyName: name }) : name);
    await eachLimited(strangers, CONCURRENCY, async (candidate) => {
      let tags: Tag[] | undefined;
      try {
        tags = await policyTags(iam, candidate.arn);
      } catch (error) {
        record(failedVerdict(keyOf(candidate.name), error));
        return;
      }
      if (tags && ownedBy(tags, config.appName)) {
        record({
          kind: 'drift',
          drift: {
            policy: keyOf(candidate.name),
            kinds: ['unknown-to-ledger'],
            details: [`${candidate.arn} is tagged ${OWNER_TAG}=${config.appName} but no event for it was ever applied`],
            arn: candidate.arn,
            notRepairable: 'unknown to the ledger: nothing says what it should be (delete it, or send an event for it)',
          },
        });
      } else record({ kind: 'ok' });
    });

    drift.sort((a, b) => a.policy.localeCompare(b.policy));
    notJudged.sort((a, b) => a.policy.localeCompare(b.policy));
    failed.sort((a, b) => a.policy.localeCompare(b.policy));
    return { ledgerEntries: known.size, managedPolicies: managed.length, drift, notJudged, failed };
  }

  /**
   * One ledger entry against what the listing shows. Tags are the only read:
   * for an entry with tags of its own, for one drifted otherwise (the report
   * then names a missing ownership tag too), and for `sampleTags`.
   */
  private async judge(entry: LedgerEntry, listed: ListedPolicy | undefined, startedAt: number, sampleTags: boolean): Promise<Verdict> {
    const { iam, config } = this.options;
    const policy = entry.policy;
    const notJudged = (why: NotJudged['why'], detail: string): Verdict => ({ kind: 'not-judged', notJudged: { policy, why, detail } });
    if (entry.claim && entry.claim.expiresAt >= this.now()) return notJudged('in-flight', `claimed by ${entry.claim.owner}`);
    const desired = entry.desired;
    if (!desired || !entry.state || entry.state === 'unknown')
      return notJudged('unchecked', entry.state === 'unknown' ? 'no event for it was ever applied' : 'the ledger holds no desired state for it (written by an older version)');
    const updatedAt = entry.updatedAt ? Date.parse(entry.updatedAt) : 0;
    if (startedAt - updatedAt < config.iamVisibilityWindowMs) return notJudged('settling', `changed ${Math.max(0, Math.round((startedAt - updatedAt) / 1000))} s ago: IAM may not show it yet`);

    const ledgerState = entry.state;
    const drift = (kinds: DriftKind[], details: string[], extra: Partial<Drift> = {}): Verdict => ({ kind: 'drift', drift: { policy, kinds, details, ledgerState, ...extra } });

    if (entry.state === 'deleted') {
      if (!listed) return { kind: 'ok' };
      // A policy of that name that is not ours (someone else's, created since) is none of the audit's
      // business. Outside the managed path it is not ours by definition, and the audit's role may not
      // read it: the listing's path decides, before any read.
      if (!listed.path.startsWith(config.managedPathPrefix)) return { kind: 'ok' };
      const tags = await policyTags(iam, listed.arn);
      if (!tags || !ownedBy(tags, config.appName)) return { kind: 'ok' };
      return drift(['present-but-deleted'], [`the ledger says deleted; IAM has ${listed.arn}`], {
        arn: listed.arn,
        ...(listed.path !== desired.path ? { notRepairable: `it lives under ${listed.path}, the ledger deleted it under ${desired.path}: delete it by hand` } : {}),
      });
    }

    // present, or retained-in-use (a delete kept it because it was attached)
    if (!listed) {
      if (entry.state === 'retained-in-use') return { kind: 'ok' }; // the stream's last word was a delete: gone is as asked
      return drift(['missing'], [`the ledger says present under ${desired.path}; IAM has no policy named ${policy}`]);
    }
    if (listed.path !== desired.path) {
      return drift(['path'], [`IAM has it under ${listed.path}, the ledger under ${desired.path}`], {
        arn: listed.arn,
        notRepairable: `IAM cannot move a policy: delete ${listed.arn} (if it is ours) and --repair creates it under ${desired.path}`,
      });
    }
    // Where the managed path prefix was changed since: the audit's role may not read there.
    if (!listed.path.startsWith(config.managedPathPrefix))
      return notJudged('unchecked', `it lives under ${listed.path}, outside the managed path ${config.managedPathPrefix}: the audit does not read there`);

    let documentDrift: string | undefined;
    if (desired.document !== undefined) {
      const version = listed.versions.find((item) => item.isDefault) ?? listed.versions.find((item) => item.versionId === listed.defaultVersionId);
      const document = decodePolicyVersionDocument(version?.document ?? '{}');
      if (!documentsEqual(document, desired.document)) documentDrift = `default version ${listed.defaultVersionId ?? version?.versionId} is not the document last applied`;
    }
    const tooManyVersions = listed.versions.length > MAX_VERSIONS;

    const kinds: DriftKind[] = [];
    const details: string[] = [];
    let notRepairable: string | undefined;
    if (hasOwnTags(desired.tags) || documentDrift !== undefined || tooManyVersions || sampleTags) {
      const tags = await policyTags(iam, listed.arn);
      if (!tags) return drift(['missing'], [`the ledger says present under ${desired.path}; IAM no longer shows ${listed.arn}`]);
      const have = tagMap(tags);
      if (!ownedBy(tags, config.appName)) {
        kinds.push('ownership-tag');
        details.push(have.has(OWNER_TAG) ? `${OWNER_TAG}=${have.get(OWNER_TAG)}, not ${config.appName}` : `no ${OWNER_TAG} tag`);
        notRepairable = `without ${OWNER_TAG}=${config.appName} the processor leaves a policy alone: tag it by hand if it is ours, then --repair`;
      }
      const tagDiff = tagDifferences(desired.tags ?? {}, have);
      if (tagDiff.length > 0) {
        kinds.push('tags');
        details.push(`tags ${tagDiff.join(', ')}`);
      }
    }
    if (documentDrift !== undefined) {
      kinds.push('document');
      details.push(documentDrift);
    }
    if (tooManyVersions) {
      kinds.push('too-many-versions');
      details.push(`${listed.versions.length} versions (IAM keeps at most ${MAX_VERSIONS})`);
      notRepairable ??= 'the reconciler prunes versions only when it writes a new one: delete the extra versions by hand';
    }
    if (kinds.length === 0) return { kind: 'ok' };
    return drift(kinds, details, { arn: listed.arn, ...(notRepairable ? { notRepairable } : {}) });
  }
}
