// How the IAM step reads and deletes a managed policy: found by ARN
// (account from STS, path, name), owned or not, its versions, its
// attachments, and DeletePolicy as the judge of whether it can go. Every call
// goes through the step's guard (step-guard.ts). The reconciler's steps
// (reconciler.ts, delete-step.ts) build on these.
import { DeletePolicyCommand, DeletePolicyVersionCommand, GetPolicyCommand, GetPolicyVersionCommand, ListPolicyVersionsCommand, NoSuchEntityException } from '@aws-sdk/client-iam';
import type { IAMClient, Policy, PolicyVersion } from '@aws-sdk/client-iam';
import { GetCallerIdentityCommand } from '@aws-sdk/client-sts';
import type { STSClient } from '@aws-sdk/client-sts';
import type { Config } from '../config/config.js';
import type { IamOutcome } from '../contract/outcome.js';
import { OWNER_TAG, ownedBy } from '../contract/ownership.js';
import { RejectedEventError, TransientError } from '../faults/errors.js';
import { AGAIN, retry } from '../faults/retry.js';
import { RETRY } from '../faults/retry-policies.js';
import type { Logger } from '../log/logger.js';
import type { Metrics } from '../metrics/metrics.js';
import { hasErrorCode, iamLimitOf } from './classify-iam-error.js';
import { decodePolicyVersionDocument, documentsEqual } from './document.js';
import { isAttached, listPolicies, partitionOf, policyArn } from './policies.js';
import { guardedSend } from './step-guard.js';
import type { StepGuard } from './step-guard.js';
import { Visibility } from './visibility.js';

/** What the ledger knew before this step (the pipeline's ApplyHint). */
export interface StepHint {
  /** The ledger has no present state for the policy: create without reading first. */
  likelyAbsent?: boolean;
  /** The ledger's last applied state for the policy is present: IAM's NoSuchEntity is read lag, not absence. */
  ledgerSaysPresent?: boolean;
  /** Bounds the step by its ledger claim: no IAM call starts once it says stop, and a call in flight is cancelled. */
  guard?: StepGuard;
  /**
   * documentHash of the document the ledger last applied. When it is not the
   * wanted one, IAM showing the wanted document is a read that lags our own
   * last write (or a change out of band): the document is written, not
   * judged `unchanged`.
   */
  ledgerDocHash?: string;
  /** Write the document even if IAM shows it already (re-verification: the read may predate a late write). */
  forceWrite?: boolean;
  /** The ledger does not know where the policy lives: a delete that names no path finds it by name under the managed prefix. */
  pathUnknown?: boolean;
  /**
   * Re-verification: the ledger's path is the right one. A policy of ours
   * found by name under another managed path is a lost claim's late create
   * (names are unique per account, and IAM cannot move a policy): it is
   * deleted there, unless attached, and created where the ledger says.
   */
  relocate?: boolean;
  /**
   * IAM's version ids of the policy as the ledger's last completion left them,
   * oldest first, the last one the default. Given only when the ledger vouches
   * for the policy (present and owned by its last step, no verification owed,
   * the claim not taken over from another owner): then an update is written
   * without reading IAM first.
   */
  ledgerVersions?: string[];
  /** The tags the ledger last applied (`managed-by` aside): a direct update writes tags only when the wanted ones differ. */
  ledgerTags?: Record<string, string>;
}

/** IAM answers to a direct write that say the ledger's picture is out of date: the full read path decides instead. */
export const SURPRISES = ['NoSuchEntity', 'LimitExceeded', 'DeleteConflict', 'EntityAlreadyExists', 'AccessDenied'];

export interface ReconcilerOptions {
  iam: IAMClient;
  sts: STSClient;
  config: Config;
  metrics: Metrics;
  logger: Logger;
  /**
   * The target account this reconciler writes to (through its assumed role),
   * as the `account` label of its metrics; undefined: the worker's own
   * account, whose metrics keep their unlabelled series.
   */
  account?: string;
  /** Attempts per IAM step before a transient fault surfaces (default 1: retries belong to the SDK and the pipeline; direct callers such as tests may ask for more). */
  attempts?: number;
  baseDelayMs?: number;
  maxDelayMs?: number;
  /**
   * How long NoSuchEntity counts as read lag for a policy the ledger says is
   * present (default 30 s); past it, the policy is taken as gone (deleted out of band).
   */
  visibilityWindowMs?: number;
  now?: () => number;
  /** How the step waits between tries (default: a timer); a simulation passes its virtual clock's. */
  sleep?: (ms: number) => Promise<unknown>;
}

export class PolicyAccess {
  private account: Promise<{ partition: string; account: string }> | undefined;
  protected readonly now: () => number;
  protected readonly sleep: ((ms: number) => Promise<unknown>) | undefined;
  protected readonly visibility: Visibility;
  /** Every IAM call of a step goes through here (step-guard.ts). */
  protected readonly send: IAMClient['send'];

  constructor(protected readonly options: ReconcilerOptions) {
    this.now = options.now ?? Date.now;
    this.send = guardedSend(options.iam);
    this.visibility = new Visibility(options.visibilityWindowMs ?? options.config.iamVisibilityWindowMs, this.now);
    this.sleep = options.sleep;
  }

  /** `arn:<partition>:iam::<account>`: the caller's own ARN says which partition (aws, aws-cn, aws-us-gov). */
  protected caller(): Promise<{ partition: string; account: string }> {
    this.account ??= this.options.sts.send(new GetCallerIdentityCommand({})).then((identity) => {
      if (!identity.Account) throw new TransientError('no-account', 'STS returned no account');
      return { partition: partitionOf(identity.Arn), account: identity.Account };
    });
    // A failed lookup is not cached: the next call asks again.
    this.account.catch(() => (this.account = undefined));
    return this.account;
  }

  protected async arn(event: { policyPath: string; policyName: string }): Promise<string> {
    return policyArn(await this.caller(), event.policyPath, event.policyName);
  }

  protected async find(arn: string): Promise<Policy | undefined> {
    try {
      const policy = (await this.send(new GetPolicyCommand({ PolicyArn: arn }))).Policy;
      if (policy) this.visibility.seen(arn);
      return policy;
    } catch (error) {
      if (error instanceof NoSuchEntityException) return undefined;
      throw error;
    }
  }

  /** find(), giving a just-created policy a moment to become visible. */
  protected async findSoon(arn: string): Promise<Policy | undefined> {
    return retry(RETRY.iamVisibility, async () => (await this.find(arn)) ?? AGAIN, { sleep: this.sleep });
  }

  /** IamStep.path: where the step found the policy, when that is not where the event would put it. */
  protected livesAt(policy: Policy, wanted: string): { path?: string } {
    return policy.Path !== undefined && policy.Path !== wanted ? { path: policy.Path } : {};
  }

  protected owned(policy: Policy): boolean {
    const underPrefix = (policy.Path ?? '/').startsWith(this.options.config.managedPathPrefix);
    const tagged = ownedBy(policy.Tags, this.options.config.appName);
    return underPrefix && tagged;
  }

  protected notOwned(policy: Policy): never {
    throw new RejectedEventError('not-owned', `${policy.Arn} exists but is not managed by ${this.options.config.appName} (path ${policy.Path}, no ${OWNER_TAG} tag for it)`);
  }

  /** The default version's document; a version IAM does not show yet is read lag. */
  protected async defaultDocument(arn: string, policy: Policy): Promise<unknown> {
    try {
      const current = await this.send(new GetPolicyVersionCommand({ PolicyArn: arn, VersionId: policy.DefaultVersionId }));
      return decodePolicyVersionDocument(current.PolicyVersion?.Document ?? '{}');
    } catch (error) {
      if (error instanceof NoSuchEntityException) throw new TransientError('iam-not-yet-visible', `${arn}: IAM does not show its default version ${policy.DefaultVersionId} yet`);
      throw error;
    }
  }

  /**
   * A policy of that name under another path: IAM names are unique per
   * account whatever the path. Listed from the account's own policies; the
   * rare path of a create refused for a policy we cannot see, so its cost
   * (one call per 1,000 policies) is paid only then.
   */
  protected async namedElsewhere(name: string, arn: string, pathPrefix?: string): Promise<Policy | undefined> {
    return (await listPolicies({ send: this.send }, pathPrefix)).find((policy) => policy.PolicyName === name && policy.Arn !== arn);
  }

  /** Whether the policy's default version (as IAM shows it now) is the document. */
  protected async defaultIs(arn: string, document: unknown): Promise<boolean> {
    const policy = await this.find(arn);
    if (!policy?.DefaultVersionId) return false;
    try {
      const current = await this.send(new GetPolicyVersionCommand({ PolicyArn: arn, VersionId: policy.DefaultVersionId }));
      return documentsEqual(decodePolicyVersionDocument(current.PolicyVersion?.Document ?? '{}'), document);
    } catch (error) {
      if (error instanceof NoSuchEntityException) return false;
      throw error;
    }
  }

  /**
   * A direct write's error (writeDirectly, deleteDirectly): a surprise
   * (SURPRISES) means the ledger's picture is out of date, and the step reads
   * IAM instead (undefined); anything else goes up. A size or quota refusal
   * contradicts nothing the ledger says: it is the event's, for good.
   */
  protected readInstead(arn: string, error: unknown): undefined {
    const limit = iamLimitOf(error);
    if (!SURPRISES.some((code) => hasErrorCode(error, code)) || limit === 'size' || limit === 'quota') throw error;
    this.options.logger.info({ policy: arn, surprise: (error as Error).name }, 'IAM contradicts the ledger: reading the policy');
    return undefined;
  }

  /**
   * Non-default versions first, then the policy. The version list may be
   * stale, so DeletePolicy is the judge: IAM refuses it (DeleteConflict) while
   * the policy is attached or while non-default versions remain, and only the
   * first means in use. NoSuchEntity from DeletePolicy (a write, so not read
   * lag) means the policy is gone.
   */
  protected async deletePolicy(arn: string): Promise<IamOutcome> {
    const skip = new Set<string>();
    const outcome = await retry(
      RETRY.iamLookAgain,
      async (): Promise<IamOutcome | typeof AGAIN> => {
        for (const version of await this.versions(arn)) {
          if (version.IsDefaultVersion || !version.VersionId || skip.has(version.VersionId)) continue;
          if ((await this.deleteVersion(arn, version.VersionId)) !== 'deleted') skip.add(version.VersionId);
        }
        try {
          await this.send(new DeletePolicyCommand({ PolicyArn: arn }));
          return 'deleted';
        } catch (error) {
          if (error instanceof NoSuchEntityException) return 'absent'; // deleted meanwhile: the effect holds
          if (!hasErrorCode(error, 'DeleteConflict')) throw error;
          if (await this.attached(arn)) return 'retained-in-use';
          return AGAIN; // Not attached: versions a stale list did not show. Look again.
        }
      },
      { retriable: () => false },
    );
    if (outcome) return outcome;
    throw new TransientError('iam-delete-conflict', `${arn}: DeletePolicy refused, yet IAM shows neither an attachment nor a version left to delete`);
  }

  /** The policy's versions as IAM shows them now (possibly stale); none if it shows no policy. */
  protected async versions(arn: string): Promise<PolicyVersion[]> {
    try {
      return (await this.send(new ListPolicyVersionsCommand({ PolicyArn: arn }))).Versions ?? [];
    } catch (error) {
      if (error instanceof NoSuchEntityException) return [];
      throw error;
    }
  }

  /**
   * Deletes one non-default version. From a stale list, or as the SDK's retry
   * of a call whose answer was lost, IAM may say the version is gone
   * (NoSuchEntity) or is the default now (DeleteConflict): either way it is
   * not to be deleted again, and the caller looks again.
   */
  protected async deleteVersion(arn: string, versionId: string): Promise<'deleted' | 'gone' | 'default'> {
    try {
      await this.send(new DeletePolicyVersionCommand({ PolicyArn: arn, VersionId: versionId }));
      return 'deleted';
    } catch (error) {
      if (error instanceof NoSuchEntityException) return 'gone';
      if (hasErrorCode(error, 'DeleteConflict')) return 'default';
      throw error;
    }
  }

  /**
   * Whether IAM lists any user, group or role for the policy, over every
   * page. A list that lags (or a policy IAM does not show) lists nothing:
   * DeletePolicy, which IAM refuses for an attached policy, has the last word.
   */
  protected attached(arn: string): Promise<boolean> {
    return isAttached({ send: this.send }, arn);
  }
}
