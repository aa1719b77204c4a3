// Everything a deployment varies, as CloudFormation parameters, gathered in
// one typed object the stack hands to its constructs. The synthesized
// template (`npm run synth`) deploys as it is with plain CloudFormation, and
// `cdk deploy --parameters ...` takes the same names.
//
// The parameters are declared on the stack itself, in the order the template
// has always listed them (the console shows them in that order), and keep
// their names whichever construct reads them. The constructs take plain
// values (tokens here), never a CfnParameter.
import { CfnParameter } from 'aws-cdk-lib';
import type { Stack } from 'aws-cdk-lib';
import { loadConfig } from '../../src/config/config.js';
import { DEFAULT_AGENT_IMAGE } from './operations.js';
import { DEFAULT_TARGET_AUDIT_ROLE_NAME, DEFAULT_TARGET_ROLE_NAME } from './target-account.js';

/** The application's settings as src/config/config.ts reads them with nothing set. */
const DEFAULTS = loadConfig({});

export interface StreamParameters {
  readonly streamName: string;
  /** PROVISIONED or ON_DEMAND. */
  readonly streamMode: string;
  readonly shardCount: number;
  readonly retentionHours: number;
}

export interface WorkerParameters {
  readonly imageUri: string;
  readonly desiredWorkers: number;
  readonly minWorkers: number;
  readonly maxWorkers: number;
  readonly cpuTargetPercent: number;
  /** Fargate CPU units, as a string (the parameter's allowed values). */
  readonly taskCpu: string;
  /** Fargate memory in MiB, as a string (the parameter's allowed values). */
  readonly taskMemory: string;
  readonly cpuArchitecture: string;
  /** IPS_KCL_METRICS_LEVEL: NONE, SUMMARY or DETAILED. */
  readonly kclMetricsLevel: string;
  /** IPS_KCL_RETRIEVAL_MODE: POLLING or FANOUT. */
  readonly retrievalMode: string;
  readonly initialPosition: string;
  readonly logLevel: string;
  readonly agentImage: string;
}

export interface NetworkParameters {
  readonly vpcId: string;
  readonly subnetIds: string[];
  /** DISABLED or ENABLED. */
  readonly assignPublicIp: string;
}

export interface AlarmParameters {
  /** Empty: no subscription. */
  readonly alertEmail: string;
  readonly lagSeconds: number;
  readonly stuckShardMinutes: number;
  readonly deadLetterThreshold: number;
  readonly iamThrottleCalls: number;
  readonly breakerOpenMinutes: number;
  readonly driftThreshold: number;
  readonly driftWindowHours: number;
}

export interface DriftScheduleParameters {
  readonly schedule: string;
  /** ENABLED or DISABLED. */
  readonly state: string;
}

/** The roles of the target accounts (target-account.ts): the same parameters in the main stack and the target-account stack. */
export interface TargetRoleParameters {
  readonly roleName: string;
  readonly auditRoleName: string;
  /** Empty: none. */
  readonly externalId: string;
}

export interface TargetAccountParameters extends TargetRoleParameters {
  /** TargetAccounts: the accounts whose target role the workers assume; one empty entry when there are none. */
  readonly accounts: string[];
}

export interface DeploymentParameters {
  /** IPS_APP_NAME: the lease table, the other tables' prefix, the cluster, the service, the owner tag's value. */
  readonly appName: string;
  readonly managedPathPrefix: string;
  readonly metricsNamespace: string;
  readonly logRetentionDays: number;
  readonly stream: StreamParameters;
  readonly workers: WorkerParameters;
  readonly network: NetworkParameters;
  readonly alarms: AlarmParameters;
  readonly driftAudit: DriftScheduleParameters;
  readonly targets: TargetAccountParameters;
  /** Tasks of the shadow service (IPS_MODE=shadow, shadow.ts); 0: no shadow. */
  readonly shadowWorkers: number;
}

/** ApplicationName: declared alike in both stacks, since the target role's grant needs the owner tag's value. */
export function declareApplicationName(stack: Stack): CfnParameter {
  return new CfnParameter(stack, 'ApplicationName', {
    type: 'String',
    default: DEFAULTS.appName,
    // It names the KCL lease table, the ECS cluster and service and the CloudWatch namespace.
    allowedPattern: '^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$',
    description: 'KCL application name (IPS_APP_NAME): names the lease table, the other tables, the managed-by tag value and the metrics namespace.',
  });
}

/** ManagedPathPrefix: declared alike in both stacks. */
export function declareManagedPathPrefix(stack: Stack): CfnParameter {
  return new CfnParameter(stack, 'ManagedPathPrefix', {
    type: 'String',
    default: DEFAULTS.managedPathPrefix,
    // Same rule as IPS_MANAGED_PATH_PREFIX in src/config/config.ts: never the whole account ("/").
    allowedPattern: '^/([\\x21-\\x2e\\x30-\\x7e]+/)+$',
    maxLength: 512,
    description: 'IAM path the worker owns; it may write policies under this path only.',
  });
}

/** TargetRoleName, TargetAuditRoleName and TargetExternalId: declared alike in both stacks, which must agree on them. */
export function declareTargetRoleParameters(stack: Stack): TargetRoleParameters {
  // IAM's role names; the roles have the path "/" (the workers build arn:<partition>:iam::<account>:role/<name>).
  const roleName = (id: string, defaultValue: string, description: string) =>
    new CfnParameter(stack, id, { type: 'String', default: defaultValue, allowedPattern: '^[\\w+=,.@-]{1,64}$', description }).valueAsString;
  return {
    roleName: roleName('TargetRoleName', DEFAULT_TARGET_ROLE_NAME, 'Role the workers assume in each target account (IPS_TARGET_ROLE_NAME); the target-account stack creates it there.'),
    auditRoleName: roleName(
      'TargetAuditRoleName',
      DEFAULT_TARGET_AUDIT_ROLE_NAME,
      'Read-only role the drift audit assumes in each target account (its IPS_TARGET_ROLE_NAME); the target-account stack creates it there.',
    ),
    externalId: new CfnParameter(stack, 'TargetExternalId', {
      type: 'String',
      default: '',
      // STS's ExternalId: 2 to 1,224 of these characters.
      allowedPattern: '^$|^[\\w+=,.@:/-]{2,1224}$',
      description: 'ExternalId the target roles ask for and the workers and the audit send (IPS_TARGET_EXTERNAL_ID); empty: none.',
    }).valueAsString,
  };
}

/** Declares the stack's parameters and returns their values. */
export function declareParameters(stack: Stack): DeploymentParameters {
  const appName = declareApplicationName(stack);
  const streamName = new CfnParameter(stack, 'StreamName', {
    type: 'String',
    default: DEFAULTS.streamName,
    allowedPattern: '^[a-zA-Z0-9_.-]{1,128}$',
    description: 'Kinesis stream to create and consume.',
  });
  const streamMode = new CfnParameter(stack, 'StreamMode', {
    type: 'String',
    default: 'PROVISIONED',
    allowedValues: ['PROVISIONED', 'ON_DEMAND'],
    description: 'PROVISIONED uses ShardCount; ON_DEMAND lets Kinesis size the stream.',
  });
  const shardCount = new CfnParameter(stack, 'ShardCount', {
    type: 'Number',
    default: 4,
    minValue: 1,
    description: 'Shards when StreamMode is PROVISIONED. More workers than shards sit idle.',
  });
  const retentionHours = new CfnParameter(stack, 'RetentionHours', {
    type: 'Number',
    default: 168,
    minValue: 24,
    maxValue: 8760,
    description: 'How long records stay replayable in the stream.',
  });
  const managedPathPrefix = declareManagedPathPrefix(stack);
  const imageUri = new CfnParameter(stack, 'ImageUri', {
    type: 'String',
    description: 'Worker image (built from the Dockerfile), e.g. 123456789012.dkr.ecr.eu-west-1.amazonaws.com/iam-policy-stream:1.0.0',
  });
  const desiredWorkers = new CfnParameter(stack, 'DesiredWorkers', {
    type: 'Number',
    default: 2,
    minValue: 0,
    description: 'Workers (ECS tasks) at deployment; autoscaling moves it between MinWorkers and MaxWorkers.',
  });
  const minWorkers = new CfnParameter(stack, 'MinWorkers', { type: 'Number', default: 1, minValue: 0, description: 'Fewest workers autoscaling keeps.' });
  const maxWorkers = new CfnParameter(stack, 'MaxWorkers', {
    type: 'Number',
    default: 4,
    minValue: 1,
    description: 'Most workers autoscaling starts; useful up to the shard count.',
  });
  const cpuTargetPercent = new CfnParameter(stack, 'CpuTargetPercent', {
    type: 'Number',
    default: 60,
    minValue: 10,
    maxValue: 90,
    description: 'Average service CPU that target tracking aims for.',
  });
  const taskCpu = new CfnParameter(stack, 'TaskCpu', {
    type: 'String',
    default: '1024',
    allowedValues: ['512', '1024', '2048', '4096'],
    description: 'Fargate CPU units per worker (the JVM plus one Node process per shard lease).',
  });
  const taskMemory = new CfnParameter(stack, 'TaskMemory', {
    type: 'String',
    default: '2048',
    allowedValues: ['1024', '2048', '3072', '4096', '8192'],
    description: 'Fargate memory (MiB) per worker; must be valid for TaskCpu.',
  });
  const cpuArchitecture = new CfnParameter(stack, 'CpuArchitecture', {
    type: 'String',
    default: 'X86_64',
    allowedValues: ['X86_64', 'ARM64'],
    description: 'Must match the image.',
  });
  const vpcId = new CfnParameter(stack, 'VpcId', { type: 'AWS::EC2::VPC::Id', description: 'VPC of the workers.' });
  const subnetIds = new CfnParameter(stack, 'SubnetIds', {
    type: 'List<AWS::EC2::Subnet::Id>',
    description: 'Subnets with a route to the Kinesis, DynamoDB, IAM, STS, CloudWatch, ECR and Logs endpoints (NAT or VPC endpoints).',
  });
  const assignPublicIp = new CfnParameter(stack, 'AssignPublicIp', {
    type: 'String',
    default: 'DISABLED',
    allowedValues: ['DISABLED', 'ENABLED'],
    description: 'ENABLED only for public subnets without NAT.',
  });
  const kclMetricsLevel = new CfnParameter(stack, 'KclMetricsLevel', {
    type: 'String',
    default: 'SUMMARY',
    allowedValues: ['NONE', 'SUMMARY', 'DETAILED'],
    description: 'KCL CloudWatch metrics (IPS_KCL_METRICS_LEVEL); NONE also drops the PutMetricData grant.',
  });
  const retrievalMode = new CfnParameter(stack, 'RetrievalMode', {
    type: 'String',
    default: 'POLLING',
    allowedValues: ['POLLING', 'FANOUT'],
    description: 'FANOUT uses enhanced fan-out (a registered consumer per application).',
  });
  const initialPosition = new CfnParameter(stack, 'InitialPosition', {
    type: 'String',
    default: 'TRIM_HORIZON',
    allowedValues: ['TRIM_HORIZON', 'LATEST'],
    description: 'Where a shard without a lease starts.',
  });
  const logLevel = new CfnParameter(stack, 'LogLevel', {
    type: 'String',
    default: DEFAULTS.logLevel,
    allowedValues: ['fatal', 'error', 'warn', 'info', 'debug', 'trace'],
    description: 'Record processor log level (IPS_LOG_LEVEL).',
  });
  const logRetentionDays = new CfnParameter(stack, 'LogRetentionDays', {
    type: 'Number',
    // A string like the allowed values (CloudFormation passes every parameter value as a string).
    default: '30',
    allowedValues: ['1', '3', '5', '7', '14', '30', '60', '90', '120', '150', '180', '365', '400', '545', '731', '1096', '1827', '2192', '2557', '2922', '3288', '3653'],
    description: 'Retention of the worker log group (every record outcome is logged there).',
  });
  const metricsNamespace = new CfnParameter(stack, 'MetricsNamespace', {
    type: 'String',
    default: DEFAULTS.metricsNamespace,
    // CloudWatch's namespace characters, without the quote the alarms' Metrics Insights queries put around it.
    allowedPattern: '^[A-Za-z0-9_./#:-]{1,255}$',
    description: "CloudWatch namespace of the workers' own metrics (IPS_METRICS_NAMESPACE); the alarms and the dashboard read them there.",
  });
  const agentImage = new CfnParameter(stack, 'CloudWatchAgentImage', {
    type: 'String',
    default: DEFAULT_AGENT_IMAGE,
    description: 'CloudWatch agent image of the metrics sidecar; a copy in a private ECR repository (pull-through cache) for subnets without a route to public.ecr.aws.',
  });
  const number = (id: string, defaultValue: number, description: string, extra: { minValue?: number; maxValue?: number } = {}) =>
    new CfnParameter(stack, id, { type: 'Number', default: defaultValue, minValue: 0, ...extra, description }).valueAsNumber;
  const alertEmail = new CfnParameter(stack, 'AlertEmail', {
    type: 'String',
    default: '',
    allowedPattern: '^$|^[^\\s@]+@[^\\s@]+$',
    description: 'E-mail address subscribed to the alarm topic (it must confirm the subscription); empty: no subscription.',
  });
  const alarms: AlarmParameters = {
    alertEmail: alertEmail.valueAsString,
    lagSeconds: number('LagAlarmSeconds', 300, 'Alarm when a record settles more than this many seconds after it reached the stream (record_age_ms Maximum), 3 minutes running.', { minValue: 1 }),
    stuckShardMinutes: number('StuckShardMinutes', 15, "Alarm when a shard's oldest unsettled record is older than this many minutes (oldest_unsettled_age_ms Maximum).", { minValue: 1 }),
    deadLetterThreshold: number('DeadLetterAlarmThreshold', 0, 'Alarm when more dead letters than this are written in 5 minutes (dead_letters_written Sum); 0: any.'),
    iamThrottleCalls: number(
      'IamThrottleAlarmCalls',
      10,
      "Alarm when more IAM calls than this end throttled (after the SDK's retries) in each of 3 consecutive 5-minute periods (aws_calls service=iam outcome=Throttling Sum).",
    ),
    breakerOpenMinutes: number('BreakerOpenMinutes', 5, 'Alarm when the IAM circuit breaker of some worker is open (iam_breaker_state Maximum >= 2) for this many consecutive minutes.', {
      minValue: 1,
      maxValue: 60,
    }),
    driftThreshold: number('DriftAlarmThreshold', 0, 'Alarm when the scheduled drift audit finds more drifted policies than this (drift_found Maximum); 0: any.'),
    driftWindowHours: number(
      'DriftAuditWindowHours',
      2,
      'The drift alarms judge the audits hour by hour over this many hours: each alarms when every hour of it had drift (DriftFound) or a failed audit (DriftAuditFailed), an hour without an audit counting as both. At least the interval of DriftAuditSchedule.',
      { minValue: 1, maxValue: 24 },
    ),
  };
  const schedule = new CfnParameter(stack, 'DriftAuditSchedule', {
    type: 'String',
    default: 'rate(1 hour)',
    allowedPattern: '^(rate|cron)\\(.+\\)$',
    description: 'EventBridge schedule of the drift audit (`ips drift --json` as an ECS task), e.g. rate(1 hour) or cron(0 6 * * ? *).',
  });
  const state = new CfnParameter(stack, 'DriftAuditState', {
    type: 'String',
    default: 'ENABLED',
    allowedValues: ['ENABLED', 'DISABLED'],
    description: 'DISABLED keeps the scheduled drift audit from running.',
  });
  // Last, after the parameters stacks deployed before them have.
  const targetAccounts = new CfnParameter(stack, 'TargetAccounts', {
    type: 'CommaDelimitedList',
    default: '',
    // Each entry; empty: no target account, the workers write only in their own.
    allowedPattern: '^(\\d{12})?$',
    description:
      "AWS accounts (12 digits, comma-separated) the workers manage through the target role there (IPS_TARGET_ACCOUNTS); deploy the target-account stack in each first. Empty: only the workers' own account.",
  });
  const targetRoles = declareTargetRoleParameters(stack);
  const shadowWorkers = new CfnParameter(stack, 'ShadowWorkers', {
    type: 'Number',
    default: 0,
    minValue: 0,
    description:
      'Tasks of a shadow service (IPS_MODE=shadow): it reads the stream under its own KCL application and tables, plans every record and writes nothing to IAM (read-only role). 0: no shadow. docs/operations.md, "Onboarding".',
  });

  return {
    appName: appName.valueAsString,
    managedPathPrefix: managedPathPrefix.valueAsString,
    metricsNamespace: metricsNamespace.valueAsString,
    logRetentionDays: logRetentionDays.valueAsNumber,
    stream: {
      streamName: streamName.valueAsString,
      streamMode: streamMode.valueAsString,
      shardCount: shardCount.valueAsNumber,
      retentionHours: retentionHours.valueAsNumber,
    },
    workers: {
      imageUri: imageUri.valueAsString,
      desiredWorkers: desiredWorkers.valueAsNumber,
      minWorkers: minWorkers.valueAsNumber,
      maxWorkers: maxWorkers.valueAsNumber,
      cpuTargetPercent: cpuTargetPercent.valueAsNumber,
      taskCpu: taskCpu.valueAsString,
      taskMemory: taskMemory.valueAsString,
      cpuArchitecture: cpuArchitecture.valueAsString,
      kclMetricsLevel: kclMetricsLevel.valueAsString,
      retrievalMode: retrievalMode.valueAsString,
      initialPosition: initialPosition.valueAsString,
      logLevel: logLevel.valueAsString,
      agentImage: agentImage.valueAsString,
    },
    network: { vpcId: vpcId.valueAsString, subnetIds: subnetIds.valueAsList, assignPublicIp: assignPublicIp.valueAsString },
    alarms,
    driftAudit: { schedule: schedule.valueAsString, state: state.valueAsString },
    targets: { accounts: targetAccounts.valueAsList, ...targetRoles },
    shadowWorkers: shadowWorkers.valueAsNumber,
  };
}
