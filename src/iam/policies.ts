// What the reconciler, the drift audit, the invariant checker and the tests
// all need to say about IAM's customer-managed policies, said once: a
// policy's ARN, whether it is attached (every page of ListEntitiesForPolicy),
// and the policies under a path (every page of ListPolicies).
import { ListEntitiesForPolicyCommand, ListPoliciesCommand, NoSuchEntityException } from '@aws-sdk/client-iam';
import type { IAMClient, ListEntitiesForPolicyCommandOutput, Policy } from '@aws-sdk/client-iam';

/** `arn:<partition>:iam::<account>:policy<path><name>`; the partition follows the caller's (aws, aws-cn, aws-us-gov). */
export function policyArn(target: { partition?: string; account: string }, path: string, name: string): string {
  return `arn:${target.partition ?? 'aws'}:iam::${target.account}:policy${path}${name}`;
}

/** The partition of an ARN (STS's caller ARN gives the caller's). */
export function partitionOf(arn: string | undefined): string {
  return arn?.split(':')[1] || 'aws';
}

/** An IAM client, or anything that sends its commands (the reconciler's guarded send). */
type Iam = Pick<IAMClient, 'send'>;

/** Whether any user, group or role has the policy attached; a policy IAM does not show has none. */
export async function isAttached(iam: Iam, arn: string): Promise<boolean> {
  let marker: string | undefined;
  do {
    let page: ListEntitiesForPolicyCommandOutput;
    try {
      page = await iam.send(new ListEntitiesForPolicyCommand({ PolicyArn: arn, ...(marker ? { Marker: marker } : {}) }));
    } catch (error) {
      if (error instanceof NoSuchEntityException) return false;
      throw error;
    }
    if ((page.PolicyRoles?.length ?? 0) + (page.PolicyUsers?.length ?? 0) + (page.PolicyGroups?.length ?? 0) > 0) return true;
    marker = page.IsTruncated ? page.Marker : undefined;
  } while (marker);
  return false;
}

/** The account's customer-managed policies under a path prefix (all of them without one), every page. */
export async function listPolicies(iam: Iam, pathPrefix?: string): Promise<Policy[]> {
  const policies: Policy[] = [];
  let marker: string | undefined;
  do {
    const page = await iam.send(new ListPoliciesCommand({ Scope: 'Local', MaxItems: 1000, ...(pathPrefix ? { PathPrefix: pathPrefix } : {}), ...(marker ? { Marker: marker } : {}) }));
    policies.push(...(page.Policies ?? []));
    marker = page.IsTruncated ? page.Marker : undefined;
  } while (marker);
  return policies;
}
