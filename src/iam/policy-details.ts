// The account's customer-managed policies with their documents, in the fewest
// IAM calls: GetAccountAuthorizationDetails gives every policy with all its
// versions' documents (URL-encoded) and attachment counts, up to 1,000 per
// page. Only the drift audit uses it, and only its role may call it (an
// account-wide read, granted on "*"): it lives apart from policies.ts, whose
// calls are the worker's.
import { GetAccountAuthorizationDetailsCommand } from '@aws-sdk/client-iam';
import type { IAMClient, ManagedPolicyDetail } from '@aws-sdk/client-iam';

/**
 * Every customer-managed policy of the account, every page. IAM returns them
 * whatever their path: a caller that may look only under a path filters by
 * `Path` before it reads a document.
 */
export async function listPolicyDetails(iam: Pick<IAMClient, 'send'>): Promise<ManagedPolicyDetail[]> {
  const policies: ManagedPolicyDetail[] = [];
  let marker: string | undefined;
  do {
    const page = await iam.send(new GetAccountAuthorizationDetailsCommand({ Filter: ['LocalManagedPolicy'], MaxItems: 1000, ...(marker ? { Marker: marker } : {}) }));
    policies.push(...(page.Policies ?? []));
    marker = page.IsTruncated ? page.Marker : undefined;
  } while (marker);
  return policies;
}
