// The workers: the ECS Fargate task that runs the KCL MultiLangDaemon (with
// the CloudWatch agent beside it), their security group, the service that
// keeps them running, and CPU target tracking that moves their number between
// MinWorkers and MaxWorkers.
import { CfnScalableTarget, CfnScalingPolicy } from 'aws-cdk-lib/aws-applicationautoscaling';
import type { ITable } from 'aws-cdk-lib/aws-dynamodb';
import { Peer, Port, SecurityGroup } from 'aws-cdk-lib/aws-ec2';
import type { IVpc } from 'aws-cdk-lib/aws-ec2';
import type { CfnService, FargateTaskDefinition, ICluster } from 'aws-cdk-lib/aws-ecs';
import type { IRole } from 'aws-cdk-lib/aws-iam';
import type { IStream } from 'aws-cdk-lib/aws-kinesis';
import type { ILogGroup } from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import { keepElementId, keepLogicalId } from './cfn.js';
import type { NetworkParameters, WorkerParameters } from './parameters.js';
import { workerEnvironment, workerFargateService, workerTaskDefinition } from './worker-task.js';

export { CONTAINER_NAME, CONTAINER_USER } from './worker-task.js';

export interface WorkerServiceProps extends WorkerParameters {
  readonly appName: string;
  readonly managedPathPrefix: string;
  readonly metricsNamespace: string;
  readonly network: NetworkParameters;
  readonly stream: IStream;
  readonly ledger: ITable;
  readonly eventArchive: ITable;
  readonly deadLetters: ITable;
  readonly leases: ITable;
  readonly cluster: ICluster;
  readonly vpc: IVpc;
  /** Pulls the image and writes the log streams; its managed policy needs no update. */
  readonly executionRole: IRole;
  readonly taskRole: IRole;
  readonly logGroup: ILogGroup;
  readonly metricsLogGroup: ILogGroup;
  /** IPS_TARGET_ACCOUNTS, IPS_TARGET_ROLE_NAME, IPS_TARGET_EXTERNAL_ID (target-account.ts). */
  readonly targetAccountEnvironment: Record<string, string>;
}

export class WorkerService extends Construct {
  readonly taskDefinition: FargateTaskDefinition;
  readonly service: CfnService;
  /** No inbound, HTTPS out to the AWS APIs; the scheduled drift audit runs with it too. */
  readonly securityGroup: SecurityGroup;

  constructor(scope: Construct, id: string, props: WorkerServiceProps) {
    super(scope, id);
    const app = props.appName;
    const environment = workerEnvironment({
      appName: app,
      managedPathPrefix: props.managedPathPrefix,
      metricsNamespace: props.metricsNamespace,
      metricsLogGroup: props.metricsLogGroup,
      streamName: props.stream.streamName,
      tables: { ledger: props.ledger.tableName, eventArchive: props.eventArchive.tableName, deadLetters: props.deadLetters.tableName, leases: props.leases.tableName },
      workers: props,
      targetAccountEnvironment: props.targetAccountEnvironment,
    });
    const taskDefinition = keepLogicalId(
      workerTaskDefinition(this, 'TaskDefinition', { family: app, workers: props, executionRole: props.executionRole, taskRole: props.taskRole, logGroup: props.logGroup, environment }),
    );
    this.taskDefinition = taskDefinition;

    this.securityGroup = keepLogicalId(
      new SecurityGroup(this, 'WorkerSecurityGroup', {
        vpc: props.vpc,
        description: 'iam-policy-stream workers: no inbound, HTTPS out to AWS APIs',
        allowAllOutbound: false,
      }),
    );
    this.securityGroup.addEgressRule(Peer.anyIpv4(), Port.tcp(443), 'AWS service endpoints');

    this.service = keepElementId(
      workerFargateService(this, 'Service', {
        serviceName: app,
        cluster: props.cluster,
        taskDefinition,
        desiredCount: props.desiredWorkers,
        network: props.network,
        securityGroup: this.securityGroup,
      }),
    );

    // Application Auto Scaling's service-linked role does the scaling (no role of our own).
    const scaling = keepElementId(
      new CfnScalableTarget(this, 'WorkerScaling', {
        serviceNamespace: 'ecs',
        scalableDimension: 'ecs:service:DesiredCount',
        resourceId: `service/${props.cluster.clusterName}/${this.service.attrName}`,
        minCapacity: props.minWorkers,
        maxCapacity: props.maxWorkers,
      }),
    );
    keepElementId(
      new CfnScalingPolicy(this, 'WorkerCpuTracking', {
        policyName: `${app}-cpu`,
        policyType: 'TargetTrackingScaling',
        scalingTargetId: scaling.ref,
        targetTrackingScalingPolicyConfiguration: {
          targetValue: props.cpuTargetPercent,
          predefinedMetricSpecification: { predefinedMetricType: 'ECSServiceAverageCPUUtilization' },
          // Scaling in moves leases, which costs a failover period per moved shard: do it slowly.
          scaleInCooldown: 600,
          scaleOutCooldown: 120,
        },
      }),
    );
  }
}
