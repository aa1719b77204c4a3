// The IAM step, state-aware (ADR-002), so running it twice is harmless:
//
//   upsert  absent                        -> CreatePolicy (tagged managed-by)  created
//           present, owned, same document -> nothing                           unchanged
//           present, owned, new document  -> prune oldest non-default at 5,
//                                            CreatePolicyVersion as default    updated
//           present, not owned            -> never touched                     rejected (not-owned)
//   delete  absent                        ->                                   absent
//           owned, attached anywhere      -> nothing deleted                   retained-in-use
//           owned, not attached           -> non-default versions, then policy deleted
//
// The policy is found by ARN (account from STS, path, name). Tags are synced
// as a set on every upsert of an owned policy, `managed-by` always kept.
// Transient faults are retried here with exponential backoff and full jitter
// within a budget, behind a circuit breaker; past the budget they surface as
// TransientError and the pipeline retries the whole step later.
import {
  CreatePolicyCommand,
  CreatePolicyVersionCommand,
  DeletePolicyCommand,
  DeletePolicyVersionCommand,
  GetPolicyCommand,
  GetPolicyVersionCommand,
  ListEntitiesForPolicyCommand,
  ListPolicyVersionsCommand,
  NoSuchEntityException,
  TagPolicyCommand,
  UntagPolicyCommand,
} from '@aws-sdk/client-iam';
import type { IAMClient, Policy, Tag } from '@aws-sdk/client-iam';
import { GetCallerIdentityCommand } from '@aws-sdk/client-sts';
import type { STSClient } from '@aws-sdk/client-sts';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Config } from '../config/config.js';
import { RejectedEventError, TransientError } from '../contract/errors.js';
import type { PolicyDeleted, PolicyUpserted } from '../contract/event.js';
import type { IamOutcome } from '../contract/outcome.js';
import type { Logger } from '../log/logger.js';
import type { Metrics } from '../metrics/metrics.js';
import { backoffDelay } from '../pipeline/retry.js';
import { CircuitBreaker } from './circuit-breaker.js';
import { decodePolicyVersionDocument, documentsEqual } from './document.js';
import { classifyIamError, isTransient } from './errors.js';

export const OWNER_TAG = 'managed-by';
const MAX_VERSIONS = 5;

export interface ReconcilerOptions {
  iam: IAMClient;
  sts: STSClient;
  config: Config;
  metrics: Metrics;
  logger: Logger;
  /** Attempts per IAM step before a transient fault surfaces (default 6). */
  attempts?: number;
  baseDelayMs?: number;
  maxDelayMs?: number;
  now?: () => number;
}

export class IamReconciler {
  private account: Promise<string> | undefined;
  private readonly breaker: CircuitBreaker;
  private readonly attempts: number;
  private readonly baseDelayMs: number;
  private readonly maxDelayMs: number;

  constructor(private readonly options: ReconcilerOptions) {
    this.attempts = options.attempts ?? 6;
    this.baseDelayMs = options.baseDelayMs ?? 100;
    this.maxDelayMs = options.maxDelayMs ?? 5_000;
    this.breaker = new CircuitBreaker(options.config.breakerThreshold, options.config.breakerCooldownMs, options.now, (state) => {
      options.metrics.increment('iam_breaker', { state });
      options.logger.warn({ breaker: state }, 'IAM circuit breaker changed state');
    });
  }

  upsert(event: PolicyUpserted, hint: { likelyAbsent?: boolean } = {}): Promise<IamOutcome> {
    return this.step('upsert', () => this.upsertOnce(event, hint));
  }

  delete(event: PolicyDeleted): Promise<IamOutcome> {
    return this.step('delete', () => this.deleteOnce(event));
  }

  /** Runs one state-aware step with retries; counts its outcome. */
  private async step(kind: string, run: () => Promise<IamOutcome>): Promise<IamOutcome> {
    for (let attempt = 0; ; attempt++) {
      try {
        const outcome = await this.breaker.run(run, isTransient);
        this.options.metrics.increment('iam_outcomes', { outcome });
        return outcome;
      } catch (error) {
        const classified = classifyIamError(error, kind);
        if (!(classified instanceof TransientError) || attempt + 1 >= this.attempts) throw classified;
        await sleep(backoffDelay(attempt, this.baseDelayMs, this.maxDelayMs));
      }
    }
  }

  /** `arn:<partition>:iam::<account>`: the caller's own ARN says which partition (aws, aws-cn, aws-us-gov). */
  private accountArnPrefix(): Promise<string> {
    this.account ??= this.options.sts.send(new GetCallerIdentityCommand({})).then((identity) => {
      if (!identity.Account) throw new TransientError('no-account', 'STS returned no account');
      const partition = identity.Arn?.split(':')[1] || 'aws';
      return `arn:${partition}:iam::${identity.Account}`;
    });
    // A failed lookup is not cached: the next call asks again.
    this.account.catch(() => (this.account = undefined));
    return this.account;
  }

  private async arn(event: { policyPath: string; policyName: string }): Promise<string> {
    return `${await this.accountArnPrefix()}:policy${event.policyPath}${event.policyName}`;
  }

  private async find(arn: string): Promise<Policy | undefined> {
    try {
      return (await this.options.iam.send(new GetPolicyCommand({ PolicyArn: arn }))).Policy;
    } catch (error) {
      if (error instanceof NoSuchEntityException) return undefined;
      throw error;
    }
  }

  /** find(), giving a just-created policy a moment to become visible. */
  private async findSoon(arn: string): Promise<Policy | undefined> {
    for (let attempt = 0; attempt < 4; attempt++) {
      const policy = await this.find(arn);
      if (policy) return policy;
      await sleep(100 * 2 ** attempt);
    }
    return undefined;
  }

  private owned(policy: Policy): boolean {
    const underPrefix = (policy.Path ?? '/').startsWith(this.options.config.managedPathPrefix);
    const tagged = (policy.Tags ?? []).some((tag) => tag.Key === OWNER_TAG && tag.Value === this.options.config.appName);
    return underPrefix && tagged;
  }

  private notOwned(policy: Policy): never {
    throw new RejectedEventError('not-owned', `${policy.Arn} exists but is not managed by ${this.options.config.appName} (path ${policy.Path}, no ${OWNER_TAG} tag for it)`);
  }

  private async upsertOnce(event: PolicyUpserted, hint: { likelyAbsent?: boolean }): Promise<IamOutcome> {
    const arn = await this.arn(event);
    // When the ledger says the policy is not there, create straight away: an
    // existing policy (created out of band, or by a lost-response retry) makes
    // the create fail with EntityAlreadyExists, and the read happens then.
    // Halves the IAM calls of a new policy, and IAM calls are what IAM throttles.
    let policy = hint.likelyAbsent ? undefined : await this.find(arn);
    const wantedTags: Tag[] = [...Object.entries(event.tags).map(([Key, Value]) => ({ Key, Value })), { Key: OWNER_TAG, Value: this.options.config.appName }];
    if (!policy) {
      try {
        await this.options.iam.send(
          new CreatePolicyCommand({
            PolicyName: event.policyName,
            Path: event.policyPath,
            PolicyDocument: JSON.stringify(event.document),
            ...(event.description !== undefined ? { Description: event.description } : {}),
            Tags: wantedTags,
          }),
        );
        return 'created';
      } catch (error) {
        const name = (error as Error).name;
        if (name !== 'EntityAlreadyExists' && name !== 'EntityAlreadyExistsException') throw error;
        // Either our own earlier create (a retry after a lost response; IAM is
        // eventually consistent) or the name is taken under another path
        // (names are unique per account whatever the path): look again.
        policy = await this.findSoon(arn);
        if (!policy) throw new RejectedEventError('not-owned', `a policy named ${event.policyName} already exists outside ${arn}`);
      }
    }
    if (!this.owned(policy)) this.notOwned(policy);
    await this.syncTags(arn, policy.Tags ?? [], wantedTags);
    const current = await this.options.iam.send(new GetPolicyVersionCommand({ PolicyArn: arn, VersionId: policy.DefaultVersionId }));
    const document = decodePolicyVersionDocument(current.PolicyVersion?.Document ?? '{}');
    if (documentsEqual(document, event.document)) return 'unchanged';
    await this.pruneVersions(arn);
    await this.options.iam.send(new CreatePolicyVersionCommand({ PolicyArn: arn, PolicyDocument: JSON.stringify(event.document), SetAsDefault: true }));
    return 'updated';
  }

  /** At the limit of 5 versions, the oldest non-default one makes room. */
  private async pruneVersions(arn: string): Promise<void> {
    const versions = (await this.options.iam.send(new ListPolicyVersionsCommand({ PolicyArn: arn }))).Versions ?? [];
    if (versions.length < MAX_VERSIONS) return;
    const oldest = versions
      .filter((version) => !version.IsDefaultVersion)
      .sort((a, b) => (a.CreateDate?.getTime() ?? 0) - (b.CreateDate?.getTime() ?? 0) || versionNumber(a.VersionId) - versionNumber(b.VersionId))[0];
    if (oldest?.VersionId) await this.options.iam.send(new DeletePolicyVersionCommand({ PolicyArn: arn, VersionId: oldest.VersionId }));
  }

  private async syncTags(arn: string, current: Tag[], wanted: Tag[]): Promise<void> {
    const have = new Map(current.map((tag) => [tag.Key, tag.Value]));
    const want = new Map(wanted.map((tag) => [tag.Key, tag.Value]));
    const toSet = wanted.filter((tag) => have.get(tag.Key) !== tag.Value);
    const toRemove = [...have.keys()].filter((key): key is string => key !== undefined && !want.has(key) && key !== OWNER_TAG);
    if (toSet.length > 0) await this.options.iam.send(new TagPolicyCommand({ PolicyArn: arn, Tags: toSet }));
    if (toRemove.length > 0) await this.options.iam.send(new UntagPolicyCommand({ PolicyArn: arn, TagKeys: toRemove }));
  }

  private async deleteOnce(event: PolicyDeleted): Promise<IamOutcome> {
    const arn = await this.arn(event);
    const policy = await this.find(arn);
    if (!policy) return 'absent';
    if (!this.owned(policy)) this.notOwned(policy);
    // The emulator deletes attached policies without complaint; this check is the processor's own.
    if (await this.attached(arn)) return 'retained-in-use';
    try {
      const versions = (await this.options.iam.send(new ListPolicyVersionsCommand({ PolicyArn: arn }))).Versions ?? [];
      for (const version of versions) {
        if (!version.IsDefaultVersion && version.VersionId) {
          await this.options.iam.send(new DeletePolicyVersionCommand({ PolicyArn: arn, VersionId: version.VersionId }));
        }
      }
      await this.options.iam.send(new DeletePolicyCommand({ PolicyArn: arn }));
      return 'deleted';
    } catch (error) {
      if (error instanceof NoSuchEntityException) return 'absent'; // deleted concurrently: the effect holds
      if ((error as Error).name === 'DeleteConflict' || (error as Error).name === 'DeleteConflictException') return 'retained-in-use'; // attached meanwhile
      throw error;
    }
  }

  private async attached(arn: string): Promise<boolean> {
    let marker: string | undefined;
    do {
      const page = await this.options.iam.send(new ListEntitiesForPolicyCommand({ PolicyArn: arn, ...(marker ? { Marker: marker } : {}) }));
      if ((page.PolicyRoles?.length ?? 0) + (page.PolicyUsers?.length ?? 0) + (page.PolicyGroups?.length ?? 0) > 0) return true;
      marker = page.IsTruncated ? page.Marker : undefined;
    } while (marker);
    return false;
  }
}

function versionNumber(id: string | undefined): number {
  return Number(id?.replace(/^v/, '') ?? 0);
}
