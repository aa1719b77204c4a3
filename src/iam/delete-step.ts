// The delete step, state-aware: a policy attached anywhere is kept
// (retained-in-use); otherwise its non-default versions go, then the policy.
// From the ledger's picture when it vouches for the policy (the attachment
// check is never skipped), else from IAM's reads.
import { DeletePolicyCommand, DeletePolicyVersionCommand, NoSuchEntityException } from '@aws-sdk/client-iam';
import type { PolicyDeleted } from '../contract/event.js';
import type { IamStep } from '../contract/outcome.js';
import { PolicyAccess } from './policy-access.js';
import type { StepHint } from './policy-access.js';
import { MAX_VERSIONS } from './versions.js';

export class DeleteStep extends PolicyAccess {
  /**
   * A delete of a policy the ledger vouches for, from its picture: the
   * attachment check (every page; a policy attached anywhere is kept), then
   * its non-default versions and the policy, without reading the policy and
   * its version list first. Undefined on a surprise: the caller reads IAM.
   */
  protected async deleteDirectly(arn: string, hint: StepHint): Promise<IamStep | undefined> {
    const known = hint.ledgerVersions;
    if (!hint.ledgerSaysPresent || hint.pathUnknown || hint.forceWrite || !known || known.length === 0 || known.length > MAX_VERSIONS) return undefined;
    try {
      if (await this.attached(arn)) return { outcome: 'retained-in-use', versions: known };
      for (const id of known.slice(0, -1)) await this.send(new DeletePolicyVersionCommand({ PolicyArn: arn, VersionId: id }));
    } catch (error) {
      return this.readInstead(arn, error);
    }
    // From here on as the read path's last step: DeletePolicy is the judge (deletePolicy()).
    try {
      await this.send(new DeletePolicyCommand({ PolicyArn: arn }));
      return { outcome: 'deleted', versions: [] };
    } catch (error) {
      if (error instanceof NoSuchEntityException) return { outcome: 'absent', versions: [] }; // deleted meanwhile: the effect holds
      return this.readInstead(arn, error);
    }
  }

  protected async deleteOnce(event: PolicyDeleted, hint: StepHint): Promise<IamStep> {
    let arn = await this.arn(event);
    const direct = await this.deleteDirectly(arn, hint);
    if (direct) return direct;
    let policy = await this.find(arn);
    if (!policy) {
      this.visibility.await(arn, hint.ledgerSaysPresent === true);
      // The ledger does not know where the policy lives (a write whose
      // completion never landed): a delete goes where the policy lives
      // whatever path it names, as it does when the ledger knows (the name is
      // unique in the account), so look for it under the managed prefix.
      const listed = hint.pathUnknown ? await this.namedElsewhere(event.policyName, arn, this.options.config.managedPathPrefix) : undefined;
      policy = listed?.Arn ? await this.find(listed.Arn) : undefined; // the list shows no tags: read the policy
      if (!policy?.Arn) return { outcome: 'absent', versions: [] };
      arn = policy.Arn;
    }
    if (!this.owned(policy)) this.notOwned(policy);
    // The emulator deletes attached policies without complaint; this check is the processor's own.
    if (await this.attached(arn)) {
      // Nothing deleted: the ledger's versions still hold if IAM's default is the ledger's.
      const known = hint.ledgerVersions;
      // Kept where it lives: the ledger learns the path if the delete found it under another one.
      return { outcome: 'retained-in-use', versions: known && known.length > 0 && known.at(-1) === policy.DefaultVersionId ? known : undefined, ...this.livesAt(policy, event.policyPath) };
    }
    const outcome = await this.deletePolicy(arn);
    // A policy kept after all (attached meanwhile) may have lost versions on the way.
    return outcome === 'retained-in-use' ? { outcome, versions: undefined, ...this.livesAt(policy, event.policyPath) } : { outcome, versions: [] };
  }
}
