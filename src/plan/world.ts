// What the plan reads before it decides (plan/planner.ts): per policy, the
// ledger's entry (GetItem, and the archive's BatchGetItem when the entry's
// window of eventIds is full) and what IAM holds under the policy's name
// (GetPolicy, GetPolicyVersion, ListEntitiesForPolicy; ListPolicies once, only
// when a name is not where the events or the ledger put it). A policy of a
// target account (its key `<account>/<name>`) is read in that account, through
// the role the workers assume there. Reads only: the plan writes nothing
// anywhere.
import { GetPolicyCommand, GetPolicyVersionCommand, NoSuchEntityException } from '@aws-sdk/client-iam';
import type { IAMClient, Policy } from '@aws-sdk/client-iam';
import { GetCallerIdentityCommand } from '@aws-sdk/client-sts';
import type { STSClient } from '@aws-sdk/client-sts';
import { from, lastValueFrom, mergeMap, toArray } from 'rxjs';
import { decodePolicyVersionDocument } from '../iam/document.js';
import { isAttached, listPolicies, partitionOf, policyArn } from '../iam/policies.js';
import type { Ledger, LedgerEntry } from '../ledger/ledger.js';
import { windowFull } from '../ledger/ledger.js';
import type { IamPolicy, PolicyWorld } from './planner.js';
import { splitPolicyKey } from '../contract/policy-key.js';

/** Policies read at once: IAM throttles, and an operator's plan shares the account's rate with the workers. */
const POLICIES_IN_FLIGHT = 4;

export interface WorldSources {
  iam: Pick<IAMClient, 'send'>;
  ledger: Pick<Ledger, 'archivedEvents'> & { get(policy: string): Promise<LedgerEntry | undefined> };
  managedPathPrefix: string;
  /** Config.recentEventIds: past it, the entry's window may have sent eventIds to the archive. */
  recentEventIds: number;
  /** The workers' own account and partition (callerOf, asked once per plan). */
  caller(): Promise<{ partition: string; account: string }>;
  /** IAM of a target account, through the role the workers assume there. */
  iamOf(account: string, partition: string): Pick<IAMClient, 'send'>;
}

/** Who the caller is (STS GetCallerIdentity): the workers' own account, and the partition. */
export async function callerOf(sts: Pick<STSClient, 'send'>): Promise<{ partition: string; account: string }> {
  const identity = await sts.send(new GetCallerIdentityCommand({}));
  if (!identity.Account) throw new Error('STS returned no account');
  return { partition: partitionOf(identity.Arn), account: identity.Account };
}

/** What the plan must know of one policy to read its world. */
export interface PolicyQuestion {
  /** Its key (contract/policy-key.ts): `<account>/<name>`, or the name in the workers' own account. */
  policy: string;
  /** The paths its events name or fall back to (where IAM is looked at first). */
  paths: string[];
  /** Its events' eventIds (looked up in the archive when the entry's window is full). */
  eventIds: string[];
  /** The epoch its events would be processed in: an entry of an older epoch counts as none. */
  epoch: number;
}

export async function readWorlds(sources: WorldSources, questions: PolicyQuestion[]): Promise<Map<string, PolicyWorld>> {
  const reader = new WorldReader(sources);
  const worlds = await lastValueFrom(
    from(questions).pipe(
      mergeMap(async (question) => [question.policy, await reader.read(question)] as const, POLICIES_IN_FLIGHT),
      toArray(),
    ),
    { defaultValue: [] },
  );
  return new Map(worlds);
}

class WorldReader {
  /** Per account, its customer-managed policies (read once, when needed). */
  private readonly listings = new Map<string, Promise<Policy[]>>();

  constructor(private readonly sources: WorldSources) {}

  async read(question: PolicyQuestion): Promise<PolicyWorld> {
    const { ledger, recentEventIds } = this.sources;
    const stored = await ledger.get(question.policy);
    // The pipeline reads an entry of an older epoch (a re-apply replay's) as none.
    const entry = stored && stored.epoch >= question.epoch ? stored : undefined;
    const unknown = question.eventIds.filter((eventId) => !entry?.events.some((event) => event.eventId === eventId));
    const archived = entry && windowFull(entry, recentEventIds) && unknown.length > 0 ? await ledger.archivedEvents(question.policy, entry.epoch, unknown, entry.position) : [];
    const paths = [...new Set([...(entry?.desired?.path !== undefined ? [entry.desired.path] : []), ...question.paths])];
    const iam = await this.iamPolicy(question.policy, paths);
    return { ledger: entry, archived, iam };
  }

  /** The policy under that key, wherever it lives in its account: first where the events and the ledger say, then by the account's listing. */
  private async iamPolicy(key: string, paths: string[]): Promise<IamPolicy | undefined> {
    const own = await this.sources.caller();
    const { account = own.account, policyName: name } = splitPolicyKey(key);
    const iam = account === own.account ? this.sources.iam : this.sources.iamOf(account, own.partition);
    for (const path of paths) {
      const policy = await this.getPolicy(iam, policyArn({ partition: own.partition, account }, path, name));
      if (policy) return this.describe(iam, policy);
    }
    let listing = this.listings.get(account);
    if (!listing) this.listings.set(account, (listing = listPolicies(iam)));
    const listed = (await listing).find((policy) => policy.PolicyName === name);
    const policy = listed?.Arn ? await this.getPolicy(iam, listed.Arn) : undefined; // the listing shows no tags
    return policy ? this.describe(iam, policy) : undefined;
  }

  private async getPolicy(iam: Pick<IAMClient, 'send'>, arn: string): Promise<Policy | undefined> {
    try {
      return (await iam.send(new GetPolicyCommand({ PolicyArn: arn }))).Policy;
    } catch (error) {
      if (error instanceof NoSuchEntityException) return undefined;
      throw error;
    }
  }

  private async describe(iam: Pick<IAMClient, 'send'>, policy: Policy): Promise<IamPolicy> {
    const arn = policy.Arn!;
    const version = await iam.send(new GetPolicyVersionCommand({ PolicyArn: arn, VersionId: policy.DefaultVersionId }));
    const tags: Record<string, string> = Object.create(null) as Record<string, string>;
    for (const tag of policy.Tags ?? []) if (tag.Key !== undefined) tags[tag.Key] = tag.Value ?? '';
    return {
      path: policy.Path ?? '/',
      document: decodePolicyVersionDocument(version.PolicyVersion?.Document ?? '{}'),
      tags,
      attached: await isAttached(iam, arn),
    };
  }
}
