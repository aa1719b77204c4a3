// One stream, many AWS accounts: the roles the workers assume in each target
// account, and the main stack's side of them.
//
// In each target account (target-stack.ts, deployed there or through a
// StackSet):
//   TargetRole       named TargetRoleName (default iam-policy-stream-target),
//                    trusted by the worker role alone, holding the worker's own
//                    IAM grant on the managed path (managed-policy-grant.ts)
//   TargetAuditRole  named TargetAuditRoleName, trusted by the drift audit's
//                    role alone, holding the audit's IAM reads (drift-audit.ts);
//                    with ShadowRoleArn set, trusted by the shadow's role too
//                    and holding a shadow's IAM reads (TargetAuditShadowPolicy)
// Both ask for the ExternalId when TargetExternalId is set.
//
// In the main stack (stack.ts): the worker role may assume TargetRole, and
// the audit role TargetAuditRole, in the accounts of TargetAccounts and no
// others; both tasks are told the accounts, their role's name and the
// ExternalId (IPS_TARGET_ACCOUNTS, IPS_TARGET_ROLE_NAME,
// IPS_TARGET_EXTERNAL_ID). The workers build the ARN
// arn:<partition>:iam::<account>:role/<IPS_TARGET_ROLE_NAME>, so the roles sit
// under the path "/".
import { Aws, CfnCondition, Fn, Stack } from 'aws-cdk-lib';
import { ArnPrincipal, PolicyStatement } from 'aws-cdk-lib/aws-iam';
import type { CfnRole, IRole, Policy } from 'aws-cdk-lib/aws-iam';
import { Construct } from 'constructs';
import { acknowledge, keepElementId, keepLogicalId } from './cfn.js';
import { grantDriftReads } from './drift-audit.js';
import { conditionalPolicy, InlinePolicyRole } from './inline-policy-role.js';
import { acknowledgeManagedPolicyReads, grantManagedPolicies, managedPolicyReads } from './managed-policy-grant.js';

/** The target-account stack's name, and the id of its template in the cloud assembly. */
export const TARGET_STACK_NAME = 'iam-policy-stream-target';
// The roles' default names are the ones the configuration falls back on (IPS_TARGET_ROLE_NAME: the write role, or a shadow's read-only one).
export { DEFAULT_TARGET_AUDIT_ROLE_NAME, DEFAULT_TARGET_ROLE_NAME } from '../../src/config/config.js';

export interface TargetAccountRolesProps {
  /** IPS_APP_NAME of the deployment that manages the account: the owner tag's value. */
  readonly appName: string;
  readonly managedPathPrefix: string;
  readonly roleName: string;
  readonly auditRoleName: string;
  /** The main stack's worker role (its output TaskRoleArn). */
  readonly workerRoleArn: string;
  /** The main stack's drift audit role (its output DriftAuditRoleArn). */
  readonly driftAuditRoleArn: string;
  /** The main stack's shadow role (its output ShadowRoleArn); empty: the audit role trusts no shadow. */
  readonly shadowRoleArn: string;
  /** Empty: no ExternalId asked for. */
  readonly externalId: string;
}

/** The two roles of a target account, and the shadow's reads of the audit role when a shadow is trusted. */
export class TargetAccountRoles extends Construct {
  readonly role: InlinePolicyRole;
  readonly auditRole: InlinePolicyRole;
  readonly shadowReads: Policy;

  constructor(scope: Construct, id: string, props: TargetAccountRolesProps) {
    super(scope, id);
    const hasExternalId = keepElementId(new CfnCondition(this, 'HasTargetExternalId', { expression: Fn.conditionNot(Fn.conditionEquals(props.externalId, '')) }));
    const hasShadowRole = keepElementId(new CfnCondition(this, 'HasShadowRole', { expression: Fn.conditionNot(Fn.conditionEquals(props.shadowRoleArn, '')) }));
    /** A role that the one principal may assume, with the ExternalId when one is set. */
    const trustedRole = (roleId: string, options: { roleName: string; trusted: string; policyName: string; description: string }) => {
      const role = keepLogicalId(
        new InlinePolicyRole(this, roleId, {
          roleName: options.roleName,
          description: options.description,
          assumedBy: new ArnPrincipal(options.trusted),
          policyName: options.policyName,
        }),
      );
      // The trust has one statement; its condition exists only with an ExternalId (a statement-level Fn::If CDK's documents cannot say).
      (role.node.defaultChild as CfnRole).addPropertyOverride(
        'AssumeRolePolicyDocument.Statement.0.Condition',
        Fn.conditionIf(hasExternalId.logicalId, { StringEquals: { 'sts:ExternalId': props.externalId } }, Aws.NO_VALUE),
      );
      return role;
    };

    this.role = trustedRole('TargetRole', {
      roleName: props.roleName,
      trusted: props.workerRoleArn,
      policyName: 'worker',
      description: 'iam-policy-stream worker in this account: IAM policies under the managed path tagged managed-by its application; assumed by the worker role alone.',
    });
    grantManagedPolicies(this.role, { appName: props.appName, managedPathPrefix: props.managedPathPrefix });

    this.auditRole = trustedRole('TargetAuditRole', {
      roleName: props.auditRoleName,
      trusted: props.driftAuditRoleArn,
      policyName: 'drift-audit',
      description:
        'iam-policy-stream drift audit in this account: reads the IAM policies under the managed path; no IAM write. Assumed by the drift audit role, and by a shadow role when ShadowRoleArn names one.',
    });
    grantDriftReads(this.auditRole, props.managedPathPrefix);

    // A shadow plans in this account through the audit role, the read-only one, never the target role:
    // trusted beside the drift audit, with the reads of its planning step, only once its role is named.
    (this.auditRole.node.defaultChild as CfnRole).addPropertyOverride(
      'AssumeRolePolicyDocument.Statement.0.Principal.AWS',
      Fn.conditionIf(hasShadowRole.logicalId, [props.driftAuditRoleArn, props.shadowRoleArn], props.driftAuditRoleArn),
    );
    this.shadowReads = conditionalPolicy(this, 'TargetAuditShadowPolicy', {
      policyName: 'shadow',
      role: this.auditRole,
      condition: hasShadowRole,
      statements: managedPolicyReads(props.managedPathPrefix),
    });
    acknowledgeManagedPolicyReads(this.shadowReads);
  }
}

// --- the main stack's side ------------------------------------------------------

export interface TargetAccessProps {
  /** The role that assumes: the worker's task role, or the drift audit's. */
  readonly role: IRole;
  readonly policyName: string;
  /** TargetAccounts (a list parameter); `condition` holds only when it names an account. */
  readonly accounts: string[];
  readonly condition: CfnCondition;
  /** The name of the role to assume in each of them (a parameter). */
  readonly roleName: string;
}

/**
 * Lets `role` assume the role named `roleName` in the accounts of `accounts`,
 * and no other role: a policy of its own, created only when there are target
 * accounts. The policy's logical ID is `id`.
 *
 * The ARNs cannot be spelled out one per account: CloudFormation has no
 * intrinsic that maps over a list parameter (Fn::Join and Fn::Sub take only
 * literal delimiters and templates), so the role name and partition cannot be
 * put around each account. The resource is the role's name in any account,
 * and aws:ResourceAccount, which STS sets to the account of the role being
 * assumed, limits it to the listed ones: the same set of roles.
 *
 * Beside the role rather than in it, like the other conditional grants: a
 * worker that starts before the policy is attached (or before IAM shows it)
 * is refused AssumeRole for a while, which holds that account's records only.
 */
export function assumeTargetRoles(scope: Construct, id: string, props: TargetAccessProps): Policy {
  const policy = conditionalPolicy(scope, id, {
    policyName: props.policyName,
    role: props.role,
    condition: props.condition,
    statements: [
      new PolicyStatement({
        sid: 'AssumeTargetRoles',
        actions: ['sts:AssumeRole'],
        resources: [`arn:${Aws.PARTITION}:iam::*:role/${props.roleName}`],
        conditions: { StringEquals: { 'aws:ResourceAccount': props.accounts } },
      }),
    ],
  });
  const parameter = (Stack.of(scope).resolve(props.roleName) as { Ref?: string }).Ref ?? props.roleName;
  acknowledge(policy, {
    [`AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:iam::*:role/<${parameter}>]`]: `The account of the ARN is a wildcard only because CloudFormation cannot build one ARN per entry of the TargetAccounts list; the aws:ResourceAccount condition limits the grant to those accounts, and the name is the one ${parameter} gives, so the role can assume exactly that role in each target account.`,
  });
  return policy;
}

/** What the worker or the audit is told about the target accounts; empty values read as unset (src/config/config.ts). */
export function targetAccountEnvironment(props: { accounts: string[]; roleName: string; externalId: string }): Record<string, string> {
  return {
    IPS_TARGET_ACCOUNTS: Fn.join(',', props.accounts),
    IPS_TARGET_ROLE_NAME: props.roleName,
    IPS_TARGET_EXTERNAL_ID: props.externalId,
  };
}
