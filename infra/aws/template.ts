// The AWS deployment as a CloudFormation template, built in TypeScript so the
// table key schemas come from the code that reads them and the worker's
// permissions can be checked by tests (test/unit/deploy.test.ts) before anyone
// deploys. `npm run synth` writes it out as JSON.
import { readFileSync } from 'node:fs';
import { deadLetterTableDefinition } from '../../src/deadletter/table.js';
import { ledgerTableDefinition } from '../../src/ledger/table.js';

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export type JsonObject = { [key: string]: Json };

export interface TemplateOptions {
  /**
   * KCL version the image runs; decides which coordination tables the daemon
   * uses. Defaults to the one kcl/pom.xml pins, so the grants follow upgrades.
   */
  kclVersion?: string;
}

/** The container's name in the task definition. */
export const CONTAINER_NAME = 'worker';
/** Numeric, so the platform can tell it is not root without reading /etc/passwd. */
export const CONTAINER_USER = '10001:10001';
/** Tag the reconciler puts on every policy it creates (src/iam/reconciler.ts OWNER_TAG). */
export const OWNER_TAG = 'managed-by';
/** Partition key of the KCL lease table, as the KCL itself creates it. */
export const LEASE_KEY = 'leaseKey';

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
/** What the record processor does to its own tables (src/ledger, src/deadletter `store`). */
export const LEDGER_ACTIONS = ['dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:UpdateItem'];
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
/** KCL 3 also creates and indexes its coordinator and worker-metrics tables itself. */
export const LEASE_ACTIONS_KCL3 = [...LEASE_ACTIONS_KCL2, 'dynamodb:CreateTable', 'dynamodb:UpdateTable', 'dynamodb:Query'];
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

const ref = (name: string): JsonObject => ({ Ref: name });
const sub = (text: string): JsonObject => ({ 'Fn::Sub': text });
const arnOf = (logicalId: string): JsonObject => ({ 'Fn::GetAtt': [logicalId, 'Arn'] });
const ifThen = (condition: string, value: Json): JsonObject => ({ 'Fn::If': [condition, value, ref('AWS::NoValue')] });

/** The managed path's policies, and nothing else in the account. */
const MANAGED_POLICIES_ARN = sub('arn:${AWS::Partition}:iam::${AWS::AccountId}:policy${ManagedPathPrefix}*');

function tableArn(suffix: string): JsonObject {
  return sub(`arn:\${AWS::Partition}:dynamodb:\${AWS::Region}:\${AWS::AccountId}:table/\${ApplicationName}${suffix}`);
}

function table(tableName: Json, keys: { AttributeDefinitions?: unknown; KeySchema?: unknown }): JsonObject {
  return {
    Type: 'AWS::DynamoDB::Table',
    // The ledger is what makes replays harmless and the dead letters are the
    // only copy of rejected input once the stream's retention has passed:
    // neither goes away with the stack.
    DeletionPolicy: 'Retain',
    UpdateReplacePolicy: 'Retain',
    Properties: {
      TableName: tableName,
      BillingMode: 'PAY_PER_REQUEST',
      AttributeDefinitions: keys.AttributeDefinitions as Json,
      KeySchema: keys.KeySchema as Json,
      PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
      SSESpecification: { SSEEnabled: true },
      DeletionProtectionEnabled: true,
    },
  };
}

function parameters(): JsonObject {
  return {
    ApplicationName: {
      Type: 'String',
      Default: 'iam-policy-stream',
      // It names the KCL lease table, the ECS cluster and service and the CloudWatch namespace.
      AllowedPattern: '^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$',
      Description: 'KCL application name (IPS_APP_NAME): names the lease table, the other tables, the managed-by tag value and the metrics namespace.',
    },
    StreamName: { Type: 'String', Default: 'iam-policy-events', AllowedPattern: '^[a-zA-Z0-9_.-]{1,128}$', Description: 'Kinesis stream to create and consume.' },
    StreamMode: { Type: 'String', Default: 'PROVISIONED', AllowedValues: ['PROVISIONED', 'ON_DEMAND'], Description: 'PROVISIONED uses ShardCount; ON_DEMAND lets Kinesis size the stream.' },
    ShardCount: { Type: 'Number', Default: 4, MinValue: 1, Description: 'Shards when StreamMode is PROVISIONED. More workers than shards sit idle.' },
    RetentionHours: { Type: 'Number', Default: 168, MinValue: 24, MaxValue: 8760, Description: 'How long records stay replayable in the stream.' },
    ManagedPathPrefix: {
      Type: 'String',
      Default: '/stream-managed/',
      // Same rule as IPS_MANAGED_PATH_PREFIX in src/config/config.ts: never the whole account ("/").
      AllowedPattern: '^/([\\x21-\\x2e\\x30-\\x7e]+/)+$',
      MaxLength: 512,
      Description: 'IAM path the worker owns; it may write policies under this path only.',
    },
    ImageUri: { Type: 'String', Description: 'Worker image (built from the Dockerfile), e.g. 123456789012.dkr.ecr.eu-west-1.amazonaws.com/iam-policy-stream:1.0.0' },
    DesiredWorkers: { Type: 'Number', Default: 2, MinValue: 0, Description: 'Workers (ECS tasks) at deployment; autoscaling moves it between MinWorkers and MaxWorkers.' },
    MinWorkers: { Type: 'Number', Default: 1, MinValue: 0, Description: 'Fewest workers autoscaling keeps.' },
    MaxWorkers: { Type: 'Number', Default: 4, MinValue: 1, Description: 'Most workers autoscaling starts; useful up to the shard count.' },
    CpuTargetPercent: { Type: 'Number', Default: 60, MinValue: 10, MaxValue: 90, Description: 'Average service CPU that target tracking aims for.' },
    TaskCpu: { Type: 'String', Default: '1024', AllowedValues: ['512', '1024', '2048', '4096'], Description: 'Fargate CPU units per worker (the JVM plus one Node process per shard lease).' },
    TaskMemory: { Type: 'String', Default: '2048', AllowedValues: ['1024', '2048', '3072', '4096', '8192'], Description: 'Fargate memory (MiB) per worker; must be valid for TaskCpu.' },
    CpuArchitecture: { Type: 'String', Default: 'X86_64', AllowedValues: ['X86_64', 'ARM64'], Description: 'Must match the image.' },
    VpcId: { Type: 'AWS::EC2::VPC::Id', Description: 'VPC of the workers.' },
    SubnetIds: { Type: 'List<AWS::EC2::Subnet::Id>', Description: 'Subnets with a route to the Kinesis, DynamoDB, IAM, STS, CloudWatch, ECR and Logs endpoints (NAT or VPC endpoints).' },
    AssignPublicIp: { Type: 'String', Default: 'DISABLED', AllowedValues: ['DISABLED', 'ENABLED'], Description: 'ENABLED only for public subnets without NAT.' },
    KclMetricsLevel: { Type: 'String', Default: 'SUMMARY', AllowedValues: ['NONE', 'SUMMARY', 'DETAILED'], Description: 'KCL CloudWatch metrics (IPS_KCL_METRICS_LEVEL); NONE also drops the PutMetricData grant.' },
    RetrievalMode: { Type: 'String', Default: 'POLLING', AllowedValues: ['POLLING', 'FANOUT'], Description: 'FANOUT uses enhanced fan-out (a registered consumer per application).' },
    InitialPosition: { Type: 'String', Default: 'TRIM_HORIZON', AllowedValues: ['TRIM_HORIZON', 'LATEST'], Description: 'Where a shard without a lease starts.' },
    LogLevel: { Type: 'String', Default: 'info', AllowedValues: ['fatal', 'error', 'warn', 'info', 'debug', 'trace'], Description: 'Record processor log level (IPS_LOG_LEVEL).' },
    LogRetentionDays: {
      Type: 'Number',
      Default: 30,
      AllowedValues: [1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653],
      Description: 'Retention of the worker log group (every record outcome is logged there).',
    },
  };
}

function workerPolicy(kclMajor: number): JsonObject {
  const leaseTables: Json[] = [arnOf('LeaseTable'), sub('${LeaseTable.Arn}/index/*')];
  if (kclMajor >= 3) {
    for (const suffix of ['-CoordinatorState', '-WorkerMetricStats']) leaseTables.push(tableArn(suffix), sub(`arn:\${AWS::Partition}:dynamodb:\${AWS::Region}:\${AWS::AccountId}:table/\${ApplicationName}${suffix}/index/*`));
  }
  const statements: Json[] = [
    { Sid: 'ReadManagedPolicies', Effect: 'Allow', Action: IAM_READ_ACTIONS, Resource: MANAGED_POLICIES_ARN },
    { Sid: 'ListPolicyNames', Effect: 'Allow', Action: IAM_LIST_ACTIONS, Resource: '*' },
    {
      Sid: 'CreateOwnedPolicies',
      Effect: 'Allow',
      Action: ['iam:CreatePolicy'],
      Resource: MANAGED_POLICIES_ARN,
      // The reconciler always creates with its owner tag; a policy without it would be one it refuses to manage later.
      Condition: { StringEquals: { [`aws:RequestTag/${OWNER_TAG}`]: ref('ApplicationName') } },
    },
    // TagPolicy also authorizes the tags of CreatePolicy, when the policy has no tags yet to condition on.
    { Sid: 'TagManagedPolicies', Effect: 'Allow', Action: ['iam:TagPolicy'], Resource: MANAGED_POLICIES_ARN },
    {
      Sid: 'ChangeOwnedPolicies',
      Effect: 'Allow',
      Action: ['iam:CreatePolicyVersion', 'iam:DeletePolicyVersion', 'iam:DeletePolicy'],
      Resource: MANAGED_POLICIES_ARN,
      // Under the path but not tagged by this application: someone else's, left alone even if the code were wrong.
      Condition: { StringEquals: { [`aws:ResourceTag/${OWNER_TAG}`]: ref('ApplicationName') } },
    },
    {
      Sid: 'UntagOwnedPolicies',
      Effect: 'Allow',
      Action: ['iam:UntagPolicy'],
      Resource: MANAGED_POLICIES_ARN,
      // Removing the owner tag would hand the policy over; the reconciler never does.
      Condition: {
        StringEquals: { [`aws:ResourceTag/${OWNER_TAG}`]: ref('ApplicationName') },
        'ForAllValues:StringNotEquals': { 'aws:TagKeys': [OWNER_TAG] },
      },
    },
    { Sid: 'Ledger', Effect: 'Allow', Action: LEDGER_ACTIONS, Resource: arnOf('LedgerTable') },
    { Sid: 'DeadLetters', Effect: 'Allow', Action: DEAD_LETTER_ACTIONS, Resource: arnOf('DeadLetterTable') },
    { Sid: 'KclLeases', Effect: 'Allow', Action: kclMajor >= 3 ? LEASE_ACTIONS_KCL3 : LEASE_ACTIONS_KCL2, Resource: leaseTables },
    { Sid: 'ReadStream', Effect: 'Allow', Action: STREAM_READ_ACTIONS, Resource: arnOf('Stream') },
    ifThen('UseFanOut', { Sid: 'RegisterFanOutConsumer', Effect: 'Allow', Action: ['kinesis:RegisterStreamConsumer'], Resource: arnOf('Stream') }),
    ifThen('UseFanOut', {
      Sid: 'ReadFanOut',
      Effect: 'Allow',
      Action: ['kinesis:DescribeStreamConsumer', 'kinesis:SubscribeToShard'],
      // The KCL names its consumer after the application.
      Resource: sub('${Stream.Arn}/consumer/${ApplicationName}:*'),
    }),
    ifThen('PublishKclMetrics', {
      Sid: 'KclMetrics',
      Effect: 'Allow',
      Action: ['cloudwatch:PutMetricData'],
      // PutMetricData has no resource ARN; the namespace (the KCL uses the application name) is the fence.
      Resource: '*',
      Condition: { StringEquals: { 'cloudwatch:namespace': ref('ApplicationName') } },
    }),
  ];
  return { PolicyName: 'worker', PolicyDocument: { Version: '2012-10-17', Statement: statements } };
}

const ECS_TASKS_TRUST: JsonObject = {
  Version: '2012-10-17',
  Statement: [
    {
      Effect: 'Allow',
      Principal: { Service: 'ecs-tasks.amazonaws.com' },
      Action: 'sts:AssumeRole',
      // Only tasks of this account may assume it (confused deputy).
      Condition: {
        StringEquals: { 'aws:SourceAccount': ref('AWS::AccountId') },
        ArnLike: { 'aws:SourceArn': sub('arn:${AWS::Partition}:ecs:${AWS::Region}:${AWS::AccountId}:*') },
      },
    },
  ],
};

function environment(): Json[] {
  const variables: Record<string, Json> = {
    AWS_REGION: ref('AWS::Region'),
    IPS_APP_NAME: ref('ApplicationName'),
    IPS_STREAM_NAME: ref('Stream'),
    IPS_LEDGER_TABLE: ref('LedgerTable'),
    IPS_DEAD_LETTER_TABLE: ref('DeadLetterTable'),
    IPS_LEASE_TABLE: ref('LeaseTable'),
    IPS_MANAGED_PATH_PREFIX: ref('ManagedPathPrefix'),
    IPS_LOG_LEVEL: ref('LogLevel'),
    IPS_KCL_METRICS_LEVEL: ref('KclMetricsLevel'),
    IPS_KCL_RETRIEVAL_MODE: ref('RetrievalMode'),
    IPS_KCL_INITIAL_POSITION: ref('InitialPosition'),
  };
  return Object.entries(variables).map(([Name, Value]) => ({ Name, Value }));
}

export function buildTemplate(options: TemplateOptions = {}): JsonObject {
  const kclVersion = options.kclVersion ?? kclVersionFromPom();
  const kclMajor = Number(kclVersion.split('.')[0]);
  if (!Number.isInteger(kclMajor)) throw new Error(`cannot read KCL version ${JSON.stringify(kclVersion)}`);

  const resources: JsonObject = {
    Stream: {
      Type: 'AWS::Kinesis::Stream',
      // Retained records are what a replay reads.
      DeletionPolicy: 'Retain',
      UpdateReplacePolicy: 'Retain',
      Properties: {
        Name: ref('StreamName'),
        StreamModeDetails: { StreamMode: ref('StreamMode') },
        ShardCount: { 'Fn::If': ['IsProvisioned', ref('ShardCount'), ref('AWS::NoValue')] },
        RetentionPeriodHours: ref('RetentionHours'),
        // The AWS managed key: consumers need no kms:Decrypt grant of their own.
        StreamEncryption: { EncryptionType: 'KMS', KeyId: 'alias/aws/kinesis' },
      },
    },
    LedgerTable: table(sub('${ApplicationName}-ledger'), ledgerTableDefinition('ledger')),
    DeadLetterTable: table(sub('${ApplicationName}-dead-letters'), deadLetterTableDefinition('dead-letters')),
    // The KCL would create this table on first start; owning it here gives it
    // recovery, encryption and a grant that needs no dynamodb:CreateTable.
    LeaseTable: table(ref('ApplicationName'), {
      AttributeDefinitions: [{ AttributeName: LEASE_KEY, AttributeType: 'S' }],
      KeySchema: [{ AttributeName: LEASE_KEY, KeyType: 'HASH' }],
    }),
    LogGroup: {
      Type: 'AWS::Logs::LogGroup',
      DeletionPolicy: 'Delete',
      UpdateReplacePolicy: 'Delete',
      Properties: { LogGroupName: sub('/ecs/${ApplicationName}'), RetentionInDays: ref('LogRetentionDays') },
    },
    Cluster: {
      Type: 'AWS::ECS::Cluster',
      Properties: { ClusterName: ref('ApplicationName'), ClusterSettings: [{ Name: 'containerInsights', Value: 'enabled' }] },
    },
    // Pulls the image and writes the log stream; the worker itself never gets these rights.
    TaskExecutionRole: {
      Type: 'AWS::IAM::Role',
      Properties: {
        AssumeRolePolicyDocument: ECS_TASKS_TRUST,
        ManagedPolicyArns: [sub('arn:${AWS::Partition}:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy')],
      },
    },
    TaskRole: {
      Type: 'AWS::IAM::Role',
      Properties: {
        Description: 'iam-policy-stream worker: IAM policies under the managed path, its own tables and stream.',
        AssumeRolePolicyDocument: ECS_TASKS_TRUST,
        Policies: [workerPolicy(kclMajor)],
      },
    },
    WorkerSecurityGroup: {
      Type: 'AWS::EC2::SecurityGroup',
      Properties: {
        GroupDescription: 'iam-policy-stream workers: no inbound, HTTPS out to AWS APIs',
        VpcId: ref('VpcId'),
        SecurityGroupEgress: [{ IpProtocol: 'tcp', FromPort: 443, ToPort: 443, CidrIp: '0.0.0.0/0', Description: 'AWS service endpoints' }],
      },
    },
    TaskDefinition: {
      Type: 'AWS::ECS::TaskDefinition',
      Properties: {
        Family: ref('ApplicationName'),
        RequiresCompatibilities: ['FARGATE'],
        NetworkMode: 'awsvpc',
        Cpu: ref('TaskCpu'),
        Memory: ref('TaskMemory'),
        RuntimePlatform: { OperatingSystemFamily: 'LINUX', CpuArchitecture: ref('CpuArchitecture') },
        ExecutionRoleArn: arnOf('TaskExecutionRole'),
        TaskRoleArn: arnOf('TaskRole'),
        // The launcher writes the rendered daemon properties and the JVM its
        // perf data there; the rest of the file system stays read-only.
        Volumes: [{ Name: 'tmp' }],
        ContainerDefinitions: [
          {
            Name: CONTAINER_NAME,
            Image: ref('ImageUri'),
            Essential: true,
            User: CONTAINER_USER,
            ReadonlyRootFilesystem: true,
            MountPoints: [{ SourceVolume: 'tmp', ContainerPath: '/tmp', ReadOnly: false }],
            // The launcher is PID 1 and does not reap orphans of the daemon's record processors.
            LinuxParameters: { InitProcessEnabled: true },
            // Room for the daemon's graceful shutdown: children checkpoint what is settled.
            StopTimeout: 60,
            Environment: environment(),
            LogConfiguration: {
              LogDriver: 'awslogs',
              Options: { 'awslogs-group': ref('LogGroup'), 'awslogs-region': ref('AWS::Region'), 'awslogs-stream-prefix': CONTAINER_NAME },
            },
          },
        ],
      },
    },
    Service: {
      Type: 'AWS::ECS::Service',
      Properties: {
        ServiceName: ref('ApplicationName'),
        Cluster: ref('Cluster'),
        TaskDefinition: ref('TaskDefinition'),
        LaunchType: 'FARGATE',
        DesiredCount: ref('DesiredWorkers'),
        // New workers take leases before old ones let go; the ledger's claims make the overlap safe.
        DeploymentConfiguration: { MinimumHealthyPercent: 100, MaximumPercent: 200, DeploymentCircuitBreaker: { Enable: true, Rollback: true } },
        PropagateTags: 'SERVICE',
        EnableECSManagedTags: true,
        NetworkConfiguration: {
          AwsvpcConfiguration: { Subnets: ref('SubnetIds'), SecurityGroups: [ref('WorkerSecurityGroup')], AssignPublicIp: ref('AssignPublicIp') },
        },
      },
    },
    WorkerScaling: {
      Type: 'AWS::ApplicationAutoScaling::ScalableTarget',
      Properties: {
        ServiceNamespace: 'ecs',
        ScalableDimension: 'ecs:service:DesiredCount',
        ResourceId: sub('service/${Cluster}/${Service.Name}'),
        MinCapacity: ref('MinWorkers'),
        MaxCapacity: ref('MaxWorkers'),
      },
    },
    WorkerCpuTracking: {
      Type: 'AWS::ApplicationAutoScaling::ScalingPolicy',
      Properties: {
        PolicyName: sub('${ApplicationName}-cpu'),
        PolicyType: 'TargetTrackingScaling',
        ScalingTargetId: ref('WorkerScaling'),
        TargetTrackingScalingPolicyConfiguration: {
          TargetValue: ref('CpuTargetPercent'),
          PredefinedMetricSpecification: { PredefinedMetricType: 'ECSServiceAverageCPUUtilization' },
          // Scaling in moves leases, which costs a failover period per moved shard: do it slowly.
          ScaleInCooldown: 600,
          ScaleOutCooldown: 120,
        },
      },
    },
  };

  return {
    AWSTemplateFormatVersion: '2010-09-09',
    Description: `iam-policy-stream: Kinesis stream, ledger, dead-letter and lease tables, and the ECS Fargate workers (KCL ${kclVersion} MultiLangDaemon) with a least-privilege task role.`,
    Parameters: parameters(),
    Conditions: {
      IsProvisioned: { 'Fn::Equals': [ref('StreamMode'), 'PROVISIONED'] },
      UseFanOut: { 'Fn::Equals': [ref('RetrievalMode'), 'FANOUT'] },
      PublishKclMetrics: { 'Fn::Not': [{ 'Fn::Equals': [ref('KclMetricsLevel'), 'NONE'] }] },
    },
    Resources: resources,
    Outputs: {
      StreamName: { Description: 'Producers write here (IPS_STREAM_NAME).', Value: ref('Stream') },
      StreamArn: { Value: arnOf('Stream') },
      LedgerTableName: { Value: ref('LedgerTable') },
      DeadLetterTableName: { Value: ref('DeadLetterTable') },
      LeaseTableName: { Value: ref('LeaseTable') },
      TaskRoleArn: { Description: 'The worker role.', Value: arnOf('TaskRole') },
      ClusterName: { Value: ref('Cluster') },
      ServiceName: { Value: { 'Fn::GetAtt': ['Service', 'Name'] } },
      LogGroupName: { Value: ref('LogGroup') },
    },
  };
}
