// `ips drift --json` on a schedule, as an ECS task of the worker's image,
// with the CloudWatch agent beside it so the audit's drift_found reaches
// CloudWatch. Its role reads the ledger and IAM under the managed path; it
// cannot write IAM (--repair is an operator's decision, never scheduled).
import { Aws } from 'aws-cdk-lib';
import type { ITable } from 'aws-cdk-lib/aws-dynamodb';
import type { ISecurityGroup } from 'aws-cdk-lib/aws-ec2';
import { ContainerImage, CpuArchitecture, FargateTaskDefinition, LogDriver, OperatingSystemFamily } from 'aws-cdk-lib/aws-ecs';
import type { ICluster } from 'aws-cdk-lib/aws-ecs';
import { CfnRule } from 'aws-cdk-lib/aws-events';
import { PolicyStatement, ServicePrincipal } from 'aws-cdk-lib/aws-iam';
import type { IRole } from 'aws-cdk-lib/aws-iam';
import type { ILogGroup } from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import { acknowledge, keepElementId, keepLogicalId } from './cfn.js';
import { InlinePolicyRole } from './inline-policy-role.js';
import { managedPoliciesArn } from './managed-policy-grant.js';
import { addCloudWatchAgent, metricsAgentStatement } from './operations.js';
import type { DriftScheduleParameters } from './parameters.js';
import { ecsTasksPrincipal } from './platform.js';

/** The drift audit's container and what it runs: an audit, never --repair. */
export const DRIFT_CONTAINER_NAME = 'drift-audit';
export const DRIFT_COMMAND = ['node', 'dist/ops/cli.js', 'drift', '--json'];
/** The audit's ledger calls: DescribeTable (the progress estimate), Scan (every entry), GetItem (an entry re-read). */
export const DRIFT_LEDGER_ACTIONS = ['dynamodb:DescribeTable', 'dynamodb:GetItem', 'dynamodb:Scan'];
/** The audit's IAM reads under the managed path (src/ops/drift-audit.ts): a policy's tags, the one thing the account listing lacks. */
export const DRIFT_IAM_READ_ACTIONS = ['iam:ListPolicyTags'];
/**
 * The audit's account-wide listing (src/iam/policy-details.ts):
 * every customer-managed policy with its versions' documents, a page per
 * 1,000. IAM grants it on "*" only.
 */
export const DRIFT_IAM_LIST_ACTIONS = ['iam:GetAccountAuthorizationDetails'];

/**
 * The audit's IAM reads: the tags of the policies under the managed path, and
 * the account's listing. The drift audit's role holds them in its own
 * account, the audit role of each target account (target-account.ts) there.
 */
export function grantDriftReads(role: InlinePolicyRole, managedPathPrefix: string): void {
  role.addToPrincipalPolicy(new PolicyStatement({ sid: 'ReadManagedPolicies', actions: DRIFT_IAM_READ_ACTIONS, resources: [managedPoliciesArn(managedPathPrefix)] }));
  role.addToPrincipalPolicy(new PolicyStatement({ sid: 'ListAccountPolicies', actions: DRIFT_IAM_LIST_ACTIONS, resources: ['*'] }));
  acknowledge(role, {
    'AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:iam::<AWS::AccountId>:policy<ManagedPathPrefix>*]':
      'The audit reads the tags of policies under the managed path (their names come from the event stream): the wildcard is the path, a prefix ending in "/" that ManagedPathPrefix cannot set to "/". Reads only: ListPolicyTags.',
    'AwsSolutions-IAM5[Resource::*]':
      'iam:GetAccountAuthorizationDetails has no resource type (IAM grants it on "*" only). It returns every customer-managed policy with its documents, a page per 1,000, so the audit costs a call per 1,000 policies rather than three per policy against the account-wide rate limit the workers share. It is read-only; the audit filters it to the managed path before it looks at a document, and keeps only the path of the others (to tell a policy moved to another path from a missing one).',
  });
}

export interface DriftAuditScheduleProps extends DriftScheduleParameters {
  readonly appName: string;
  readonly imageUri: string;
  /** The image's non-root user, as the worker runs it. */
  readonly user: string;
  readonly agentImage: string;
  readonly cpuArchitecture: string;
  readonly cluster: ICluster;
  readonly executionRole: IRole;
  readonly logGroup: ILogGroup;
  readonly metricsLogGroup: ILogGroup;
  readonly environment: Record<string, string>;
  readonly ledger: ITable;
  readonly managedPathPrefix: string;
  readonly subnets: string[];
  readonly securityGroup: ISecurityGroup;
  readonly assignPublicIp: string;
}

export class DriftAuditSchedule extends Construct {
  readonly taskDefinition: FargateTaskDefinition;
  readonly role: InlinePolicyRole;
  readonly rule: CfnRule;

  constructor(scope: Construct, id: string, props: DriftAuditScheduleProps) {
    super(scope, id);
    const role = keepLogicalId(
      new InlinePolicyRole(this, 'DriftAuditRole', {
        description: 'iam-policy-stream scheduled drift audit: reads the ledger and the IAM policies under the managed path; no IAM write.',
        assumedBy: ecsTasksPrincipal(),
        policyName: 'drift-audit',
      }),
    );
    grantDriftReads(role, props.managedPathPrefix);
    role.grantAs('ReadLedger', () => props.ledger.grant(role, ...DRIFT_LEDGER_ACTIONS));
    role.addToPrincipalPolicy(metricsAgentStatement(props.metricsLogGroup));

    const taskDefinition = keepLogicalId(
      new FargateTaskDefinition(this, 'DriftAuditTaskDefinition', {
        family: `${props.appName}-drift-audit`,
        cpu: 512,
        memoryLimitMiB: 1024,
        runtimePlatform: { operatingSystemFamily: OperatingSystemFamily.LINUX, cpuArchitecture: CpuArchitecture.of(props.cpuArchitecture) },
        executionRole: props.executionRole,
        taskRole: role,
      }),
    );
    const audit = taskDefinition.addContainer(DRIFT_CONTAINER_NAME, {
      containerName: DRIFT_CONTAINER_NAME,
      image: ContainerImage.fromRegistry(props.imageUri),
      essential: true,
      user: props.user,
      readonlyRootFilesystem: true,
      entryPoint: [DRIFT_COMMAND[0]!],
      command: DRIFT_COMMAND.slice(1),
      environment: props.environment,
      logging: LogDriver.awsLogs({ logGroup: props.logGroup, streamPrefix: DRIFT_CONTAINER_NAME }),
    });
    addCloudWatchAgent(taskDefinition, { image: props.agentImage, logGroup: props.logGroup, dependent: audit });
    acknowledge(taskDefinition, {
      'AwsSolutions-ECS2':
        "The environment holds names (application, ledger table, managed path, metrics namespace and log group, target accounts and role name), the agent's endpoint and its EMF-only configuration, all of them in the stack already, and the target roles' ExternalId, which AWS treats as an identifier against the confused deputy rather than a secret; no secret is passed, and the audit gets its credentials from its task role.",
    });

    // EventBridge starts the task with a role of its own: RunTask of this task definition in this cluster, and passing its two roles to ECS.
    const eventsRole = keepLogicalId(
      new InlinePolicyRole(this, 'DriftAuditScheduleRole', {
        description: 'EventBridge starts the scheduled drift audit task.',
        policyName: 'run-drift-audit',
        assumedBy: new ServicePrincipal('events.amazonaws.com').withConditions({ StringEquals: { 'aws:SourceAccount': Aws.ACCOUNT_ID } }),
      }),
    );
    eventsRole.addToPrincipalPolicy(
      new PolicyStatement({
        sid: 'RunDriftAudit',
        actions: ['ecs:RunTask'],
        resources: [taskDefinition.taskDefinitionArn],
        conditions: { ArnEquals: { 'ecs:cluster': props.cluster.clusterArn } },
      }),
    );
    eventsRole.addToPrincipalPolicy(
      new PolicyStatement({
        sid: 'PassDriftAuditRoles',
        actions: ['iam:PassRole'],
        resources: [role.roleArn, props.executionRole.roleArn],
        conditions: { StringEquals: { 'iam:PassedToService': 'ecs-tasks.amazonaws.com' } },
      }),
    );
    this.rule = keepElementId(
      new CfnRule(this, 'DriftAuditRule', {
        description: `${props.appName}: ips drift --json (audit only, never --repair)`,
        scheduleExpression: props.schedule,
        state: props.state,
        targets: [
          {
            id: 'DriftAudit',
            arn: props.cluster.clusterArn,
            roleArn: eventsRole.roleArn,
            ecsParameters: {
              taskDefinitionArn: taskDefinition.taskDefinitionArn,
              taskCount: 1,
              launchType: 'FARGATE',
              platformVersion: 'LATEST',
              networkConfiguration: {
                awsVpcConfiguration: { subnets: props.subnets, securityGroups: [props.securityGroup.securityGroupId], assignPublicIp: props.assignPublicIp },
              },
            },
          },
        ],
      }),
    );
    this.taskDefinition = taskDefinition;
    this.role = role;
  }
}
