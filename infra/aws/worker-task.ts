// The task definition of a worker: the KCL MultiLangDaemon of the image, as a
// non-root user on a read-only root file system, with the CloudWatch agent
// beside it. The workers' service (workers.ts) and the shadow's (shadow.ts)
// run the same task; only the environment, the role and the family differ.
import { Aws, Duration, Token } from 'aws-cdk-lib';
import type { ISecurityGroup } from 'aws-cdk-lib/aws-ec2';
import { CfnService, ContainerImage, CpuArchitecture, FargateTaskDefinition, LinuxParameters, LogDriver, OperatingSystemFamily } from 'aws-cdk-lib/aws-ecs';
import type { CfnTaskDefinition, ICluster } from 'aws-cdk-lib/aws-ecs';
import type { IRole } from 'aws-cdk-lib/aws-iam';
import type { ILogGroup } from 'aws-cdk-lib/aws-logs';
import type { Construct } from 'constructs';
import { acknowledge } from './cfn.js';
import { addCloudWatchAgent, metricsEnvironment } from './operations.js';
import type { NetworkParameters, WorkerParameters } from './parameters.js';

/** The container's name in the task definition. */
export const CONTAINER_NAME = 'worker';
/** Numeric, so the platform can tell it is not root without reading /etc/passwd (the Dockerfile's USER). */
export const CONTAINER_USER = '10001:10001';

/** The tables a worker's environment names (IPS_*_TABLE). */
export interface WorkerTables {
  readonly ledger: string;
  readonly eventArchive: string;
  readonly deadLetters: string;
  readonly leases: string;
}

export interface WorkerEnvironmentProps {
  readonly appName: string;
  readonly managedPathPrefix: string;
  readonly metricsNamespace: string;
  readonly metricsLogGroup: ILogGroup;
  readonly streamName: string;
  readonly tables: WorkerTables;
  readonly workers: WorkerParameters;
  /** IPS_TARGET_ACCOUNTS, IPS_TARGET_ROLE_NAME, IPS_TARGET_EXTERNAL_ID (target-account.ts). */
  readonly targetAccountEnvironment: Record<string, string>;
}

/** What a worker is told: its names, its settings, the agent's route for its metrics. */
export function workerEnvironment(props: WorkerEnvironmentProps): Record<string, string> {
  const { workers, tables } = props;
  return {
    AWS_REGION: Aws.REGION,
    IPS_APP_NAME: props.appName,
    IPS_STREAM_NAME: props.streamName,
    IPS_LEDGER_TABLE: tables.ledger,
    IPS_EVENT_ARCHIVE_TABLE: tables.eventArchive,
    IPS_DEAD_LETTER_TABLE: tables.deadLetters,
    IPS_LEASE_TABLE: tables.leases,
    IPS_MANAGED_PATH_PREFIX: props.managedPathPrefix,
    IPS_LOG_LEVEL: workers.logLevel,
    IPS_KCL_METRICS_LEVEL: workers.kclMetricsLevel,
    IPS_KCL_RETRIEVAL_MODE: workers.retrievalMode,
    IPS_KCL_INITIAL_POSITION: workers.initialPosition,
    // The record processors' metrics go to the agent sidecar (docs/operations.md, "Metrics").
    ...metricsEnvironment({ namespace: props.metricsNamespace, metricsLogGroup: props.metricsLogGroup }),
    ...props.targetAccountEnvironment,
  };
}

export interface WorkerTaskProps {
  readonly family: string;
  readonly workers: WorkerParameters;
  /** Pulls the image and writes the log streams; its managed policy needs no update. */
  readonly executionRole: IRole;
  readonly taskRole: IRole;
  readonly logGroup: ILogGroup;
  readonly environment: Record<string, string>;
}

/** The worker's task definition, as `id` in `scope`. */
export function workerTaskDefinition(scope: Construct, id: string, props: WorkerTaskProps): FargateTaskDefinition {
  const { workers } = props;
  const taskDefinition = new FargateTaskDefinition(scope, id, {
    family: props.family,
    cpu: Token.asNumber(workers.taskCpu),
    memoryLimitMiB: Token.asNumber(workers.taskMemory),
    runtimePlatform: { operatingSystemFamily: OperatingSystemFamily.LINUX, cpuArchitecture: CpuArchitecture.of(workers.cpuArchitecture) },
    executionRole: props.executionRole,
    taskRole: props.taskRole,
    // The launcher writes the rendered daemon properties and the JVM its
    // perf data there; the rest of the file system stays read-only.
    volumes: [{ name: 'tmp' }],
  });
  const container = taskDefinition.addContainer(CONTAINER_NAME, {
    containerName: CONTAINER_NAME,
    image: ContainerImage.fromRegistry(workers.imageUri),
    essential: true,
    user: CONTAINER_USER,
    readonlyRootFilesystem: true,
    // The launcher is PID 1 and does not reap orphans of the daemon's record processors.
    linuxParameters: new LinuxParameters(scope, `${id}LinuxParameters`, { initProcessEnabled: true }),
    // Room for the daemon's graceful shutdown: children checkpoint what is settled.
    stopTimeout: Duration.seconds(60),
    environment: props.environment,
    logging: LogDriver.awsLogs({ logGroup: props.logGroup, streamPrefix: CONTAINER_NAME }),
  });
  container.addMountPoints({ sourceVolume: 'tmp', containerPath: '/tmp', readOnly: false });
  addCloudWatchAgent(taskDefinition, { image: workers.agentImage, logGroup: props.logGroup, dependent: container });
  // LinuxParameters renders an empty Capabilities object; without it the container definition is the one
  // stacks from the earlier template run, and their update starts no new task definition revision.
  (taskDefinition.node.defaultChild as CfnTaskDefinition).addPropertyDeletionOverride('ContainerDefinitions.0.LinuxParameters.Capabilities');
  acknowledge(taskDefinition, {
    'AwsSolutions-ECS2':
      "The environment holds names (stream, tables, application, managed path, metrics namespace and log group, target accounts and role name), log, KCL and metrics settings, the agent's endpoint and its EMF-only configuration, all of them in the stack already, and the target roles' ExternalId, which AWS treats as an identifier against the confused deputy rather than a secret; no secret is passed, and the worker and the agent get their credentials from the task role.",
  });
  return taskDefinition;
}

export interface WorkerFargateServiceProps {
  readonly serviceName: string;
  readonly cluster: ICluster;
  readonly taskDefinition: FargateTaskDefinition;
  readonly desiredCount: number;
  readonly network: NetworkParameters;
  readonly securityGroup: ISecurityGroup;
}

/**
 * The service that keeps the tasks running, as the L1 resource: its subnets
 * are a parameter list whose length is not known when the template is made,
 * which the L2 service's subnet selection needs.
 */
export function workerFargateService(scope: Construct, id: string, props: WorkerFargateServiceProps): CfnService {
  return new CfnService(scope, id, {
    serviceName: props.serviceName,
    cluster: props.cluster.clusterName,
    taskDefinition: props.taskDefinition.taskDefinitionArn,
    launchType: 'FARGATE',
    desiredCount: props.desiredCount,
    // New workers take leases before old ones let go; the ledger's claims make the overlap safe.
    deploymentConfiguration: { minimumHealthyPercent: 100, maximumPercent: 200, deploymentCircuitBreaker: { enable: true, rollback: true } },
    propagateTags: 'SERVICE',
    enableEcsManagedTags: true,
    networkConfiguration: {
      awsvpcConfiguration: { subnets: props.network.subnetIds, securityGroups: [props.securityGroup.securityGroupId], assignPublicIp: props.network.assignPublicIp },
    },
  });
}
