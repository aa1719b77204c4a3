// Running it in production: the route of the metrics to CloudWatch (the
// CloudWatch agent as a sidecar of every task), the alarms and their SNS
// topic, the dashboard, and the scheduled drift audit.
//
// The record processors publish their metrics in the Embedded Metric Format
// (src/metrics/emf.ts) to the agent at AWS_EMF_AGENT_ENDPOINT; the agent
// writes the documents to the metrics log group and CloudWatch extracts the
// metrics, under IPS_METRICS_NAMESPACE with the dimension sets METRIC_SPECS
// (src/metrics/metrics.ts) gives each metric. The alarms below name those
// metrics and dimensions; test/unit/deploy-operations.test.ts checks each one
// against what the code publishes.
import { Aws, CfnCondition, CfnParameter, Duration, Fn, Token, Validations } from 'aws-cdk-lib';
import type { CfnResource } from 'aws-cdk-lib';
import type { Construct, IConstruct } from 'constructs';
import { Alarm, AlarmStatusWidget, ComparisonOperator, Dashboard, GraphWidget, MathExpression, Metric, TextWidget, TreatMissingData } from 'aws-cdk-lib/aws-cloudwatch';
import type { IMetric } from 'aws-cdk-lib/aws-cloudwatch';
import { SnsAction } from 'aws-cdk-lib/aws-cloudwatch-actions';
import type { ITable } from 'aws-cdk-lib/aws-dynamodb';
import type { ISecurityGroup } from 'aws-cdk-lib/aws-ec2';
import { ContainerDependencyCondition, ContainerImage, CpuArchitecture, FargateTaskDefinition, LogDriver, OperatingSystemFamily } from 'aws-cdk-lib/aws-ecs';
import type { CfnService, ContainerDefinition, ICluster, TaskDefinition } from 'aws-cdk-lib/aws-ecs';
import { CfnRule } from 'aws-cdk-lib/aws-events';
import { PolicyStatement, ServicePrincipal } from 'aws-cdk-lib/aws-iam';
import type { IRole } from 'aws-cdk-lib/aws-iam';
import type { ILogGroup } from 'aws-cdk-lib/aws-logs';
import { CfnSubscription, Topic } from 'aws-cdk-lib/aws-sns';
import { DEFAULT_AGENT_ENDPOINT } from '../../src/metrics/emf.js';
import { METRIC } from '../../src/metrics/metrics.js';
import { InlinePolicyRole } from './inline-policy-role.js';

/** The agent's container in each task definition. */
export const AGENT_CONTAINER_NAME = 'cloudwatch-agent';
export const DEFAULT_AGENT_IMAGE = 'public.ecr.aws/cloudwatch-agent/cloudwatch-agent:latest';
/** The agent's configuration: its EMF listener (TCP and UDP on 25888) and nothing else; it collects no host metrics. */
export const AGENT_CONFIG = { logs: { metrics_collected: { emf: {} } } };
/** Where the processes reach the agent: the task's own loopback (awsvpc: the containers of a task share it). */
export const AGENT_ENDPOINT = DEFAULT_AGENT_ENDPOINT;
/** What the agent does with its log group: write the EMF documents (it creates the group and streams if they are missing). */
export const METRICS_AGENT_ACTIONS = ['logs:CreateLogGroup', 'logs:CreateLogStream', 'logs:PutLogEvents', 'logs:DescribeLogStreams'];

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

/** The error name the SDK gives IAM's throttling (IAM's error code; src/aws/call-observer.ts records it as `outcome`). */
export const IAM_THROTTLING_OUTCOME = 'Throttling';

/** The construct's CloudFormation resource under the construct's own id, as the stack's other resources are. */
function named<T extends IConstruct>(construct: T): T {
  (construct.node.defaultChild as CfnResource).overrideLogicalId(construct.node.id);
  return construct;
}

/** Acknowledges cdk-nag findings on a construct; every one says why. */
function acknowledge(scope: IConstruct, findings: Record<string, string>): void {
  for (const [id, reason] of Object.entries(findings)) Validations.of(scope).acknowledge({ id, reason });
}

/**
 * Adds the CloudWatch agent to a task definition as a sidecar listening for
 * EMF on the task's loopback, and makes `dependent` start after it. Not
 * essential: an agent that dies costs metrics (the alarms on them see missing
 * data), not the worker's leases.
 */
export function addCloudWatchAgent(
  taskDefinition: TaskDefinition,
  options: { image: string; logGroup: ILogGroup; dependent: ContainerDefinition },
): ContainerDefinition {
  const agent = taskDefinition.addContainer(AGENT_CONTAINER_NAME, {
    containerName: AGENT_CONTAINER_NAME,
    image: ContainerImage.fromRegistry(options.image),
    essential: false,
    environment: { AWS_REGION: Aws.REGION, CW_CONFIG_CONTENT: JSON.stringify(AGENT_CONFIG) },
    // The agent's own log lines, beside the worker's.
    logging: LogDriver.awsLogs({ logGroup: options.logGroup, streamPrefix: AGENT_CONTAINER_NAME }),
  });
  options.dependent.addContainerDependencies({ container: agent, condition: ContainerDependencyCondition.START });
  return agent;
}

/** The agent's grant, on the role of the task it runs in (the agent's credentials are the task role's, as its ECS setup prescribes). */
export function metricsAgentStatement(metricsLogGroup: ILogGroup): PolicyStatement {
  return new PolicyStatement({ sid: 'MetricsAgent', actions: METRICS_AGENT_ACTIONS, resources: [metricsLogGroup.logGroupArn] });
}

/** The worker's and the audit's environment for the agent route. */
export function metricsEnvironment(options: { namespace: string; metricsLogGroup: ILogGroup }): Record<string, string> {
  return {
    AWS_EMF_AGENT_ENDPOINT: AGENT_ENDPOINT,
    // sinkFor (src/metrics/emf.ts) names the agent's log group from it; it is the stack's.
    AWS_EMF_LOG_GROUP_NAME: options.metricsLogGroup.logGroupName,
    IPS_METRICS_NAMESPACE: options.namespace,
  };
}

/** A Metrics Insights query over one of the application's metrics: `FUNCTION(metric)` of the exact dimension set, filtered. */
export function insightsQuery(options: {
  fn: 'SUM' | 'MAX' | 'MIN' | 'AVG';
  namespace: string;
  metric: string;
  dimensions: string[];
  where: Record<string, string>;
  /** Values a dimension must not have. */
  whereNot?: Record<string, string>;
  groupBy?: string[];
}): string {
  const where = [
    ...Object.entries(options.where).map(([key, value]) => `${key} = '${value}'`),
    ...Object.entries(options.whereNot ?? {}).map(([key, value]) => `${key} != '${value}'`),
  ];
  const groupBy = options.groupBy && options.groupBy.length > 0 ? ` GROUP BY ${options.groupBy.join(', ')}` : '';
  return `SELECT ${options.fn}(${options.metric}) FROM SCHEMA("${options.namespace}", ${options.dimensions.join(', ')})${where.length > 0 ? ` WHERE ${where.join(' AND ')}` : ''}${groupBy}`;
}

export interface OperationsProps {
  app: string;
  namespace: string;
  cluster: ICluster;
  service: CfnService;
  minWorkers: CfnParameter;
  kclNamespace: string;
}

/**
 * The alarms, their topic and the dashboard. Every threshold is a parameter;
 * every alarm notifies the topic when it fires and when it recovers.
 */
export function addAlarmsAndDashboard(scope: Construct, props: OperationsProps): { topic: Topic; alarms: Alarm[]; dashboard: Dashboard } {
  const { app, namespace } = props;
  const parameter = (id: string, defaultValue: number, description: string, extra: { minValue?: number; maxValue?: number } = {}) =>
    new CfnParameter(scope, id, { type: 'Number', default: defaultValue, minValue: 0, ...extra, description });

  const alertEmail = new CfnParameter(scope, 'AlertEmail', {
    type: 'String',
    default: '',
    allowedPattern: '^$|^[^\\s@]+@[^\\s@]+$',
    description: 'E-mail address subscribed to the alarm topic (it must confirm the subscription); empty: no subscription.',
  });
  const lagSeconds = parameter('LagAlarmSeconds', 300, 'Alarm when a record settles more than this many seconds after it reached the stream (record_age_ms Maximum), 3 minutes running.', { minValue: 1 });
  const stuckMinutes = parameter('StuckShardMinutes', 15, "Alarm when a shard's oldest unsettled record is older than this many minutes (oldest_unsettled_age_ms Maximum).", { minValue: 1 });
  const deadLetters = parameter('DeadLetterAlarmThreshold', 0, 'Alarm when more dead letters than this are written in 5 minutes (dead_letters_written Sum); 0: any.');
  const throttled = parameter('IamThrottleAlarmCalls', 10, 'Alarm when more IAM calls than this end throttled (after the SDK\'s retries) in each of 3 consecutive 5-minute periods (aws_calls service=iam outcome=Throttling Sum).');
  const breakerMinutes = parameter('BreakerOpenMinutes', 5, 'Alarm when the IAM circuit breaker of some worker is open (iam_breaker_state Maximum >= 2) for this many consecutive minutes.', { minValue: 1, maxValue: 60 });
  const driftThreshold = parameter('DriftAlarmThreshold', 0, 'Alarm when the scheduled drift audit finds more drifted policies than this (drift_found Maximum); 0: any.');
  const driftWindow = parameter(
    'DriftAuditWindowHours',
    2,
    'The drift alarms judge the audits hour by hour over this many hours: each alarms when every hour of it had drift (DriftFound) or a failed audit (DriftAuditFailed), an hour without an audit counting as both. At least the interval of DriftAuditSchedule.',
    { minValue: 1, maxValue: 24 },
  );

  // --- the topic ------------------------------------------------------------
  // TLS only. Not KMS-encrypted: alarm notifications carry alarm and metric names and values, no
  // record content, and CloudWatch cannot publish to a topic under the AWS managed SNS key.
  const topic = named(new Topic(scope, 'AlarmTopic', { displayName: `${app} alarms`, enforceSSL: true }));
  // CloudWatch alarms of this account publish to it (the topic policy replaces SNS's default one).
  topic.addToResourcePolicy(
    new PolicyStatement({
      sid: 'CloudWatchAlarms',
      principals: [new ServicePrincipal('cloudwatch.amazonaws.com')],
      actions: ['sns:Publish'],
      resources: [topic.topicArn],
      conditions: {
        StringEquals: { 'aws:SourceAccount': Aws.ACCOUNT_ID },
        ArnLike: { 'aws:SourceArn': `arn:${Aws.PARTITION}:cloudwatch:${Aws.REGION}:${Aws.ACCOUNT_ID}:alarm:*` },
      },
    }),
  );
  (topic.node.findChild('Policy').node.defaultChild as CfnResource).overrideLogicalId('AlarmTopicPolicy');
  const hasEmail = new CfnCondition(scope, 'HasAlertEmail', { expression: Fn.conditionNot(Fn.conditionEquals(alertEmail.valueAsString, '')) });
  const subscription = new CfnSubscription(scope, 'AlertEmailSubscription', { topicArn: topic.topicArn, protocol: 'email', endpoint: alertEmail.valueAsString });
  subscription.cfnOptions.condition = hasEmail;

  // --- the metrics ----------------------------------------------------------
  const appMetric = (metricName: string, statistic: string, period: Duration) =>
    new Metric({ namespace, metricName, dimensionsMap: { App: app }, statistic, period });
  const query = (expression: string, label: string, period: Duration) => new MathExpression({ expression, label, period, usingMetrics: {} });

  const oneMinute = Duration.minutes(1);
  const fiveMinutes = Duration.minutes(5);
  const oneHour = Duration.hours(1);
  const recordAge = appMetric(METRIC.recordAgeMs, 'Maximum', oneMinute);
  const oldestUnsettled = appMetric(METRIC.oldestUnsettledAgeMs, 'Maximum', oneMinute);
  const breakerState = appMetric(METRIC.iamBreakerState, 'Maximum', oneMinute);
  // Hour by hour: an audit runs every DriftAuditSchedule, so an hour without its document means an
  // audit that did not run or did not finish (DriftAuditWindowHours of them in a row alarm).
  const driftFound = appMetric(METRIC.driftFound, 'Maximum', oneHour);
  const driftAuditFailed = appMetric(METRIC.driftAuditFailed, 'Maximum', oneHour);
  // Container Insights (enabled on the cluster by this stack) counts the service's running tasks.
  const serviceTasks = (metricName: string, statistic: string) =>
    new Metric({ namespace: 'ECS/ContainerInsights', metricName, dimensionsMap: { ClusterName: props.cluster.clusterName, ServiceName: props.service.attrName }, statistic, period: oneMinute });
  const runningTasks = serviceTasks('RunningTaskCount', 'Minimum');
  const deadLettersWritten = query(
    insightsQuery({ fn: 'SUM', namespace, metric: METRIC.deadLettersWritten, dimensions: ['App', 'reason'], where: { App: app } }),
    'dead letters written',
    fiveMinutes,
  );
  const iamThrottled = query(
    insightsQuery({
      fn: 'SUM',
      namespace,
      metric: METRIC.awsCalls,
      dimensions: ['App', 'operation', 'outcome', 'service'],
      where: { App: app, service: 'iam', outcome: IAM_THROTTLING_OUTCOME },
    }),
    'IAM calls throttled',
    fiveMinutes,
  );

  // --- the alarms -----------------------------------------------------------
  const alarms: Alarm[] = [];
  const alarm = (id: string, options: { metric: IMetric; threshold: number; comparisonOperator: ComparisonOperator; evaluationPeriods: number; treatMissingData: TreatMissingData; description: string }) => {
    const created = named(new Alarm(scope, id, {
      alarmName: `${app}-${id.replace(/Alarm$/, '')}`,
      alarmDescription: options.description,
      metric: options.metric,
      threshold: options.threshold,
      comparisonOperator: options.comparisonOperator,
      evaluationPeriods: options.evaluationPeriods,
      datapointsToAlarm: options.evaluationPeriods,
      treatMissingData: options.treatMissingData,
    }));
    created.addAlarmAction(new SnsAction(topic));
    created.addOkAction(new SnsAction(topic));
    alarms.push(created);
    return created;
  };
  alarm('LagAlarm', {
    metric: new MathExpression({ expression: 'age / 1000', usingMetrics: { age: recordAge }, label: 'record age at outcome (s)', period: oneMinute }),
    threshold: lagSeconds.valueAsNumber,
    comparisonOperator: ComparisonOperator.GREATER_THAN_THRESHOLD,
    evaluationPeriods: 3,
    // No record settled: no lag to measure (a record held is the stuck-shard alarm's).
    treatMissingData: TreatMissingData.NOT_BREACHING,
    description: 'Records settle later than LagAlarmSeconds after they reached the stream (record_age_ms Maximum): the workers fall behind. Scale workers and shards, or look for throttling (docs/operations.md, "Alarms").',
  });
  alarm('StuckShardAlarm', {
    metric: new MathExpression({ expression: 'age / 60000', usingMetrics: { age: oldestUnsettled }, label: 'oldest unsettled record (min)', period: oneMinute }),
    threshold: stuckMinutes.valueAsNumber,
    comparisonOperator: ComparisonOperator.GREATER_THAN_THRESHOLD,
    evaluationPeriods: 2,
    treatMissingData: TreatMissingData.NOT_BREACHING,
    description: 'A shard holds a record without an outcome for longer than StuckShardMinutes (oldest_unsettled_age_ms Maximum). `ips status` names the shard and the policy holding it.',
  });
  alarm('DeadLettersAlarm', {
    metric: deadLettersWritten,
    threshold: deadLetters.valueAsNumber,
    comparisonOperator: ComparisonOperator.GREATER_THAN_THRESHOLD,
    evaluationPeriods: 1,
    treatMissingData: TreatMissingData.NOT_BREACHING,
    description: 'Dead letters were written (dead_letters_written Sum over every reason). `ips dead-letters list` shows them; redrive after fixing the cause.',
  });
  alarm('IamThrottlingAlarm', {
    metric: iamThrottled,
    threshold: throttled.valueAsNumber,
    comparisonOperator: ComparisonOperator.GREATER_THAN_THRESHOLD,
    evaluationPeriods: 3,
    treatMissingData: TreatMissingData.NOT_BREACHING,
    description: 'IAM throttles the workers for 15 minutes running (aws_calls service=iam outcome=Throttling Sum). Something else in the account calls IAM too, or there are more workers than IAM allows.',
  });
  alarm('IamBreakerOpenAlarm', {
    metric: breakerState,
    threshold: 2,
    comparisonOperator: ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
    evaluationPeriods: Token.asNumber(breakerMinutes.valueAsNumber),
    treatMissingData: TreatMissingData.NOT_BREACHING,
    description: 'The IAM circuit breaker of a worker has been open for BreakerOpenMinutes (iam_breaker_state Maximum >= 2): IAM keeps failing, the shards wait.',
  });
  alarm('WorkersBelowMinimumAlarm', {
    metric: runningTasks,
    threshold: props.minWorkers.valueAsNumber,
    comparisonOperator: ComparisonOperator.LESS_THAN_THRESHOLD,
    evaluationPeriods: 5,
    // No data from Container Insights: no task reports, which is fewer than any minimum above 0.
    treatMissingData: TreatMissingData.BREACHING,
    description: 'Fewer workers run than MinWorkers for 5 minutes (ECS/ContainerInsights RunningTaskCount Minimum). Look at the service events and the stopped tasks\' reasons.',
  });
  // An audit that publishes nothing (it could not start, or stopped before the end) is no news of
  // drift either way: both drift alarms count the missing hour as breaching, so they never stay OK
  // on silence.
  alarm('DriftFoundAlarm', {
    metric: driftFound,
    threshold: driftThreshold.valueAsNumber,
    comparisonOperator: ComparisonOperator.GREATER_THAN_THRESHOLD,
    evaluationPeriods: Token.asNumber(driftWindow.valueAsNumber),
    treatMissingData: TreatMissingData.BREACHING,
    description: 'The scheduled drift audit found IAM differing from the ledger (drift_found) in every hour of DriftAuditWindowHours, or reported nothing. Run `ips drift` for the list and `ips drift --repair` to converge (docs/operations.md, "drift"); if the audit reported nothing, see DriftAuditFailed.',
  });
  alarm('DriftAuditFailedAlarm', {
    metric: driftAuditFailed,
    threshold: 1,
    comparisonOperator: ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
    evaluationPeriods: Token.asNumber(driftWindow.valueAsNumber),
    treatMissingData: TreatMissingData.BREACHING,
    description: 'The scheduled drift audit could not judge everything (drift_audit_failed: a policy it may not read, or an audit that could not run) or reported nothing, in every hour of DriftAuditWindowHours. The audit task\'s log (stream prefix drift-audit) says why (docs/operations.md, "drift").',
  });

  // --- the dashboard --------------------------------------------------------
  const perShard = (metric: string, fn: 'SUM' | 'MAX', label: string, period = oneMinute, extra: string[] = []) =>
    query(insightsQuery({ fn, namespace, metric, dimensions: ['App', 'ShardId', ...extra], where: { App: app }, groupBy: ['ShardId'] }), label, period);
  const perWorker = (metric: string, fn: 'SUM' | 'MAX', label: string, extra: string[] = [], whereNot: Record<string, string> = {}, groupBy: string[] = []) =>
    query(insightsQuery({ fn, namespace, metric, dimensions: ['App', 'Worker', ...extra], where: { App: app }, whereNot, groupBy: ['Worker', ...groupBy] }), label, oneMinute);
  const graph = (title: string, left: IMetric[], options: { width?: number; leftLabel?: string } = {}) =>
    new GraphWidget({ title, left, width: options.width ?? 8, height: 6, ...(options.leftLabel ? { leftYAxis: { label: options.leftLabel, showUnits: false } } : {}) });

  const dashboard = named(new Dashboard(scope, 'Dashboard', { dashboardName: app, defaultInterval: Duration.hours(3) }));
  dashboard.addWidgets(
    new TextWidget({
      markdown: `# ${app}\nPer shard and per worker (Metrics Insights, namespace \`${namespace}\`, last 3 hours). Alarms go to the SNS topic of the stack; docs/operations.md, "Alarms", says what each one means.`,
      width: 24,
      height: 2,
    }),
  );
  dashboard.addWidgets(new AlarmStatusWidget({ title: 'Alarms', alarms, width: 24, height: 3 }));
  dashboard.addWidgets(
    graph('Record age at outcome, per shard (ms, max)', [perShard(METRIC.recordAgeMs, 'MAX', 'record age')]),
    graph('Oldest unsettled record, per shard (ms)', [perShard(METRIC.oldestUnsettledAgeMs, 'MAX', 'oldest unsettled')]),
    graph('KCL MillisBehindLatest, per shard', [
      new MathExpression({ expression: `SEARCH('{"${props.kclNamespace}"} MetricName="MillisBehindLatest"', 'Maximum', 60)`, label: 'behind latest', period: oneMinute, usingMetrics: {} }),
    ]),
  );
  dashboard.addWidgets(
    graph('Records settled, per shard', [perShard(METRIC.outcomes, 'SUM', 'records', oneMinute, ['outcome'])]),
    graph('Dead letters written, per shard', [perShard(METRIC.deadLettersWritten, 'SUM', 'dead letters', fiveMinutes, ['reason'])]),
    graph('Batch duration, per shard (ms, max)', [perShard(METRIC.batchDurationMs, 'MAX', 'batch duration')]),
  );
  dashboard.addWidgets(
    graph('IAM circuit breaker, per worker (2 = open)', [perWorker(METRIC.iamBreakerState, 'MAX', 'breaker')]),
    graph('AWS calls that failed, per worker', [perWorker(METRIC.awsCalls, 'SUM', 'failed calls', ['operation', 'outcome', 'service'], { outcome: 'ok' }, ['service', 'outcome'])]),
    graph('Memory, per worker (bytes)', [perWorker(METRIC.rssBytes, 'MAX', 'rss')]),
  );
  dashboard.addWidgets(
    graph('Running workers', [runningTasks.with({ label: 'running' }), serviceTasks('DesiredTaskCount', 'Maximum').with({ label: 'desired' })], { width: 12 }),
    graph('Drift found by the scheduled audit', [driftFound.with({ label: 'drifted policies' }), driftAuditFailed.with({ label: 'audit failed (1)' })], { width: 12 }),
  );
  return { topic, alarms, dashboard };
}

export interface DriftAuditProps {
  app: string;
  imageUri: string;
  /** The image's non-root user, as the worker runs it. */
  user: string;
  agentImage: string;
  cpuArchitecture: string;
  cluster: ICluster;
  executionRole: IRole;
  logGroup: ILogGroup;
  metricsLogGroup: ILogGroup;
  environment: Record<string, string>;
  ledger: ITable;
  managedPathPrefix: string;
  subnets: string[];
  securityGroup: ISecurityGroup;
  assignPublicIp: string;
}

/**
 * `ips drift --json` on a schedule, as an ECS task of the same image, with the
 * agent beside it so the audit's drift_found reaches CloudWatch. Its role
 * reads the ledger and IAM under the managed path; it cannot write IAM
 * (--repair is an operator's decision, never scheduled).
 */
export function addDriftAudit(scope: Construct, props: DriftAuditProps): { taskDefinition: FargateTaskDefinition; role: InlinePolicyRole; rule: CfnRule } {
  const schedule = new CfnParameter(scope, 'DriftAuditSchedule', {
    type: 'String',
    default: 'rate(1 hour)',
    allowedPattern: '^(rate|cron)\\(.+\\)$',
    description: 'EventBridge schedule of the drift audit (`ips drift --json` as an ECS task), e.g. rate(1 hour) or cron(0 6 * * ? *).',
  });
  const state = new CfnParameter(scope, 'DriftAuditState', {
    type: 'String',
    default: 'ENABLED',
    allowedValues: ['ENABLED', 'DISABLED'],
    description: 'DISABLED keeps the scheduled drift audit from running.',
  });

  const ecsTasks = new ServicePrincipal('ecs-tasks.amazonaws.com').withConditions({
    StringEquals: { 'aws:SourceAccount': Aws.ACCOUNT_ID },
    ArnLike: { 'aws:SourceArn': `arn:${Aws.PARTITION}:ecs:${Aws.REGION}:${Aws.ACCOUNT_ID}:*` },
  });
  const role = named(
    new InlinePolicyRole(scope, 'DriftAuditRole', {
      description: 'iam-policy-stream scheduled drift audit: reads the ledger and the IAM policies under the managed path; no IAM write.',
      assumedBy: ecsTasks,
      policyName: 'drift-audit',
    }),
  );
  const managedPolicies = `arn:${Aws.PARTITION}:iam::${Aws.ACCOUNT_ID}:policy${props.managedPathPrefix}*`;
  role.addToPrincipalPolicy(new PolicyStatement({ sid: 'ReadManagedPolicies', actions: DRIFT_IAM_READ_ACTIONS, resources: [managedPolicies] }));
  role.addToPrincipalPolicy(new PolicyStatement({ sid: 'ListAccountPolicies', actions: DRIFT_IAM_LIST_ACTIONS, resources: ['*'] }));
  role.grantAs('ReadLedger', () => props.ledger.grant(role, ...DRIFT_LEDGER_ACTIONS));
  role.addToPrincipalPolicy(metricsAgentStatement(props.metricsLogGroup));
  acknowledge(role, {
    'AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:iam::<AWS::AccountId>:policy<ManagedPathPrefix>*]':
      'The audit reads the tags of policies under the managed path (their names come from the event stream): the wildcard is the path, a prefix ending in "/" that ManagedPathPrefix cannot set to "/". Reads only: ListPolicyTags.',
    'AwsSolutions-IAM5[Resource::*]':
      'iam:GetAccountAuthorizationDetails has no resource type (IAM grants it on "*" only). It returns every customer-managed policy with its documents, a page per 1,000, so the audit costs a call per 1,000 policies rather than three per policy against the account-wide rate limit the workers share. It is read-only; the audit filters it to the managed path before it looks at a document, and keeps only the path of the others (to tell a policy moved to another path from a missing one).',
  });

  const taskDefinition = named(new FargateTaskDefinition(scope, 'DriftAuditTaskDefinition', {
    family: `${props.app}-drift-audit`,
    cpu: 512,
    memoryLimitMiB: 1024,
    runtimePlatform: { operatingSystemFamily: OperatingSystemFamily.LINUX, cpuArchitecture: CpuArchitecture.of(props.cpuArchitecture) },
    executionRole: props.executionRole,
    taskRole: role,
  }));
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
      "The environment holds names (application, ledger table, managed path, metrics namespace and log group), the agent's endpoint and its EMF-only configuration, all of them in the stack already; no secret is passed, and the audit gets its credentials from its task role.",
  });

  // EventBridge starts the task with a role of its own: RunTask of this task definition in this cluster, and passing its two roles to ECS.
  const eventsRole = named(
    new InlinePolicyRole(scope, 'DriftAuditScheduleRole', {
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
  const rule = new CfnRule(scope, 'DriftAuditRule', {
    description: `${props.app}: ips drift --json (audit only, never --repair)`,
    scheduleExpression: schedule.valueAsString,
    state: state.valueAsString,
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
  });
  return { taskDefinition, role, rule };
}
