// The stack of a target account: the role the workers assume there and the
// drift audit's read-only role (target-account.ts), which a shadow may share
// (ShadowRoleArn), nothing else.
//
// Deploy it in each account the workers manage, before the account goes into
// the main stack's TargetAccounts: with `cdk deploy` or CloudFormation in that
// account, or to many accounts at once as a CloudFormation StackSet (the
// template has no assets, no lookups and no bootstrap parameter, and every
// account gets the same parameter values). IAM is global: one stack instance
// per account, in one region.
import { BootstraplessSynthesizer, CfnOutput, CfnParameter, Stack } from 'aws-cdk-lib';
import type { StackProps } from 'aws-cdk-lib';
import type { Construct } from 'constructs';
import { declareApplicationName, declareManagedPathPrefix, declareTargetRoleParameters } from './parameters.js';
import { TARGET_STACK_NAME, TargetAccountRoles } from './target-account.js';

/** A role of the main stack: a role ARN in a 12-digit account, never a wildcard, an account root or a session. */
const ROLE_ARN_PATTERN = '^arn:aws[a-z-]*:iam::\\d{12}:role/[\\w+=,.@/-]{1,512}$';

export class TargetAccountStack extends Stack {
  readonly roles: TargetAccountRoles;

  constructor(scope: Construct, id: string, props: StackProps = {}) {
    super(scope, id, {
      stackName: TARGET_STACK_NAME,
      description: "iam-policy-stream target account: the role the workers assume to manage the IAM policies under the managed path here, and the drift audit's read-only role.",
      // Deployable as it is, with plain CloudFormation or as a StackSet: no CDK bootstrap stack in each account.
      synthesizer: new BootstraplessSynthesizer(),
      analyticsReporting: false,
      ...props,
    });
    const appName = declareApplicationName(this);
    const managedPathPrefix = declareManagedPathPrefix(this);
    const roles = declareTargetRoleParameters(this);
    const workerRoleArn = new CfnParameter(this, 'WorkerRoleArn', {
      type: 'String',
      allowedPattern: ROLE_ARN_PATTERN,
      description: "The workers' task role, the only principal the target role trusts: the main stack's output TaskRoleArn.",
    });
    const driftAuditRoleArn = new CfnParameter(this, 'DriftAuditRoleArn', {
      type: 'String',
      allowedPattern: ROLE_ARN_PATTERN,
      description: "The drift audit's task role, the only principal the audit role trusts: the main stack's output DriftAuditRoleArn.",
    });
    const shadowRoleArn = new CfnParameter(this, 'ShadowRoleArn', {
      type: 'String',
      default: '',
      allowedPattern: `^$|${ROLE_ARN_PATTERN}`,
      description:
        "The shadow's task role (the main stack's output ShadowRoleArn, with ShadowWorkers above 0): the audit role trusts it too, and lets it read what a shadow plans with. Empty: no shadow reads this account.",
    });
    this.roles = new TargetAccountRoles(this, 'Roles', {
      appName: appName.valueAsString,
      managedPathPrefix: managedPathPrefix.valueAsString,
      ...roles,
      workerRoleArn: workerRoleArn.valueAsString,
      driftAuditRoleArn: driftAuditRoleArn.valueAsString,
      shadowRoleArn: shadowRoleArn.valueAsString,
    });
    new CfnOutput(this, 'TargetRoleArnOutput', { description: 'The role the workers assume here.', value: this.roles.role.roleArn }).overrideLogicalId('TargetRoleArn');
    new CfnOutput(this, 'TargetAuditRoleArnOutput', {
      description: 'The role the drift audit (and a shadow, with ShadowRoleArn) assumes here.',
      value: this.roles.auditRole.roleArn,
    }).overrideLogicalId('TargetAuditRoleArn');
  }
}
