// Taking over policies made out of band (`ips adopt`) and giving them back
// (`ips release`): what IAM and the ledger say of each chosen policy, and the
// two writes that change hands, in the order that keeps every crash safe.
//
// Adopt writes the ledger FIRST, then tags. The tag is what lets the
// processor touch the policy; the ledger entry is what makes its next event an
// update with the adopted document as the last applied state. In that order
// no moment has the tag without the entry (the drift audit would call the
// policy `unknown-to-ledger`, and the first event would meet no ledger word).
// A crash between the two leaves an entry without the tag: the entry holds no
// IAM version ids, so a worker reads IAM before any write, finds no tag and
// refuses the event (`not-owned`) as before, keeping the adopted state (a
// refused batch keeps the state it found). Running adopt again finds its own
// entry (same document) and tags.
//
// Release forgets FIRST, then untags, then forgets again. While the ledger
// vouches for a policy (present, with IAM's version ids) a worker may write an
// update without reading IAM, so without checking the tag: untagging first
// would leave a window, or after a crash a lasting state, in which the
// processor writes a policy it no longer owns. Forgetting first makes every
// later step read IAM and check the tag; the second forget takes back what a
// step that ran between the first forget and the untag learned (it found the
// tag still there). A claim on the policy refuses either forget: the release
// stops there and says to run it again.
import { hostname, userInfo } from 'node:os';
import { GetPolicyCommand, GetPolicyVersionCommand, NoSuchEntityException, TagPolicyCommand, UntagPolicyCommand } from '@aws-sdk/client-iam';
import type { IAMClient, Policy } from '@aws-sdk/client-iam';
import { GetCallerIdentityCommand } from '@aws-sdk/client-sts';
import type { STSClient } from '@aws-sdk/client-sts';
import type { Config } from '../config/config.js';
import type { PolicyDocument } from '../contract/event.js';
import { OWNER_TAG } from '../contract/ownership.js';
import { decodePolicyVersionDocument, documentHash } from '../iam/document.js';
import { listPolicies } from '../iam/policies.js';
import type { Ledger, LedgerEntry } from '../ledger/ledger.js';
import type { Logger } from '../log/logger.js';

type Iam = Pick<IAMClient, 'send'>;

/**
 * What adopt or release will do (or did) with one policy:
 *   adopt                 untagged under the managed path: recorded, then tagged
 *   record                tagged ours, but the ledger holds no state for it (tagged by hand, or an adoption cut short): recorded only
 *   already-adopted       tagged ours, and the ledger holds its state: nothing to do
 *   release               tagged ours: forgotten, then untagged
 *   already-released      not tagged: forgotten again (a no-op when nothing is known)
 *   owned-elsewhere       tagged managed-by another application: never touched
 *   not-found             no policy of that name under the managed path: never touched outside it
 *   ambiguous             the name under two paths (IAM forbids it, emulators allow it): not touched
 */
export type AdoptionPlanKind = 'adopt' | 'record' | 'already-adopted' | 'owned-elsewhere' | 'not-found' | 'ambiguous';
export type ReleasePlanKind = 'release' | 'already-released' | 'owned-elsewhere' | 'not-found' | 'ambiguous';

export interface Planned<Kind> {
  policy: string;
  kind: Kind;
  arn?: string;
  path?: string;
  /** The managed-by tag's value when it is not ours. */
  owner?: string;
}

/** What was done with one policy, as the summary and `--json` show it. */
export interface Settled {
  policy: string;
  arn?: string;
  /** adopted, already-adopted, released, already-released, refused, owned-elsewhere, not-found, ambiguous. */
  result: string;
  /** Why a policy was refused or left: a sentence for the operator. */
  reason?: string;
}

/** Who runs the tool, for the ledger entry and the audit lines: the AWS identity, and the local user and host. */
export interface Operator {
  arn: string;
  user: string;
}

export async function whoIsOperating(sts: Pick<STSClient, 'send'>): Promise<Operator> {
  const caller = await sts.send(new GetCallerIdentityCommand({}));
  let user = 'unknown';
  try {
    user = `${userInfo().username}@${hostname()}`;
  } catch {
    // No passwd entry (a container's arbitrary uid): the AWS identity still says who.
  }
  return { arn: caller.Arn ?? 'unknown', user };
}

/** The customer-managed policies under the managed path, with their tags (ListPolicies shows none), by name. */
async function managedPolicies(iam: Iam, config: Config, names?: string[]): Promise<Map<string, Policy[]>> {
  const wanted = names && new Set(names);
  const byName = new Map<string, Policy[]>();
  for (const listed of await listPolicies(iam, config.managedPathPrefix)) {
    // PathPrefix is a string prefix, and the managed prefix ends in `/`: still, never trust a filter for the one rule adopt must keep.
    if (!listed.PolicyName || !listed.Arn || !(listed.Path ?? '/').startsWith(config.managedPathPrefix)) continue;
    if (wanted && !wanted.has(listed.PolicyName)) continue;
    const read = await readPolicy(iam, listed.Arn);
    if (!read) continue; // deleted meanwhile
    byName.set(listed.PolicyName, [...(byName.get(listed.PolicyName) ?? []), read]);
  }
  return byName;
}

async function readPolicy(iam: Iam, arn: string): Promise<Policy | undefined> {
  try {
    return (await iam.send(new GetPolicyCommand({ PolicyArn: arn }))).Policy;
  } catch (error) {
    if (error instanceof NoSuchEntityException) return undefined;
    throw error;
  }
}

const ownerTagOf = (policy: Policy) => policy.Tags?.find((tag) => tag.Key === OWNER_TAG)?.Value;

/** The ledger holds state the processor (or an adoption) put there: present or retained in use. */
const ledgerHoldsState = (entry: LedgerEntry | undefined) => entry?.state === 'present' || entry?.state === 'retained-in-use';

/**
 * What adopt would do with each chosen policy: the names given (`--only`,
 * each reported, found or not), or every untagged policy under the managed
 * path (`--all`, with those of ours the ledger does not know).
 */
export async function planAdoption(iam: Iam, ledger: Pick<LedgerReader, 'get'>, config: Config, names: string[] | 'all'): Promise<Planned<AdoptionPlanKind>[]> {
  const found = await managedPolicies(iam, config, names === 'all' ? undefined : names);
  const chosen = names === 'all' ? [...found.keys()].sort() : [...new Set(names)];
  const plans: Planned<AdoptionPlanKind>[] = [];
  for (const policy of chosen) {
    const matches = found.get(policy) ?? [];
    if (matches.length === 0) {
      plans.push({ policy, kind: 'not-found' });
      continue;
    }
    if (matches.length > 1) {
      plans.push({ policy, kind: 'ambiguous' });
      continue;
    }
    const iamPolicy = matches[0]!;
    const where = { arn: iamPolicy.Arn!, path: iamPolicy.Path ?? '/' };
    const owner = ownerTagOf(iamPolicy);
    if (owner !== undefined && owner !== config.appName) {
      if (names !== 'all') plans.push({ policy, kind: 'owned-elsewhere', owner, ...where });
      continue;
    }
    if (owner === undefined) {
      plans.push({ policy, kind: 'adopt', ...where });
      continue;
    }
    const known = ledgerHoldsState(await ledger.get(policy));
    if (!known) plans.push({ policy, kind: 'record', ...where });
    else if (names !== 'all') plans.push({ policy, kind: 'already-adopted', ...where });
  }
  return plans;
}

/** What release would do with each named policy. */
export async function planRelease(iam: Iam, config: Config, names: string[]): Promise<Planned<ReleasePlanKind>[]> {
  const found = await managedPolicies(iam, config, names);
  return [...new Set(names)].map((policy): Planned<ReleasePlanKind> => {
    const matches = found.get(policy) ?? [];
    if (matches.length === 0) return { policy, kind: 'not-found' };
    if (matches.length > 1) return { policy, kind: 'ambiguous' };
    const iamPolicy = matches[0]!;
    const where = { arn: iamPolicy.Arn!, path: iamPolicy.Path ?? '/' };
    const owner = ownerTagOf(iamPolicy);
    if (owner === undefined) return { policy, kind: 'already-released', ...where };
    if (owner !== config.appName) return { policy, kind: 'owned-elsewhere', owner, ...where };
    return { policy, kind: 'release', ...where };
  });
}

/** The ledger as adopt and release use it: its protocol, and a read of one entry. */
export type LedgerReader = Pick<Ledger, 'adopt' | 'release' | 'currentEpoch'> & { get(policy: string): Promise<LedgerEntry | undefined> };

export interface HandOverDeps {
  iam: Iam;
  ledger: LedgerReader;
  config: Config;
  operator: Operator;
  /** Audit lines: one per policy changed or refused, with who and what. */
  logger: Logger;
}

const CLAIM_IN_FLIGHT = 'a worker holds a claim on it (an event is being applied, or a step was cut short and its claim waits to be taken over): run again later';

/** Adopts one planned policy (`adopt` or `record`): the ledger first, then the tag. */
export async function adoptPolicy(plan: Planned<AdoptionPlanKind> & { arn: string; path: string }, deps: HandOverDeps): Promise<Settled> {
  const { iam, ledger, config, operator, logger } = deps;
  const audit = { policy: plan.policy, arn: plan.arn, operator: operator.arn, user: operator.user };
  const current = await readPolicy(iam, plan.arn);
  if (!current) return { policy: plan.policy, arn: plan.arn, result: 'not-found', reason: 'deleted meanwhile' };
  const owner = ownerTagOf(current);
  if (owner !== undefined && owner !== config.appName) return { policy: plan.policy, arn: plan.arn, result: 'owned-elsewhere', reason: `tagged ${OWNER_TAG}=${owner} meanwhile` };
  const version = await iam.send(new GetPolicyVersionCommand({ PolicyArn: plan.arn, VersionId: current.DefaultVersionId }));
  const document = decodePolicyVersionDocument(version.PolicyVersion?.Document ?? '') as PolicyDocument;
  const tags = Object.fromEntries((current.Tags ?? []).filter((tag) => tag.Key !== OWNER_TAG).map((tag) => [tag.Key ?? '', tag.Value ?? '']));
  const desired = { path: current.Path ?? plan.path, document, tags, ...(current.Description !== undefined ? { description: current.Description } : {}) };
  const docHash = documentHash(document);
  const recorded = await ledger.adopt({ policy: plan.policy, epoch: await ledger.currentEpoch(), desired, docHash, by: operator.arn });
  if (!recorded.recorded) {
    const reason = recorded.because === 'claim-in-flight' ? CLAIM_IN_FLIGHT : `the ledger holds state the processor applied (${recorded.entry.state}): ips drift shows how IAM differs from it`;
    logger.warn({ ...audit, because: recorded.because }, 'adoption refused');
    return { policy: plan.policy, arn: plan.arn, result: 'refused', reason };
  }
  // Already ours (a re-run, or the tag put by hand): the tag is there; TagPolicy would be a no-op.
  if (owner === undefined) await iam.send(new TagPolicyCommand({ PolicyArn: plan.arn, Tags: [{ Key: OWNER_TAG, Value: config.appName }] }));
  const again = recorded.previous?.adopted !== undefined && recorded.previous.docHash === docHash && owner === config.appName;
  logger.info({ ...audit, path: desired.path, docHash, tagged: owner === undefined, ledgerBefore: recorded.previous?.state ?? 'none' }, again ? 'already adopted' : 'adopted');
  return { policy: plan.policy, arn: plan.arn, result: again ? 'already-adopted' : 'adopted' };
}

/** Releases one planned policy (`release` or `already-released`): forget, untag, forget again. */
export async function releasePolicy(plan: Planned<ReleasePlanKind> & { arn: string }, deps: HandOverDeps): Promise<Settled> {
  const { iam, ledger, operator, logger } = deps;
  const audit = { policy: plan.policy, arn: plan.arn, operator: operator.arn, user: operator.user };
  const refused = (stage: string): Settled => {
    logger.warn({ ...audit, because: 'claim-in-flight', stage }, 'release refused');
    return { policy: plan.policy, arn: plan.arn, result: 'refused', reason: stage === 'before' ? CLAIM_IN_FLIGHT : `untagged, but ${CLAIM_IN_FLIGHT}` };
  };
  const first = await ledger.release(plan.policy);
  if (!first.forgotten) return refused('before');
  if (plan.kind === 'release') await iam.send(new UntagPolicyCommand({ PolicyArn: plan.arn, TagKeys: [OWNER_TAG] }));
  const second = await ledger.release(plan.policy);
  if (!second.forgotten) return refused('after-untag');
  const knew = ledgerHoldsState(first.previous) || ledgerHoldsState(second.previous);
  const again = plan.kind === 'already-released' && !knew;
  logger.info({ ...audit, untagged: plan.kind === 'release', ledgerBefore: first.previous?.state ?? 'none' }, again ? 'already released' : 'released');
  return { policy: plan.policy, arn: plan.arn, result: again ? 'already-released' : 'released' };
}
