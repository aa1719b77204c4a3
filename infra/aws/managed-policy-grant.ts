// The IAM grant of whoever writes an account's managed policies: the worker's
// task role in its own account (worker-role.ts), and the target role in each
// target account (target-account.ts). One function builds it for both, so the
// role the worker assumes in another account can do exactly what the worker
// does in its own, and no more.
//
// The ARNs name the account of the stack the role is in (AWS::AccountId): the
// worker's own account in the main stack, the target account in the target
// stack. test/unit/deploy.test.ts checks the grant against the reconciler's
// calls; test/unit/deploy-target-account.test.ts that both roles hold it alike.
import { Aws } from 'aws-cdk-lib';
import { PolicyStatement } from 'aws-cdk-lib/aws-iam';
import { OWNER_TAG } from '../../src/contract/ownership.js';
import { acknowledge } from './cfn.js';
import type { IConstruct } from 'constructs';
import type { InlinePolicyRole } from './inline-policy-role.js';

/** IAM calls of src/iam/reconciler.ts, split by whether they change anything. */
export const IAM_READ_ACTIONS = ['iam:GetPolicy', 'iam:GetPolicyVersion', 'iam:ListPolicyVersions', 'iam:ListEntitiesForPolicy'];
/**
 * ListPolicies has no resource type (IAM grants it on `*` only): the reconciler
 * lists the account's customer-managed policies to tell a name taken under
 * another path from its own policy that IAM does not show yet. Names only.
 */
export const IAM_LIST_ACTIONS = ['iam:ListPolicies'];
export const IAM_WRITE_ACTIONS = ['iam:CreatePolicy', 'iam:CreatePolicyVersion', 'iam:DeletePolicyVersion', 'iam:DeletePolicy', 'iam:TagPolicy', 'iam:UntagPolicy'];

export interface ManagedPolicyGrantProps {
  /** IPS_APP_NAME: the value of the owner tag every write needs. */
  readonly appName: string;
  readonly managedPathPrefix: string;
}

/** The policies under the managed path in the account of the stack, and nothing else there. */
export function managedPoliciesArn(managedPathPrefix: string): string {
  return `arn:${Aws.PARTITION}:iam::${Aws.ACCOUNT_ID}:policy${managedPathPrefix}*`;
}

/**
 * The reconciler's reads alone: what a shadow worker (IPS_MODE=shadow) needs
 * to plan each record against IAM, and no write. The shadow role holds them in
 * its own account, the audit role of a target account that trusts a shadow
 * (target-account.ts) there.
 */
export function managedPolicyReads(managedPathPrefix: string): PolicyStatement[] {
  return [
    new PolicyStatement({ sid: 'ReadManagedPolicies', actions: IAM_READ_ACTIONS, resources: [managedPoliciesArn(managedPathPrefix)] }),
    new PolicyStatement({ sid: 'ListPolicyNames', actions: IAM_LIST_ACTIONS, resources: ['*'] }),
  ];
}

/** Why cdk-nag's findings in managedPolicyReads are what they must be. */
export function acknowledgeManagedPolicyReads(scope: IConstruct): void {
  acknowledge(scope, {
    'AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:iam::<AWS::AccountId>:policy<ManagedPathPrefix>*]':
      'A shadow reads every policy under the managed path, whose names come from the event stream: the wildcard is the path, a prefix ending in "/" that the ManagedPathPrefix parameter cannot set to "/". Reads only.',
    'AwsSolutions-IAM5[Resource::*]':
      'iam:ListPolicies has no resource type (IAM grants it on "*" only). It returns names and metadata, never documents, and is called only to tell a name taken under another path from a policy under the managed path.',
  });
}

/** Grants the reconciler's IAM calls on the managed path, every write fenced by the owner tag, and acknowledges what cdk-nag finds in them. */
export function grantManagedPolicies(role: InlinePolicyRole, props: ManagedPolicyGrantProps, options: { readOnly?: boolean } = {}): void {
  const app = props.appName;
  const managedPolicies = managedPoliciesArn(props.managedPathPrefix);
  const ownerIs = (key: 'aws:RequestTag' | 'aws:ResourceTag') => ({ [`${key}/${OWNER_TAG}`]: app });
  const iamStatement = (sid: string, actions: string[], conditions?: Record<string, Record<string, unknown>>) =>
    role.addToPrincipalPolicy(new PolicyStatement({ sid, actions, resources: [managedPolicies], ...(conditions ? { conditions } : {}) }));

  for (const statement of managedPolicyReads(props.managedPathPrefix)) role.addToPrincipalPolicy(statement);
  if (options.readOnly === true) {
    acknowledgeManagedPolicyReads(role);
    return;
  }
  // The reconciler always creates with its owner tag; a policy without it would be one it refuses to manage later.
  iamStatement('CreateOwnedPolicies', ['iam:CreatePolicy'], { StringEquals: ownerIs('aws:RequestTag') });
  // Tags of a policy it owns (it syncs them), never handing the policy to another owner.
  iamStatement('TagOwnedPolicies', ['iam:TagPolicy'], { StringEquals: ownerIs('aws:ResourceTag'), StringEqualsIfExists: ownerIs('aws:RequestTag') });
  // CreatePolicy with tags is also authorized as iam:TagPolicy, on a policy
  // that has no tags yet. IAM has no condition key telling that apart from
  // TagPolicy on an existing untagged policy (no counterpart of
  // ec2:CreateAction), so this is the narrowest grant that keeps creation
  // working: no owner tag on the policy yet, and the request sets it to this
  // application. A policy under the path that carries another owner's tag
  // can no longer be taken over; an untagged one still can (README,
  // "Deploy to AWS", says what bounds that).
  iamStatement('TagOnCreate', ['iam:TagPolicy'], { Null: { [`aws:ResourceTag/${OWNER_TAG}`]: 'true' }, StringEquals: ownerIs('aws:RequestTag') });
  // Under the path but not tagged by this application: someone else's, left alone even if the code were wrong.
  iamStatement('ChangeOwnedPolicies', ['iam:CreatePolicyVersion', 'iam:DeletePolicyVersion', 'iam:DeletePolicy'], { StringEquals: ownerIs('aws:ResourceTag') });
  // Removing the owner tag would hand the policy over; the reconciler never does.
  iamStatement('UntagOwnedPolicies', ['iam:UntagPolicy'], {
    StringEquals: ownerIs('aws:ResourceTag'),
    'ForAllValues:StringNotEquals': { 'aws:TagKeys': [OWNER_TAG] },
  });

  acknowledgeManagedPolicyGrant(role);
}

function acknowledgeManagedPolicyGrant(role: InlinePolicyRole): void {
  acknowledge(role, {
    'AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:iam::<AWS::AccountId>:policy<ManagedPathPrefix>*]':
      'The worker manages every policy under its managed path, whose names come from the event stream: the wildcard is the path, a prefix ending in "/" that the ManagedPathPrefix parameter cannot set to "/". Every write on it also needs the managed-by tag of this application.',
    'AwsSolutions-IAM5[Resource::*]':
      'iam:ListPolicies has no resource type (IAM grants it on "*" only). It returns names and metadata, never documents, and the reconciler calls it only to tell a name taken under another path from its own policy.',
  });
}
