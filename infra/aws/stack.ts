// The AWS deployment as a CDK stack: the Kinesis stream, the ledger,
// dead-letter and KCL lease tables, the ECS Fargate workers with CPU
// target-tracking autoscaling, and the worker's least-privilege task role.
//
// Everything a deployment varies is a CloudFormation parameter, so the
// synthesized template (`npm run synth`) deploys as it is with plain
// CloudFormation, and `cdk deploy --parameters ...` takes the same names. The
// table key schemas, the table names, the owner tag and the defaults come from
// the code that reads them (src/), and the grants are checked against the
// code's calls by test/unit/deploy.test.ts.
//
// Logical IDs are kept as they were in the hand-written template this replaces,
// so a stack deployed from it updates in place: the tables and the stream are
// named and retained, and a new logical ID would mean a second resource of the
// same name.
import { readFileSync } from 'node:fs';
import type { CreateTableCommandInput } from '@aws-sdk/client-dynamodb';
import { Aws, BootstraplessSynthesizer, CfnCondition, CfnOutput, CfnParameter, Duration, Fn, RemovalPolicy, Stack, Token, Validations } from 'aws-cdk-lib';
import type { CfnOutputProps, CfnResource, StackProps } from 'aws-cdk-lib';
import { CfnScalableTarget, CfnScalingPolicy } from 'aws-cdk-lib/aws-applicationautoscaling';
import { AttributeType, BillingMode, Table, TableEncryption } from 'aws-cdk-lib/aws-dynamodb';
import type { Attribute, ITable } from 'aws-cdk-lib/aws-dynamodb';
import { Peer, Port, SecurityGroup, Vpc } from 'aws-cdk-lib/aws-ec2';
import { CfnService, CfnTaskDefinition, Cluster, ContainerImage, ContainerInsights, CpuArchitecture, FargateTaskDefinition, LinuxParameters, LogDriver, OperatingSystemFamily } from 'aws-cdk-lib/aws-ecs';
import { ManagedPolicy, Policy, PolicyStatement, Role, ServicePrincipal } from 'aws-cdk-lib/aws-iam';
import type { CfnPolicy } from 'aws-cdk-lib/aws-iam';
import { Stream, StreamEncryption } from 'aws-cdk-lib/aws-kinesis';
import type { CfnStream } from 'aws-cdk-lib/aws-kinesis';
import { LogGroup } from 'aws-cdk-lib/aws-logs';
import type { RetentionDays } from 'aws-cdk-lib/aws-logs';
import type { Construct, IConstruct } from 'constructs';
import { loadConfig } from '../../src/config/config.js';
import { deadLetterTableDefinition } from '../../src/deadletter/table.js';
import { OWNER_TAG } from '../../src/contract/ownership.js';
import { LEDGER_TTL_ATTRIBUTE, ledgerTableDefinition } from '../../src/ledger/table.js';
import { InlinePolicyRole } from './inline-policy-role.js';
import { DEFAULT_AGENT_IMAGE, addAlarmsAndDashboard, addCloudWatchAgent, addDriftAudit, metricsAgentStatement, metricsEnvironment } from './operations.js';

/** The stack's name, and the id of its template in the cloud assembly. */
export const STACK_NAME = 'iam-policy-stream';
/** The container's name in the task definition. */
export const CONTAINER_NAME = 'worker';
/** Numeric, so the platform can tell it is not root without reading /etc/passwd (the Dockerfile's USER). */
export const CONTAINER_USER = '10001:10001';
/** Partition key of the KCL lease table, as the KCL itself creates it. */
export const LEASE_KEY = 'leaseKey';
export { OWNER_TAG };

/** IAM calls of src/iam/reconciler.ts, split by whether they change anything. */
export const IAM_READ_ACTIONS = ['iam:GetPolicy', 'iam:GetPolicyVersion', 'iam:ListPolicyVersions', 'iam:ListEntitiesForPolicy'];
/**
 * ListPolicies has no resource type (IAM grants it on `*` only): the reconciler
 * lists the account's customer-managed policies to tell a name taken under
 * another path from its own policy that IAM does not show yet. Names only.
 */
export const IAM_LIST_ACTIONS = ['iam:ListPolicies'];
export const IAM_WRITE_ACTIONS = [
  'iam:CreatePolicy',
  'iam:CreatePolicyVersion',
  'iam:DeletePolicyVersion',
  'iam:DeletePolicy',
  'iam:TagPolicy',
  'iam:UntagPolicy',
];
/**
 * What the record processor does to its own tables: the ledger's
 * (src/ledger/dynamodb-ledger.ts) reads and conditional updates, the dead-letter
 * store's `store` (src/deadletter/dead-letter-store.ts) conditional put. Named
 * actions rather than grantReadWriteData, which would add BatchGetItem, Query,
 * Scan, ConditionCheckItem, BatchWriteItem, DeleteItem and DescribeTable: none
 * of them is called, and DeleteItem or a Scan of the ledger is exactly what a
 * compromised worker should not be able to do.
 */
export const LEDGER_ACTIONS = ['dynamodb:BatchGetItem', 'dynamodb:BatchWriteItem', 'dynamodb:GetItem', 'dynamodb:UpdateItem'];
/**
 * BatchWriteItem puts and deletes whole items: the ledger sends it only to
 * archive eventIds (src/ledger/dynamodb-ledger.ts, archiveEvents), so it is
 * granted on those keys alone (dynamodb:LeadingKeys), never on a policy's entry.
 */
export const LEDGER_BATCH_WRITE_KEYS = '#event#*';
export const DEAD_LETTER_ACTIONS = ['dynamodb:PutItem'];
/** The KCL's lease bookkeeping on a table that already exists (this stack creates it). */
export const LEASE_ACTIONS_KCL2 = [
  'dynamodb:DescribeTable',
  'dynamodb:GetItem',
  'dynamodb:PutItem',
  'dynamodb:UpdateItem',
  'dynamodb:DeleteItem',
  'dynamodb:Scan',
];
/** KCL 3 adds an index to the lease table and queries it. */
export const LEASE_ACTIONS_KCL3 = [...LEASE_ACTIONS_KCL2, 'dynamodb:UpdateTable', 'dynamodb:Query'];
/** KCL 3 also creates its coordinator and worker-metrics tables itself. */
export const KCL3_TABLE_ACTIONS = [...LEASE_ACTIONS_KCL3, 'dynamodb:CreateTable'];
export const KCL3_TABLE_SUFFIXES = ['-CoordinatorState', '-WorkerMetricStats'];
/** The daemon's reads (DescribeStream*, GetShardIterator, GetRecords) and the processor's ListShards (src/stream/shard-tree.ts). */
export const STREAM_READ_ACTIONS = [
  'kinesis:DescribeStream',
  'kinesis:DescribeStreamSummary',
  'kinesis:ListShards',
  'kinesis:GetShardIterator',
  'kinesis:GetRecords',
];

export function kclVersionFromPom(pomPath = new URL('../../kcl/pom.xml', import.meta.url)): string {
  const match = /<kcl\.version>\s*([^<\s]+)\s*<\/kcl\.version>/.exec(readFileSync(pomPath, 'utf8'));
  if (!match?.[1]) throw new Error(`no <kcl.version> in ${String(pomPath)}`);
  return match[1];
}

export interface IamPolicyStreamStackProps extends StackProps {
  /**
   * KCL version the image runs; decides which coordination tables the daemon
   * uses. Defaults to the one kcl/pom.xml pins, so the grants follow upgrades.
   */
  kclVersion?: string;
}

/** The application's settings as src/config/config.ts reads them with nothing set. */
const DEFAULTS = loadConfig({});

/**
 * What the configuration appends to the application name to name a table
 * (`<app>-ledger`, `<app>-dead-letters`, `<app>`), read from the configuration
 * itself so the stack's table names are the ones the workers look for.
 */
function tableSuffix(pick: (config: ReturnType<typeof loadConfig>) => string): string {
  const marker = 'app-name-marker';
  const name = pick(loadConfig({ IPS_APP_NAME: marker }));
  if (!name.startsWith(marker)) throw new Error(`table name ${name} does not derive from IPS_APP_NAME`);
  return name.slice(marker.length);
}

const ATTRIBUTE_TYPES: Record<string, AttributeType> = { S: AttributeType.STRING, N: AttributeType.NUMBER, B: AttributeType.BINARY };

/** The key schema of a table as the code creates it locally (src/*\/table.ts). */
function keysOf(definition: CreateTableCommandInput): { partitionKey: Attribute; sortKey?: Attribute } {
  const attribute = (keyType: string): Attribute | undefined => {
    const name = definition.KeySchema?.find((key) => key.KeyType === keyType)?.AttributeName;
    if (name === undefined) return undefined;
    const type = ATTRIBUTE_TYPES[definition.AttributeDefinitions?.find((item) => item.AttributeName === name)?.AttributeType ?? ''];
    if (!type) throw new Error(`${definition.TableName}: no attribute type for key ${name}`);
    return { name, type };
  };
  const partitionKey = attribute('HASH');
  if (!partitionKey) throw new Error(`${definition.TableName}: no partition key`);
  const sortKey = attribute('RANGE');
  return sortKey ? { partitionKey, sortKey } : { partitionKey };
}

/** Gives the construct's CloudFormation resource a fixed logical ID (the one the hand-written template used). */
function logicalId<T extends IConstruct>(construct: T, id: string): T {
  (construct.node.defaultChild as CfnResource).overrideLogicalId(id);
  return construct;
}

/** Acknowledges cdk-nag findings on a construct; every one says why. */
function acknowledge(scope: IConstruct, findings: Record<string, string>): void {
  for (const [id, reason] of Object.entries(findings)) Validations.of(scope).acknowledge({ id, reason });
}

export class IamPolicyStreamStack extends Stack {
  readonly kclVersion: string;
  readonly taskRole: InlinePolicyRole;

  constructor(scope: Construct, id: string, props: IamPolicyStreamStackProps = {}) {
    const { kclVersion: pinned, ...stackProps } = props;
    const kclVersion = pinned ?? kclVersionFromPom();
    const kclMajor = Number(kclVersion.split('.')[0]);
    if (!Number.isInteger(kclMajor)) throw new Error(`cannot read KCL version ${JSON.stringify(kclVersion)}`);
    super(scope, id, {
      stackName: STACK_NAME,
      description: `iam-policy-stream: Kinesis stream, ledger, dead-letter and lease tables, and the ECS Fargate workers (KCL ${kclVersion} MultiLangDaemon) with a least-privilege task role.`,
      // No CDK bootstrap stack needed, for `cdk deploy` or for the template on
      // its own: the stack has no assets, and no BootstrapVersion parameter.
      synthesizer: new BootstraplessSynthesizer(),
      analyticsReporting: false,
      ...stackProps,
    });
    this.kclVersion = kclVersion;

    // --- parameters -------------------------------------------------------
    const appName = new CfnParameter(this, 'ApplicationName', {
      type: 'String',
      default: DEFAULTS.appName,
      // It names the KCL lease table, the ECS cluster and service and the CloudWatch namespace.
      allowedPattern: '^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$',
      description: 'KCL application name (IPS_APP_NAME): names the lease table, the other tables, the managed-by tag value and the metrics namespace.',
    });
    const streamName = new CfnParameter(this, 'StreamName', {
      type: 'String',
      default: DEFAULTS.streamName,
      allowedPattern: '^[a-zA-Z0-9_.-]{1,128}$',
      description: 'Kinesis stream to create and consume.',
    });
    const streamMode = new CfnParameter(this, 'StreamMode', {
      type: 'String',
      default: 'PROVISIONED',
      allowedValues: ['PROVISIONED', 'ON_DEMAND'],
      description: 'PROVISIONED uses ShardCount; ON_DEMAND lets Kinesis size the stream.',
    });
    const shardCount = new CfnParameter(this, 'ShardCount', {
      type: 'Number',
      default: 4,
      minValue: 1,
      description: 'Shards when StreamMode is PROVISIONED. More workers than shards sit idle.',
    });
    const retentionHours = new CfnParameter(this, 'RetentionHours', {
      type: 'Number',
      default: 168,
      minValue: 24,
      maxValue: 8760,
      description: 'How long records stay replayable in the stream.',
    });
    const managedPathPrefix = new CfnParameter(this, 'ManagedPathPrefix', {
      type: 'String',
      default: DEFAULTS.managedPathPrefix,
      // Same rule as IPS_MANAGED_PATH_PREFIX in src/config/config.ts: never the whole account ("/").
      allowedPattern: '^/([\\x21-\\x2e\\x30-\\x7e]+/)+$',
      maxLength: 512,
      description: 'IAM path the worker owns; it may write policies under this path only.',
    });
    const imageUri = new CfnParameter(this, 'ImageUri', {
      type: 'String',
      description: 'Worker image (built from the Dockerfile), e.g. 123456789012.dkr.ecr.eu-west-1.amazonaws.com/iam-policy-stream:1.0.0',
    });
    const desiredWorkers = new CfnParameter(this, 'DesiredWorkers', {
      type: 'Number',
      default: 2,
      minValue: 0,
      description: 'Workers (ECS tasks) at deployment; autoscaling moves it between MinWorkers and MaxWorkers.',
    });
    const minWorkers = new CfnParameter(this, 'MinWorkers', { type: 'Number', default: 1, minValue: 0, description: 'Fewest workers autoscaling keeps.' });
    const maxWorkers = new CfnParameter(this, 'MaxWorkers', {
      type: 'Number',
      default: 4,
      minValue: 1,
      description: 'Most workers autoscaling starts; useful up to the shard count.',
    });
    const cpuTargetPercent = new CfnParameter(this, 'CpuTargetPercent', {
      type: 'Number',
      default: 60,
      minValue: 10,
      maxValue: 90,
      description: 'Average service CPU that target tracking aims for.',
    });
    const taskCpu = new CfnParameter(this, 'TaskCpu', {
      type: 'String',
      default: '1024',
      allowedValues: ['512', '1024', '2048', '4096'],
      description: 'Fargate CPU units per worker (the JVM plus one Node process per shard lease).',
    });
    const taskMemory = new CfnParameter(this, 'TaskMemory', {
      type: 'String',
      default: '2048',
      allowedValues: ['1024', '2048', '3072', '4096', '8192'],
      description: 'Fargate memory (MiB) per worker; must be valid for TaskCpu.',
    });
    const cpuArchitecture = new CfnParameter(this, 'CpuArchitecture', {
      type: 'String',
      default: 'X86_64',
      allowedValues: ['X86_64', 'ARM64'],
      description: 'Must match the image.',
    });
    const vpcId = new CfnParameter(this, 'VpcId', { type: 'AWS::EC2::VPC::Id', description: 'VPC of the workers.' });
    const subnetIds = new CfnParameter(this, 'SubnetIds', {
      type: 'List<AWS::EC2::Subnet::Id>',
      description: 'Subnets with a route to the Kinesis, DynamoDB, IAM, STS, CloudWatch, ECR and Logs endpoints (NAT or VPC endpoints).',
    });
    const assignPublicIp = new CfnParameter(this, 'AssignPublicIp', {
      type: 'String',
      default: 'DISABLED',
      allowedValues: ['DISABLED', 'ENABLED'],
      description: 'ENABLED only for public subnets without NAT.',
    });
    const kclMetricsLevel = new CfnParameter(this, 'KclMetricsLevel', {
      type: 'String',
      default: 'SUMMARY',
      allowedValues: ['NONE', 'SUMMARY', 'DETAILED'],
      description: 'KCL CloudWatch metrics (IPS_KCL_METRICS_LEVEL); NONE also drops the PutMetricData grant.',
    });
    const retrievalMode = new CfnParameter(this, 'RetrievalMode', {
      type: 'String',
      default: 'POLLING',
      allowedValues: ['POLLING', 'FANOUT'],
      description: 'FANOUT uses enhanced fan-out (a registered consumer per application).',
    });
    const initialPosition = new CfnParameter(this, 'InitialPosition', {
      type: 'String',
      default: 'TRIM_HORIZON',
      allowedValues: ['TRIM_HORIZON', 'LATEST'],
      description: 'Where a shard without a lease starts.',
    });
    const logLevel = new CfnParameter(this, 'LogLevel', {
      type: 'String',
      default: DEFAULTS.logLevel,
      allowedValues: ['fatal', 'error', 'warn', 'info', 'debug', 'trace'],
      description: 'Record processor log level (IPS_LOG_LEVEL).',
    });
    const logRetentionDays = new CfnParameter(this, 'LogRetentionDays', {
      type: 'Number',
      // A string like the allowed values (CloudFormation passes every parameter value as a string).
      default: '30',
      allowedValues: ['1', '3', '5', '7', '14', '30', '60', '90', '120', '150', '180', '365', '400', '545', '731', '1096', '1827', '2192', '2557', '2922', '3288', '3653'],
      description: 'Retention of the worker log group (every record outcome is logged there).',
    });
    const metricsNamespace = new CfnParameter(this, 'MetricsNamespace', {
      type: 'String',
      default: DEFAULTS.metricsNamespace,
      // CloudWatch's namespace characters, without the quote the alarms' Metrics Insights queries put around it.
      allowedPattern: '^[A-Za-z0-9_./#:-]{1,255}$',
      description: 'CloudWatch namespace of the workers\' own metrics (IPS_METRICS_NAMESPACE); the alarms and the dashboard read them there.',
    });
    const agentImage = new CfnParameter(this, 'CloudWatchAgentImage', {
      type: 'String',
      default: DEFAULT_AGENT_IMAGE,
      description: 'CloudWatch agent image of the metrics sidecar; a copy in a private ECR repository (pull-through cache) for subnets without a route to public.ecr.aws.',
    });
    const app = appName.valueAsString;

    const isProvisioned = new CfnCondition(this, 'IsProvisioned', { expression: Fn.conditionEquals(streamMode.valueAsString, 'PROVISIONED') });
    const useFanOut = new CfnCondition(this, 'UseFanOut', { expression: Fn.conditionEquals(retrievalMode.valueAsString, 'FANOUT') });
    const publishKclMetrics = new CfnCondition(this, 'PublishKclMetrics', {
      expression: Fn.conditionNot(Fn.conditionEquals(kclMetricsLevel.valueAsString, 'NONE')),
    });

    // --- the stream -------------------------------------------------------
    const stream = logicalId(
      new Stream(this, 'Stream', {
        streamName: streamName.valueAsString,
        retentionPeriod: Duration.hours(retentionHours.valueAsNumber),
        // The AWS managed key (alias/aws/kinesis): consumers need no kms:Decrypt grant of their own.
        encryption: StreamEncryption.MANAGED,
        // Retained records are what a replay reads.
        removalPolicy: RemovalPolicy.RETAIN,
      }),
      'Stream',
    );
    const cfnStream = stream.node.defaultChild as CfnStream;
    cfnStream.streamModeDetails = { streamMode: streamMode.valueAsString };
    cfnStream.shardCount = Token.asNumber(Fn.conditionIf(isProvisioned.logicalId, shardCount.valueAsNumber, Aws.NO_VALUE));

    // --- the tables -------------------------------------------------------
    // The ledger is what makes replays harmless and the dead letters are the
    // only copy of rejected input once the stream's retention has passed:
    // neither goes away with the stack, nor does the lease table (checkpoints).
    const table = (id: string, tableName: string, keys: ReturnType<typeof keysOf> & { timeToLiveAttribute?: string }) =>
      logicalId(
        new Table(this, id, {
          tableName,
          ...keys,
          billingMode: BillingMode.PAY_PER_REQUEST,
          pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
          encryption: TableEncryption.AWS_MANAGED,
          deletionProtection: true,
          removalPolicy: RemovalPolicy.RETAIN,
        }),
        id,
      );
    // Archived eventIds (ledger/dynamodb-ledger.ts) expire: DynamoDB removes them after `expiresAt`.
    const ledger = table('LedgerTable', `${app}${tableSuffix((config) => config.ledgerTable)}`, { ...keysOf(ledgerTableDefinition('ledger')), timeToLiveAttribute: LEDGER_TTL_ATTRIBUTE });
    const deadLetters = table('DeadLetterTable', `${app}${tableSuffix((config) => config.deadLetterTable)}`, keysOf(deadLetterTableDefinition('dead-letters')));
    // The KCL would create this table on first start; owning it here gives it
    // recovery, encryption and a grant that needs no dynamodb:CreateTable.
    const leases = table('LeaseTable', `${app}${tableSuffix((config) => config.leaseTable)}`, {
      partitionKey: { name: LEASE_KEY, type: AttributeType.STRING },
    });

    // --- logs and cluster -------------------------------------------------
    const logGroup = logicalId(
      new LogGroup(this, 'LogGroup', {
        logGroupName: `/ecs/${app}`,
        retention: logRetentionDays.valueAsNumber as RetentionDays,
        removalPolicy: RemovalPolicy.DESTROY,
      }),
      'LogGroup',
    );
    // The EMF documents the CloudWatch agent writes, from which CloudWatch extracts the metrics.
    // Named as src/metrics/emf.ts names it by default (`<app>-metrics`).
    const metricsLogGroup = logicalId(
      new LogGroup(this, 'MetricsLogGroup', {
        logGroupName: `${app}-metrics`,
        retention: logRetentionDays.valueAsNumber as RetentionDays,
        removalPolicy: RemovalPolicy.DESTROY,
      }),
      'MetricsLogGroup',
    );
    // Only the VPC's id is known (a parameter); nothing here looks it up.
    const vpc = Vpc.fromVpcAttributes(this, 'WorkerVpc', { vpcId: vpcId.valueAsString, availabilityZones: Fn.getAzs() });
    acknowledge(vpc, {
      '@aws-cdk/aws-ec2:vpcAttributeIsListTokenavailabilityZones':
        'Only the VPC id is used, by the security group and the cluster. No subnet is selected from this object: the service takes its subnets from the SubnetIds parameter.',
    });
    const cluster = logicalId(new Cluster(this, 'Cluster', { vpc, clusterName: app, containerInsightsV2: ContainerInsights.ENABLED }), 'Cluster');

    // --- roles ------------------------------------------------------------
    // Only tasks of this account may assume them (confused deputy).
    const ecsTasks = () =>
      new ServicePrincipal('ecs-tasks.amazonaws.com').withConditions({
        StringEquals: { 'aws:SourceAccount': Aws.ACCOUNT_ID },
        ArnLike: { 'aws:SourceArn': `arn:${Aws.PARTITION}:ecs:${Aws.REGION}:${Aws.ACCOUNT_ID}:*` },
      });
    // Pulls the image and writes the log stream; the worker itself never gets these rights.
    const executionRole = logicalId(
      new Role(this, 'TaskExecutionRole', {
        assumedBy: ecsTasks(),
        managedPolicies: [ManagedPolicy.fromAwsManagedPolicyName('service-role/AmazonECSTaskExecutionRolePolicy')],
      }),
      'TaskExecutionRole',
    );
    acknowledge(executionRole, {
      'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy]':
        'The execution role is used by the ECS agent only (pull the image, create the log stream); its credentials never reach the container. ImageUri may name any repository or registry, so the ECR pull cannot be narrowed to one repository ARN without another parameter; AWS maintains this policy for exactly this role.',
    });

    const taskRole = logicalId(
      new InlinePolicyRole(this, 'TaskRole', {
        description: 'iam-policy-stream worker: IAM policies under the managed path, its own tables and stream.',
        assumedBy: ecsTasks(),
        policyName: 'worker',
      }),
      'TaskRole',
    );
    this.taskRole = taskRole;
    this.grantWorker(taskRole, { app, managedPathPrefix: managedPathPrefix.valueAsString, ledger, deadLetters, leases, stream, kclMajor });
    // The CloudWatch agent sidecar runs with the task role (its ECS setup puts its grant there): it writes the metrics log group.
    taskRole.addToPrincipalPolicy(metricsAgentStatement(metricsLogGroup));

    // Grants that exist only in some configurations: policies of their own,
    // attached to the task role under the parameter's condition (CDK's policy
    // documents have no statement-level Fn::If, and as policies cdk-nag and the
    // tests see them). Created beside the role rather than in it: the KCL
    // retries its fan-out registration and metrics until they are attached.
    const conditionalPolicy = (id: string, policyName: string, condition: CfnCondition, statements: PolicyStatement[]) => {
      const policy = logicalId(new Policy(this, id, { policyName, roles: [taskRole], statements }), id);
      (policy.node.defaultChild as CfnPolicy).cfnOptions.condition = condition;
      return policy;
    };
    const fanOut = conditionalPolicy('FanOutPolicy', 'fan-out', useFanOut, [
      new PolicyStatement({ sid: 'RegisterFanOutConsumer', actions: ['kinesis:RegisterStreamConsumer'], resources: [stream.streamArn] }),
      // The KCL names its consumer after the application.
      new PolicyStatement({
        sid: 'ReadFanOut',
        actions: ['kinesis:DescribeStreamConsumer', 'kinesis:SubscribeToShard'],
        resources: [`${stream.streamArn}/consumer/${app}:*`],
      }),
    ]);
    acknowledge(fanOut, {
      [`AwsSolutions-IAM5[Resource::<Stream.Arn>/consumer/<ApplicationName>:*]`]:
        "A consumer's ARN ends in its creation timestamp, which exists only once the KCL has registered it; the wildcard covers that timestamp alone, under this stream and the consumer named after the application.",
    });
    const metrics = conditionalPolicy('KclMetricsPolicy', 'kcl-metrics', publishKclMetrics, [
      new PolicyStatement({
        sid: 'KclMetrics',
        actions: ['cloudwatch:PutMetricData'],
        // PutMetricData has no resource ARN; the namespace (the KCL uses the application name) is the fence.
        resources: ['*'],
        conditions: { StringEquals: { 'cloudwatch:namespace': app } },
      }),
    ]);
    acknowledge(metrics, {
      'AwsSolutions-IAM5[Resource::*]':
        'cloudwatch:PutMetricData has no resource type: IAM grants it on "*" only. The cloudwatch:namespace condition limits it to the namespace the KCL publishes under (the application name).',
    });

    // --- the service ------------------------------------------------------
    const taskDefinition = logicalId(
      new FargateTaskDefinition(this, 'TaskDefinition', {
        family: app,
        cpu: Token.asNumber(taskCpu.valueAsString),
        memoryLimitMiB: Token.asNumber(taskMemory.valueAsString),
        runtimePlatform: { operatingSystemFamily: OperatingSystemFamily.LINUX, cpuArchitecture: CpuArchitecture.of(cpuArchitecture.valueAsString) },
        // The managed policy already lets it write the log stream: no extra policy resource.
        executionRole: executionRole.withoutPolicyUpdates(),
        taskRole,
        // The launcher writes the rendered daemon properties and the JVM its
        // perf data there; the rest of the file system stays read-only.
        volumes: [{ name: 'tmp' }],
      }),
      'TaskDefinition',
    );
    const environment: Record<string, string> = {
      AWS_REGION: Aws.REGION,
      IPS_APP_NAME: app,
      IPS_STREAM_NAME: stream.streamName,
      IPS_LEDGER_TABLE: ledger.tableName,
      IPS_DEAD_LETTER_TABLE: deadLetters.tableName,
      IPS_LEASE_TABLE: leases.tableName,
      IPS_MANAGED_PATH_PREFIX: managedPathPrefix.valueAsString,
      IPS_LOG_LEVEL: logLevel.valueAsString,
      IPS_KCL_METRICS_LEVEL: kclMetricsLevel.valueAsString,
      IPS_KCL_RETRIEVAL_MODE: retrievalMode.valueAsString,
      IPS_KCL_INITIAL_POSITION: initialPosition.valueAsString,
      // The record processors' metrics go to the agent sidecar (docs/operations.md, "Metrics").
      ...metricsEnvironment({ namespace: metricsNamespace.valueAsString, metricsLogGroup }),
    };
    const container = taskDefinition.addContainer(CONTAINER_NAME, {
      containerName: CONTAINER_NAME,
      image: ContainerImage.fromRegistry(imageUri.valueAsString),
      essential: true,
      user: CONTAINER_USER,
      readonlyRootFilesystem: true,
      // The launcher is PID 1 and does not reap orphans of the daemon's record processors.
      linuxParameters: new LinuxParameters(this, 'LinuxParameters', { initProcessEnabled: true }),
      // Room for the daemon's graceful shutdown: children checkpoint what is settled.
      stopTimeout: Duration.seconds(60),
      environment,
      logging: LogDriver.awsLogs({ logGroup, streamPrefix: CONTAINER_NAME }),
    });
    container.addMountPoints({ sourceVolume: 'tmp', containerPath: '/tmp', readOnly: false });
    addCloudWatchAgent(taskDefinition, { image: agentImage.valueAsString, logGroup, dependent: container });
    // LinuxParameters renders an empty Capabilities object; without it the container definition is the one
    // stacks from the earlier template run, and their update starts no new task definition revision.
    (taskDefinition.node.defaultChild as CfnTaskDefinition).addPropertyDeletionOverride('ContainerDefinitions.0.LinuxParameters.Capabilities');
    acknowledge(taskDefinition, {
      'AwsSolutions-ECS2':
        "The environment holds names (stream, tables, application, managed path, metrics namespace and log group), log, KCL and metrics settings, the agent's endpoint and its EMF-only configuration, all of them in the stack already; no secret is passed, and the worker and the agent get their credentials from the task role.",
    });

    const securityGroup = logicalId(
      new SecurityGroup(this, 'WorkerSecurityGroup', {
        vpc,
        description: 'iam-policy-stream workers: no inbound, HTTPS out to AWS APIs',
        allowAllOutbound: false,
      }),
      'WorkerSecurityGroup',
    );
    securityGroup.addEgressRule(Peer.anyIpv4(), Port.tcp(443), 'AWS service endpoints');

    // The service is the L1 resource: its subnets are a parameter list whose
    // length is not known when the template is made, which the L2 service's
    // subnet selection needs.
    const service = new CfnService(this, 'Service', {
      serviceName: app,
      cluster: cluster.clusterName,
      taskDefinition: taskDefinition.taskDefinitionArn,
      launchType: 'FARGATE',
      desiredCount: desiredWorkers.valueAsNumber,
      // New workers take leases before old ones let go; the ledger's claims make the overlap safe.
      deploymentConfiguration: { minimumHealthyPercent: 100, maximumPercent: 200, deploymentCircuitBreaker: { enable: true, rollback: true } },
      propagateTags: 'SERVICE',
      enableEcsManagedTags: true,
      networkConfiguration: {
        awsvpcConfiguration: { subnets: subnetIds.valueAsList, securityGroups: [securityGroup.securityGroupId], assignPublicIp: assignPublicIp.valueAsString },
      },
    });

    // Application Auto Scaling's service-linked role does the scaling (no role of our own).
    const scaling = new CfnScalableTarget(this, 'WorkerScaling', {
      serviceNamespace: 'ecs',
      scalableDimension: 'ecs:service:DesiredCount',
      resourceId: `service/${cluster.clusterName}/${service.attrName}`,
      minCapacity: minWorkers.valueAsNumber,
      maxCapacity: maxWorkers.valueAsNumber,
    });
    new CfnScalingPolicy(this, 'WorkerCpuTracking', {
      policyName: `${app}-cpu`,
      policyType: 'TargetTrackingScaling',
      scalingTargetId: scaling.ref,
      targetTrackingScalingPolicyConfiguration: {
        targetValue: cpuTargetPercent.valueAsNumber,
        predefinedMetricSpecification: { predefinedMetricType: 'ECSServiceAverageCPUUtilization' },
        // Scaling in moves leases, which costs a failover period per moved shard: do it slowly.
        scaleInCooldown: 600,
        scaleOutCooldown: 120,
      },
    });

    // --- operations: alarms, dashboard, scheduled drift audit ---------------
    const { topic, dashboard } = addAlarmsAndDashboard(this, {
      app,
      namespace: metricsNamespace.valueAsString,
      cluster,
      service,
      minWorkers,
      // The KCL publishes its own metrics under the application name.
      kclNamespace: app,
    });
    const drift = addDriftAudit(this, {
      app,
      imageUri: imageUri.valueAsString,
      user: CONTAINER_USER,
      agentImage: agentImage.valueAsString,
      cpuArchitecture: cpuArchitecture.valueAsString,
      cluster,
      // The managed policy already lets it pull and write the log streams, as for the worker's task definition.
      executionRole: executionRole.withoutPolicyUpdates(),
      logGroup,
      metricsLogGroup,
      environment: {
        AWS_REGION: Aws.REGION,
        IPS_APP_NAME: app,
        IPS_LEDGER_TABLE: ledger.tableName,
        IPS_MANAGED_PATH_PREFIX: managedPathPrefix.valueAsString,
        IPS_LOG_LEVEL: logLevel.valueAsString,
        // The `Worker` property of its metric document.
        IPS_WORKER_ID: 'drift-audit',
        ...metricsEnvironment({ namespace: metricsNamespace.valueAsString, metricsLogGroup }),
      },
      ledger,
      managedPathPrefix: managedPathPrefix.valueAsString,
      subnets: subnetIds.valueAsList,
      securityGroup,
      assignPublicIp: assignPublicIp.valueAsString,
    });

    // --- outputs ----------------------------------------------------------
    // Output IDs as before; StreamName is also a parameter's, which CloudFormation allows and constructs do not.
    const output = (id: string, props: CfnOutputProps) => new CfnOutput(this, `${id}Output`, props).overrideLogicalId(id);
    output('StreamName', { description: 'Producers write here (IPS_STREAM_NAME).', value: stream.streamName });
    output('StreamArn', { value: stream.streamArn });
    output('LedgerTableName', { value: ledger.tableName });
    output('DeadLetterTableName', { value: deadLetters.tableName });
    output('LeaseTableName', { value: leases.tableName });
    output('TaskRoleArn', { description: 'The worker role.', value: taskRole.roleArn });
    output('ClusterName', { value: cluster.clusterName });
    output('ServiceName', { value: service.attrName });
    output('LogGroupName', { value: logGroup.logGroupName });
    output('MetricsLogGroupName', { description: 'EMF documents of the CloudWatch agent (the metrics are extracted from them).', value: metricsLogGroup.logGroupName });
    output('AlarmTopicArn', { description: 'Every alarm notifies this topic (ALARM and OK); subscribe more endpoints to it.', value: topic.topicArn });
    output('DashboardUrl', {
      description: 'The CloudWatch dashboard: per shard and per worker.',
      value: `https://console.aws.amazon.com/cloudwatch/home?region=${Aws.REGION}#dashboards:name=${dashboard.dashboardName}`,
    });
    output('DriftAuditTaskDefinitionArn', { description: 'Run it by hand with `aws ecs run-task` (same network settings as the service).', value: drift.taskDefinition.taskDefinitionArn });
  }

  /** The worker's permissions: each grant is what the code calls, on what it owns. */
  private grantWorker(
    role: InlinePolicyRole,
    own: { app: string; managedPathPrefix: string; ledger: Table; deadLetters: Table; leases: Table; stream: Stream; kclMajor: number },
  ): void {
    const { app, ledger, deadLetters, leases, stream, kclMajor } = own;
    // The managed path's policies, and nothing else in the account.
    const managedPolicies = `arn:${Aws.PARTITION}:iam::${Aws.ACCOUNT_ID}:policy${own.managedPathPrefix}*`;
    const ownerIs = (key: 'aws:RequestTag' | 'aws:ResourceTag') => ({ [`${key}/${OWNER_TAG}`]: app });
    const iamStatement = (sid: string, actions: string[], conditions?: Record<string, Record<string, unknown>>) =>
      role.addToPrincipalPolicy(new PolicyStatement({ sid, actions, resources: [managedPolicies], ...(conditions ? { conditions } : {}) }));

    iamStatement('ReadManagedPolicies', IAM_READ_ACTIONS);
    role.addToPrincipalPolicy(new PolicyStatement({ sid: 'ListPolicyNames', actions: IAM_LIST_ACTIONS, resources: ['*'] }));
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

    role.grantAs('Ledger', () => ledger.grant(role, ...LEDGER_ACTIONS.filter((action) => action !== 'dynamodb:BatchWriteItem')));
    role.grantAs('LedgerArchive', () =>
      role.addToPrincipalPolicy(
        new PolicyStatement({
          actions: ['dynamodb:BatchWriteItem'],
          resources: [ledger.tableArn],
          conditions: { 'ForAllValues:StringLike': { 'dynamodb:LeadingKeys': [LEDGER_BATCH_WRITE_KEYS] } },
        }),
      ),
    );
    role.grantAs('DeadLetters', () => deadLetters.grant(role, ...DEAD_LETTER_ACTIONS));
    role.grantAs('KclLeases', () => leases.grant(role, ...(kclMajor >= 3 ? LEASE_ACTIONS_KCL3 : LEASE_ACTIONS_KCL2)));
    if (kclMajor >= 3) {
      // KCL 3 creates these itself, named after the application like the lease table; the index grant is for their indexes.
      const kclTables: ITable[] = KCL3_TABLE_SUFFIXES.map((suffix) =>
        Table.fromTableAttributes(this, `Kcl${suffix.slice(1)}`, { tableName: `${app}${suffix}`, grantIndexPermissions: true }),
      );
      role.grantAs('KclCoordination', () => kclTables.forEach((kclTable) => kclTable.grant(role, ...KCL3_TABLE_ACTIONS)));
      role.grantAs('KclLeaseIndex', () => role.addToPrincipalPolicy(new PolicyStatement({ actions: ['dynamodb:Query'], resources: [`${leases.tableArn}/index/*`] })));
    }
    role.grantAs('ReadStream', () => stream.grant(role, ...STREAM_READ_ACTIONS));

    acknowledge(role, {
      'AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:iam::<AWS::AccountId>:policy<ManagedPathPrefix>*]':
        'The worker manages every policy under its managed path, whose names come from the event stream: the wildcard is the path, a prefix ending in "/" that the ManagedPathPrefix parameter cannot set to "/". Every write on it also needs the managed-by tag of this application.',
      'AwsSolutions-IAM5[Resource::*]':
        'iam:ListPolicies has no resource type (IAM grants it on "*" only). It returns names and metadata, never documents, and the reconciler calls it only to tell a name taken under another path from its own policy.',
      ...(kclMajor >= 3
        ? {
            'AwsSolutions-IAM5[Resource::<LeaseTable.Arn>/index/*]': 'KCL 3 adds a lease-owner index to the lease table and queries it; index names are the KCL\'s.',
            ...Object.fromEntries(
              KCL3_TABLE_SUFFIXES.map((suffix) => [
                `AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:dynamodb:<AWS::Region>:<AWS::AccountId>:table/<ApplicationName>${suffix}/index/*]`,
                `KCL 3 creates and indexes the ${suffix.slice(1)} table itself; index names are the KCL's.`,
              ]),
            ),
          }
        : {}),
    });
  }
}
