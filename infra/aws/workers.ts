// The workers: the ECS Fargate task that runs the KCL MultiLangDaemon (with
// the CloudWatch agent beside it), their security group, the service that
// keeps them running, and CPU target tracking that moves their number between
// MinWorkers and MaxWorkers.
import { Aws, Duration, Token } from 'aws-cdk-lib';
import { CfnScalableTarget, CfnScalingPolicy } from 'aws-cdk-lib/aws-applicationautoscaling';
import type { ITable } from 'aws-cdk-lib/aws-dynamodb';
import { Peer, Port, SecurityGroup } from 'aws-cdk-lib/aws-ec2';
import type { IVpc } from 'aws-cdk-lib/aws-ec2';
import { CfnService, ContainerImage, CpuArchitecture, FargateTaskDefinition, LinuxParameters, LogDriver, OperatingSystemFamily } from 'aws-cdk-lib/aws-ecs';
import type { CfnTaskDefinition, ICluster } from 'aws-cdk-lib/aws-ecs';
import type { IRole } from 'aws-cdk-lib/aws-iam';
import type { IStream } from 'aws-cdk-lib/aws-kinesis';
import type { ILogGroup } from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import { acknowledge, keepElementId, keepLogicalId } from './cfn.js';
import { addCloudWatchAgent, metricsEnvironment } from './operations.js';
import type { NetworkParameters, WorkerParameters } from './parameters.js';

/** The container's name in the task definition. */
export const CONTAINER_NAME = 'worker';
/** Numeric, so the platform can tell it is not root without reading /etc/passwd (the Dockerfile's USER). */
export const CONTAINER_USER = '10001:10001';

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
    const taskDefinition = keepLogicalId(
      new FargateTaskDefinition(this, 'TaskDefinition', {
        family: app,
        cpu: Token.asNumber(props.taskCpu),
        memoryLimitMiB: Token.asNumber(props.taskMemory),
        runtimePlatform: { operatingSystemFamily: OperatingSystemFamily.LINUX, cpuArchitecture: CpuArchitecture.of(props.cpuArchitecture) },
        executionRole: props.executionRole,
        taskRole: props.taskRole,
        // The launcher writes the rendered daemon properties and the JVM its
        // perf data there; the rest of the file system stays read-only.
        volumes: [{ name: 'tmp' }],
      }),
    );
    this.taskDefinition = taskDefinition;
    const environment: Record<string, string> = {
      AWS_REGION: Aws.REGION,
      IPS_APP_NAME: app,
      IPS_STREAM_NAME: props.stream.streamName,
      IPS_LEDGER_TABLE: props.ledger.tableName,
      IPS_EVENT_ARCHIVE_TABLE: props.eventArchive.tableName,
      IPS_DEAD_LETTER_TABLE: props.deadLetters.tableName,
      IPS_LEASE_TABLE: props.leases.tableName,
      IPS_MANAGED_PATH_PREFIX: props.managedPathPrefix,
      IPS_LOG_LEVEL: props.logLevel,
      IPS_KCL_METRICS_LEVEL: props.kclMetricsLevel,
      IPS_KCL_RETRIEVAL_MODE: props.retrievalMode,
      IPS_KCL_INITIAL_POSITION: props.initialPosition,
      // The record processors' metrics go to the agent sidecar (docs/operations.md, "Metrics").
      ...metricsEnvironment({ namespace: props.metricsNamespace, metricsLogGroup: props.metricsLogGroup }),
      ...props.targetAccountEnvironment,
    };
    const container = taskDefinition.addContainer(CONTAINER_NAME, {
      containerName: CONTAINER_NAME,
      image: ContainerImage.fromRegistry(props.imageUri),
      essential: true,
      user: CONTAINER_USER,
      readonlyRootFilesystem: true,
      // The launcher is PID 1 and does not reap orphans of the daemon's record processors.
      linuxParameters: new LinuxParameters(this, 'LinuxParameters', { initProcessEnabled: true }),
      // Room for the daemon's graceful shutdown: children checkpoint what is settled.
      stopTimeout: Duration.seconds(60),
      environment,
      logging: LogDriver.awsLogs({ logGroup: props.logGroup, streamPrefix: CONTAINER_NAME }),
    });
    container.addMountPoints({ sourceVolume: 'tmp', containerPath: '/tmp', readOnly: false });
    addCloudWatchAgent(taskDefinition, { image: props.agentImage, logGroup: props.logGroup, dependent: container });
    // LinuxParameters renders an empty Capabilities object; without it the container definition is the one
    // stacks from the earlier template run, and their update starts no new task definition revision.
    (taskDefinition.node.defaultChild as CfnTaskDefinition).addPropertyDeletionOverride('ContainerDefinitions.0.LinuxParameters.Capabilities');
    acknowledge(taskDefinition, {
      'AwsSolutions-ECS2':
        "The environment holds names (stream, tables, application, managed path, metrics namespace and log group, target accounts and role name), log, KCL and metrics settings, the agent's endpoint and its EMF-only configuration, all of them in the stack already, and the target roles' ExternalId, which AWS treats as an identifier against the confused deputy rather than a secret; no secret is passed, and the worker and the agent get their credentials from the task role.",
    });

    this.securityGroup = keepLogicalId(
      new SecurityGroup(this, 'WorkerSecurityGroup', {
        vpc: props.vpc,
        description: 'iam-policy-stream workers: no inbound, HTTPS out to AWS APIs',
        allowAllOutbound: false,
      }),
    );
    this.securityGroup.addEgressRule(Peer.anyIpv4(), Port.tcp(443), 'AWS service endpoints');

    // The service is the L1 resource: its subnets are a parameter list whose
    // length is not known when the template is made, which the L2 service's
    // subnet selection needs.
    this.service = keepElementId(
      new CfnService(this, 'Service', {
        serviceName: app,
        cluster: props.cluster.clusterName,
        taskDefinition: taskDefinition.taskDefinitionArn,
        launchType: 'FARGATE',
        desiredCount: props.desiredWorkers,
        // New workers take leases before old ones let go; the ledger's claims make the overlap safe.
        deploymentConfiguration: { minimumHealthyPercent: 100, maximumPercent: 200, deploymentCircuitBreaker: { enable: true, rollback: true } },
        propagateTags: 'SERVICE',
        enableEcsManagedTags: true,
        networkConfiguration: {
          awsvpcConfiguration: { subnets: props.network.subnetIds, securityGroups: [this.securityGroup.securityGroupId], assignPublicIp: props.network.assignPublicIp },
        },
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
