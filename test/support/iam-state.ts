// Reads what IAM holds for a set of policy names under the managed path.
import { GetPolicyCommand, GetPolicyVersionCommand, ListPolicyVersionsCommand, NoSuchEntityException } from '@aws-sdk/client-iam';
import type { IAMClient } from '@aws-sdk/client-iam';
import { decodePolicyVersionDocument } from '../../src/iam/document.js';
import { policyArn } from '../../src/iam/policies.js';

export interface ActualPolicy {
  document: unknown;
  versions: number;
}

export async function readManagedPolicy(iam: IAMClient, account: string, path: string, name: string): Promise<ActualPolicy | undefined> {
  const arn = policyArn({ account }, path, name);
  try {
    const policy = await iam.send(new GetPolicyCommand({ PolicyArn: arn }));
    const version = await iam.send(new GetPolicyVersionCommand({ PolicyArn: arn, VersionId: policy.Policy?.DefaultVersionId }));
    const versions = await iam.send(new ListPolicyVersionsCommand({ PolicyArn: arn }));
    return { document: decodePolicyVersionDocument(version.PolicyVersion?.Document ?? ''), versions: versions.Versions?.length ?? 0 };
  } catch (error) {
    if (error instanceof NoSuchEntityException) return undefined;
    throw error;
  }
}
