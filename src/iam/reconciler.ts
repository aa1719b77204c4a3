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
// as a set on every upsert that reads the policy, `managed-by` always kept.
//
// What each verdict is based on (docs/design.md, "What each IAM verdict rests
// on"): IAM's answers, or the ledger's word where the ledger vouches for the
// policy. An update of a policy the ledger knows (present, owned, its version
// ids and last applied document recorded, no verification owed) is written
// directly: CreatePolicyVersion as default, the oldest non-default version
// deleted first only when the ledger knows 5 exist, tags written only when
// they differ from the ledger's. Any surprise in IAM's answers (NoSuchEntity,
// LimitExceeded, DeleteConflict, AccessDenied, a new version number that says
// versions were made elsewhere) sends the step to the full read path below,
// which is what runs for every other case. `unchanged` is never given without
// reading IAM's default version. A delete of a policy the ledger vouches for
// skips the reads of the policy and its versions, never the attachment check.
// Transient faults are retried here with exponential backoff and full jitter
// within a budget, behind a circuit breaker; past the budget they surface as
// TransientError and the pipeline retries the whole step later.
//
// Real IAM is eventually consistent and answers lost after the effect are
// retried by the SDK, so an IAM error is evidence to weigh, not a verdict:
//   - reads lag writes: NoSuchEntity for a policy the ledger says is present
//     is read lag for a bounded time (TransientError iam-not-yet-visible),
//     and EntityAlreadyExists for a policy we cannot see is never not-owned;
//   - DeleteConflict means attached OR non-default versions left: only an
//     attachment makes retained-in-use; otherwise the versions go and the
//     delete is tried again;
//   - NoSuchEntity / DeleteConflict from DeletePolicyVersion (a retried call,
//     a stale list) mean that version is gone or is the default: look again;
//   - LimitExceeded from CreatePolicyVersion may follow our own create whose
//     answer was lost: if the default is the wanted document, it is updated;
//     otherwise prune (even if the list showed fewer than 5) and create again.
import { CreatePolicyCommand, CreatePolicyVersionCommand, DeletePolicyVersionCommand, NoSuchEntityException } from '@aws-sdk/client-iam';
import type { Policy, Tag } from '@aws-sdk/client-iam';
import type { PolicyDeleted, PolicyUpserted } from '../contract/event.js';
import type { IamOutcome, IamStep } from '../contract/outcome.js';
import { METRIC } from '../metrics/metrics.js';
import { CircuitBreaker } from './circuit-breaker.js';
import type { BreakerState } from './circuit-breaker.js';
import { documentHash, documentsEqual } from './document.js';
import { classifyIamError, hasErrorCode, iamLimitOf, isIamFault } from './classify-iam-error.js';
import { RejectedEventError, TransientError } from '../faults/errors.js';
import { AGAIN, retry } from '../faults/retry.js';
import type { RetryPolicy } from '../faults/retry.js';
import { RETRY } from '../faults/retry-policies.js';
import { OWNER_TAG } from '../contract/ownership.js';
import { MAX_DOCUMENT_CHARS, documentSize } from '../policy/document-size.js';
import { MAX_VERSIONS, byAge, followedBy, oldestNonDefault } from './versions.js';
import { syncTags, writeTagChanges } from './tags.js';
import { currentGuard, withinGuard } from './step-guard.js';
import { DeleteStep } from './delete-step.js';
import { Visibility } from './visibility.js';
import type { ReconcilerOptions, StepHint } from './policy-access.js';

export type { StepGuard } from './step-guard.js';

export { followedBy } from './versions.js';

export { OWNER_TAG };
/** The breaker's state as a gauge (METRIC.iamBreakerState): an alarm on Maximum >= 2 fires while IAM is failing. */
const BREAKER_LEVEL: Record<BreakerState, number> = { closed: 0, 'half-open': 1, open: 2 };

export type { ReconcilerOptions, StepHint } from './policy-access.js';

export class IamReconciler extends DeleteStep {
  private readonly breaker: CircuitBreaker;
  private readonly accountLabel: Record<string, string>;
  private readonly stepRetry: RetryPolicy;
  /** Our policy holding the name under another path than the event's, by the event's ARN: read lag of our own delete, for a window. */
  private readonly heldElsewhere: Visibility;

  constructor(options: ReconcilerOptions) {
    super(options);
    // One attempt (RETRY.iamStep): the SDK retries each call, the pipeline retries the policy's unit; no retries of retries.
    this.stepRetry = { attempts: options.attempts ?? RETRY.iamStep.attempts, baseMs: options.baseDelayMs ?? RETRY.iamStep.baseMs, capMs: options.maxDelayMs ?? RETRY.iamStep.capMs };
    // One breaker per reconciler, and one reconciler per account: one account's failing IAM never holds another's calls.
    const account: Record<string, string> = options.account !== undefined ? { account: options.account } : {};
    this.accountLabel = account;
    this.heldElsewhere = new Visibility(options.visibilityWindowMs ?? options.config.iamVisibilityWindowMs, this.now);
    options.metrics.gauge(METRIC.iamBreakerState, BREAKER_LEVEL.closed, account);
    this.breaker = new CircuitBreaker(options.config.breakerThreshold, options.config.breakerCooldownMs, options.now, (state) => {
      options.metrics.increment(METRIC.iamBreaker, { state, ...account });
      options.metrics.gauge(METRIC.iamBreakerState, BREAKER_LEVEL[state], account);
      options.logger.warn({ breaker: state, ...account }, 'IAM circuit breaker changed state');
    });
  }

  /** The upsert's outcome (upsertStep: and the versions it left). */
  async upsert(event: PolicyUpserted, hint: StepHint = {}): Promise<IamOutcome> {
    return (await this.upsertStep(event, hint)).outcome;
  }

  /** The delete's outcome (deleteStep: and the versions it left). */
  async delete(event: PolicyDeleted, hint: StepHint = {}): Promise<IamOutcome> {
    return (await this.deleteStep(event, hint)).outcome;
  }

  upsertStep(event: PolicyUpserted, hint: StepHint = {}): Promise<IamStep> {
    return this.guarded(hint, () => this.step('upsert', () => this.upsertOnce(event, hint)));
  }

  deleteStep(event: PolicyDeleted, hint: StepHint = {}): Promise<IamStep> {
    return this.guarded(hint, () => this.step('delete', () => this.deleteOnce(event, hint)));
  }

  private guarded(hint: StepHint, run: () => Promise<IamStep>): Promise<IamStep> {
    return hint.guard ? withinGuard(hint.guard, run) : run();
  }

  /** Runs one state-aware step with retries; counts its outcome. */
  private async step(kind: string, run: () => Promise<IamStep>): Promise<IamStep> {
    const done = await retry(
      this.stepRetry,
      async () => {
        try {
          // Only IAM's own faults count against the breaker; read lag and
          // conflicts we retry are IAM answering, not IAM failing.
          return await this.breaker.run(run, isIamFault);
        } catch (error) {
          // The claim's guard stopped the step: its own reason (transient) is the verdict, not the SDK's abort.
          const guard = currentGuard();
          if (guard?.signal.aborted) throw guard.signal.reason as Error;
          throw classifyIamError(error, kind);
        }
      },
      { retriable: (error) => error instanceof TransientError && !currentGuard()?.signal.aborted, sleep: this.sleep },
    );
    this.options.metrics.increment(METRIC.iamOutcomes, { outcome: done!.outcome, ...this.accountLabel });
    return done!;
  }

  /**
   * Whether the ledger's word is enough to write an update without reading
   * IAM: the policy is present and owned by the ledger's last step, its
   * versions are known, and the wanted document is not the one last applied
   * (that would be `unchanged`, which only IAM's default version can confirm).
   */
  private writesDirectly(event: PolicyUpserted, hint: StepHint): hint is StepHint & { ledgerVersions: string[]; ledgerDocHash: string } {
    return (
      hint.ledgerSaysPresent === true &&
      !hint.likelyAbsent &&
      !hint.pathUnknown &&
      !hint.forceWrite &&
      hint.ledgerVersions !== undefined &&
      hint.ledgerVersions.length > 0 &&
      hint.ledgerVersions.length <= MAX_VERSIONS &&
      hint.ledgerDocHash !== undefined &&
      hint.ledgerDocHash !== documentHash(event.document)
    );
  }

  /**
   * The update as one write (two at IAM's limit of 5 versions, plus tags when
   * they changed), from the ledger's picture of the policy. Undefined when
   * IAM's answer contradicts that picture: the caller then reads IAM and
   * decides from what it shows. What was written before the surprise is
   * harmless there: the full path converges from whatever IAM holds.
   */
  private async writeDirectly(arn: string, event: PolicyUpserted, hint: StepHint & { ledgerVersions: string[] }): Promise<IamStep | undefined> {
    const known = hint.ledgerVersions;
    try {
      await writeTagChanges(this.send, arn, hint.ledgerTags ?? {}, event.tags);
      let kept = known;
      if (known.length >= MAX_VERSIONS) {
        // The last one is the default; the first is the oldest of the others.
        await this.send(new DeletePolicyVersionCommand({ PolicyArn: arn, VersionId: known[0] }));
        kept = known.slice(1);
      }
      const created = await this.send(new CreatePolicyVersionCommand({ PolicyArn: arn, PolicyDocument: JSON.stringify(event.document), SetAsDefault: true }));
      // IAM numbers versions one up from the last it made: another number means
      // versions were made that the ledger does not know of, so it cannot count them.
      return { outcome: 'updated', versions: followedBy(kept, created.PolicyVersion?.VersionId) };
    } catch (error) {
      return this.readInstead(arn, error);
    }
  }

  private async upsertOnce(event: PolicyUpserted, hint: StepHint): Promise<IamStep> {
    // Before any write: at IAM's 5 versions an update deletes one first, and a document IAM then refuses for its size would cost it.
    const size = documentSize(event.document);
    if (size > MAX_DOCUMENT_CHARS) throw new RejectedEventError('document-too-large', `document has ${size} characters without white space; IAM allows ${MAX_DOCUMENT_CHARS}`);
    let arn = await this.arn(event);
    if (this.writesDirectly(event, hint)) {
      const written = await this.writeDirectly(arn, event, hint);
      if (written) return written;
    }
    // When the ledger says the policy is not there, create straight away: an
    // existing policy (created out of band, or by a lost-response retry) makes
    // the create fail with EntityAlreadyExists, and the read happens then.
    // Halves the IAM calls of a new policy, and IAM calls are what IAM throttles.
    let policy = hint.likelyAbsent ? undefined : await this.find(arn);
    const moved = !policy && hint.relocate === true && (await this.removeElsewhere(event, arn));
    // Not shown but present by the ledger: wait for IAM rather than try a create bound to fail.
    if (!policy && !moved) this.visibility.await(arn, hint.ledgerSaysPresent === true);
    const wantedTags: Tag[] = [...Object.entries(event.tags).map(([Key, Value]) => ({ Key, Value })), { Key: OWNER_TAG, Value: this.options.config.appName }];
    if (!policy) {
      try {
        const created = await this.send(
          new CreatePolicyCommand({
            PolicyName: event.policyName,
            Path: event.policyPath,
            PolicyDocument: JSON.stringify(event.document),
            ...(event.description !== undefined ? { Description: event.description } : {}),
            Tags: wantedTags,
          }),
        );
        const first = created.Policy?.DefaultVersionId;
        return { outcome: 'created', versions: first ? [first] : undefined };
      } catch (error) {
        if (!hasErrorCode(error, 'EntityAlreadyExists')) throw error;
        // Our own earlier create (a retry after a lost answer) that IAM does
        // not show yet, or the name taken under another path (names are
        // unique per account whatever the path): look again, for a while.
        policy = await this.findSoon(arn);
        if (!policy) {
          const found = await this.holderElsewhere(event, arn);
          policy = found;
          arn = found.Arn!;
        }
      }
    }
    if (!this.owned(policy)) this.notOwned(policy);
    // Found under another path (the event names none): the step says where, for the ledger.
    const livesAt = this.livesAt(policy, event.policyPath);
    try {
      await syncTags(this.send, arn, policy.Tags ?? [], wantedTags, hint.ledgerTags);
      const document = await this.defaultDocument(arn, policy);
      if (documentsEqual(document, event.document) && !hint.forceWrite && (hint.ledgerDocHash === undefined || hint.ledgerDocHash === documentHash(event.document))) {
        // Nothing written: the ledger's versions still hold if IAM's default is the ledger's.
        const known = hint.ledgerVersions;
        return { outcome: 'unchanged', versions: known && known.length > 0 && known.at(-1) === policy.DefaultVersionId ? known : undefined, ...livesAt };
      }
      return { ...(await this.newDefaultVersion(arn, event.document)), ...livesAt };
    } catch (error) {
      // A write says the policy we just read is gone (deleted out of band
      // meanwhile): the step is run again and finds it absent.
      if (error instanceof NoSuchEntityException) throw new TransientError('iam-changed-meanwhile', `${arn}: the policy went away during the update`, { cause: error });
      throw error;
    }
  }

  /**
   * CreatePolicy said the name is taken and IAM shows nothing at `arn`. The
   * listing lags like every read (a policy we deleted moments ago may still
   * be listed; our own create whose answer was lost may not be yet), so what
   * it names is read back before it is judged:
   *   - another's policy: not-owned;
   *   - ours, and the event names no path: the policy wherever it lives, updated there;
   *   - ours where the event does not want it: a lagging view of our own
   *     delete for the visibility window, then path-conflict (IAM cannot move it);
   *   - nothing listed, or gone when read: our own create not shown yet (transient).
   */
  private async holderElsewhere(event: PolicyUpserted, arn: string): Promise<Policy> {
    const listed = await this.namedElsewhere(event.policyName, arn);
    const found = listed?.Arn ? await this.find(listed.Arn) : undefined;
    if (!found?.Arn || !this.owned(found)) this.heldElsewhere.seen(arn);
    // Never not-owned for a policy we cannot see: it may well be ours.
    if (!found?.Arn) throw new TransientError('iam-not-yet-visible', `${arn}: IAM says the name exists but shows no such policy yet`);
    if (!this.owned(found)) throw new RejectedEventError('not-owned', `a policy named ${event.policyName} already exists at ${found.Arn}, not at ${arn}`);
    if (!event.pathGiven) return found;
    if (this.heldElsewhere.within(arn)) throw new TransientError('iam-not-yet-visible', `${arn}: our policy of that name is shown at ${found.Arn}: our own delete not shown yet, or it lives there`);
    throw new RejectedEventError('path-conflict', `${event.policyName} is managed at ${found.Arn}; IAM cannot move it to ${arn}`);
  }

  /**
   * StepHint.relocate: the policy of that name under another managed path, if
   * any, is deleted there (true). A foreign one is `not-owned`; one of ours
   * that is attached cannot move (`path-conflict`): both are refusals the
   * verification counts and the drift audit reports.
   */
  private async removeElsewhere(event: PolicyUpserted, arn: string): Promise<boolean> {
    const listed = await this.namedElsewhere(event.policyName, arn, this.options.config.managedPathPrefix);
    const found = listed?.Arn ? await this.find(listed.Arn) : undefined; // the list shows no tags: read the policy
    if (!found?.Arn) return false;
    if (!this.owned(found)) this.notOwned(found);
    const attachedThere = () => new RejectedEventError('path-conflict', `${found.Arn} is attached; IAM cannot move it to ${arn}`);
    if (await this.attached(found.Arn)) throw attachedThere();
    if ((await this.deletePolicy(found.Arn)) === 'retained-in-use') throw attachedThere();
    this.options.logger.info({ policy: arn, removed: found.Arn }, 'a late create had put the policy under another path: moved where the ledger says');
    return true;
  }

  /**
   * Makes the document the new default version, the oldest non-default one
   * deleted first at IAM's limit of 5. The version list may be stale, and
   * LimitExceeded may answer the SDK's retry of our own create whose answer
   * was lost: then the default already is the document (updated); otherwise
   * the oldest version goes, whatever the list showed, and the create is
   * tried again.
   */
  private async newDefaultVersion(arn: string, document: unknown): Promise<IamStep> {
    const skip = new Set<string>(); // versions gone, or the default now
    let atLimit = false;
    const outcome = await retry(
      RETRY.iamLookAgain,
      async ({ index: round }): Promise<IamStep | typeof AGAIN> => {
        let versions = (await this.versions(arn)).filter((version) => version.VersionId && !skip.has(version.VersionId));
        if (atLimit || versions.length >= MAX_VERSIONS) {
          const oldest = oldestNonDefault(versions);
          if (oldest && (await this.deleteVersion(arn, oldest)) !== 'deleted') {
            skip.add(oldest);
            return AGAIN; // the list was stale: look again
          }
          versions = versions.filter((version) => version.VersionId !== oldest);
        }
        try {
          const created = await this.send(new CreatePolicyVersionCommand({ PolicyArn: arn, PolicyDocument: JSON.stringify(document), SetAsDefault: true }));
          // The list read may lag: it is trusted only if the new version follows its newest one.
          return { outcome: 'updated', versions: round === 0 ? followedBy(byAge(versions), created.PolicyVersion?.VersionId) : undefined };
        } catch (error) {
          // Only the 5-version limit is made room for: a size or quota refusal is the event's for good, and must cost no version.
          if (iamLimitOf(error) !== 'versions') throw error;
          if (await this.defaultIs(arn, document)) return { outcome: 'updated', versions: undefined };
          atLimit = true;
          return AGAIN;
        }
      },
      { retriable: () => false },
    );
    if (outcome) return outcome;
    throw new TransientError('iam-versions-conflict', `${arn}: no room for a new version after ${RETRY.iamLookAgain.attempts} tries`);
  }
}
