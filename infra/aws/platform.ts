// What the workers and the scheduled drift audit share: the log groups, the
// ECS cluster in the given VPC, and the execution role that pulls the image
// and writes the logs.
import { Aws, Fn, RemovalPolicy } from 'aws-cdk-lib';
import { Vpc } from 'aws-cdk-lib/aws-ec2';
import type { IVpc } from 'aws-cdk-lib/aws-ec2';
import { Cluster, ContainerInsights } from 'aws-cdk-lib/aws-ecs';
import { ManagedPolicy, Role, ServicePrincipal } from 'aws-cdk-lib/aws-iam';
import type { PrincipalBase } from 'aws-cdk-lib/aws-iam';
import { LogGroup } from 'aws-cdk-lib/aws-logs';
import type { RetentionDays } from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import { acknowledge, keepLogicalId } from './cfn.js';

/** ECS tasks of this account, and only those, may assume a task role (confused deputy). */
export function ecsTasksPrincipal(): PrincipalBase {
  return new ServicePrincipal('ecs-tasks.amazonaws.com').withConditions({
    StringEquals: { 'aws:SourceAccount': Aws.ACCOUNT_ID },
    ArnLike: { 'aws:SourceArn': `arn:${Aws.PARTITION}:ecs:${Aws.REGION}:${Aws.ACCOUNT_ID}:*` },
  });
}

export interface WorkerPlatformProps {
  readonly appName: string;
  readonly vpcId: string;
  /** One of CloudWatch Logs' retention values, in days. */
  readonly logRetentionDays: number;
}

export class WorkerPlatform extends Construct {
  /** The containers' own log lines. */
  readonly logGroup: LogGroup;
  /** The EMF documents the CloudWatch agent writes, from which CloudWatch extracts the metrics. */
  readonly metricsLogGroup: LogGroup;
  readonly cluster: Cluster;
  readonly executionRole: Role;
  /** Imported by id: only the id is known (a parameter). */
  readonly vpc: IVpc;

  constructor(scope: Construct, id: string, props: WorkerPlatformProps) {
    super(scope, id);
    const app = props.appName;
    this.logGroup = keepLogicalId(
      new LogGroup(this, 'LogGroup', {
        logGroupName: `/ecs/${app}`,
        retention: props.logRetentionDays as RetentionDays,
        removalPolicy: RemovalPolicy.DESTROY,
      }),
    );
    // Named as src/metrics/emf.ts names it by default (`<app>-metrics`).
    this.metricsLogGroup = keepLogicalId(
      new LogGroup(this, 'MetricsLogGroup', {
        logGroupName: `${app}-metrics`,
        retention: props.logRetentionDays as RetentionDays,
        removalPolicy: RemovalPolicy.DESTROY,
      }),
    );
    // Only the VPC's id is known (a parameter); nothing here looks it up.
    const vpc = Vpc.fromVpcAttributes(this, 'WorkerVpc', { vpcId: props.vpcId, availabilityZones: Fn.getAzs() });
    acknowledge(vpc, {
      '@aws-cdk/aws-ec2:vpcAttributeIsListTokenavailabilityZones':
        'Only the VPC id is used, by the security group and the cluster. No subnet is selected from this object: the service takes its subnets from the SubnetIds parameter.',
    });
    this.vpc = vpc;
    this.cluster = keepLogicalId(new Cluster(this, 'Cluster', { vpc, clusterName: app, containerInsightsV2: ContainerInsights.ENABLED }));

    // Pulls the image and writes the log stream; the worker itself never gets these rights.
    this.executionRole = keepLogicalId(
      new Role(this, 'TaskExecutionRole', {
        assumedBy: ecsTasksPrincipal(),
        managedPolicies: [ManagedPolicy.fromAwsManagedPolicyName('service-role/AmazonECSTaskExecutionRolePolicy')],
      }),
    );
    acknowledge(this.executionRole, {
      'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy]':
        'The execution role is used by the ECS agent only (pull the image, create the log stream); its credentials never reach the container. ImageUri may name any repository or registry, so the ECR pull cannot be narrowed to one repository ARN without another parameter; AWS maintains this policy for exactly this role.',
    });
  }
}
