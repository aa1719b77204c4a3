// The stack's operations side (infra/aws/operations.ts): every alarm watches a
// metric the code publishes (same namespace, name and dimension set, derived
// from METRIC_SPECS through the EMF publisher itself, with the labels the
// code's calls give each metric) or an AWS metric the stack turns on; the
// agent sidecar is the route of those metrics; the scheduled drift audit runs
// the audit, never --repair, with a role that can only read; the thresholds
// are documented parameters.
import test from 'ava';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Template } from 'aws-cdk-lib/assertions';
import { buildApp } from '../../infra/aws/app.js';
import { TemplateResolver } from '../../infra/aws/least-privilege.js';
import type { Json, JsonObject, Statement } from '../../infra/aws/least-privilege.js';
import { DRIFT_COMMAND, DRIFT_CONTAINER_NAME, DRIFT_IAM_LIST_ACTIONS, DRIFT_IAM_READ_ACTIONS, DRIFT_LEDGER_ACTIONS } from '../../infra/aws/drift-audit.js';
import { AGENT_CONFIG, AGENT_CONTAINER_NAME, DEFAULT_AGENT_IMAGE, IAM_THROTTLING_OUTCOME, METRICS_AGENT_ACTIONS } from '../../infra/aws/operations.js';
import { IAM_WRITE_ACTIONS } from '../../infra/aws/worker-role.js';
import { CONTAINER_NAME } from '../../infra/aws/workers.js';
import { loadConfig } from '../../src/config/config.js';
import { isRetriable } from '../../src/faults/classify.js';
import { DEFAULT_AGENT_ENDPOINT, EmfPublisher, StreamSink } from '../../src/metrics/emf.js';
import { METRIC, METRIC_SPECS, Metrics } from '../../src/metrics/metrics.js';
import type { MetricName } from '../../src/metrics/metrics.js';
import { publishAuditMetrics } from '../../src/ops/commands/drift.js';

const root = resolve(import.meta.dirname, '..', '..');
const read = (path: string) => readFileSync(join(root, path), 'utf8');
const outdir = mkdtempSync(join(tmpdir(), 'ips-ops-'));
test.after.always(() => rmSync(outdir, { recursive: true, force: true }));

const template = Template.fromStack(buildApp({ outdir, nag: false }).stack).toJSON() as JsonObject;
const resources = template.Resources as Record<string, JsonObject>;
const parameters = template.Parameters as Record<string, JsonObject>;

/** A deployment with a namespace and an application name of its own, so a constant in place of a parameter shows. */
const SETTINGS = { ImageUri: 'image', VpcId: 'vpc-1', SubnetIds: ['subnet-1'], ApplicationName: 'ips-prod', MetricsNamespace: 'Platform/IPS' };
const resolver = new TemplateResolver(template, SETTINGS);
const resolved = (id: string) => resolver.resolve(resources[id]!) as JsonObject;
const propsOf = (id: string) => resolved(id).Properties as JsonObject;
const list = (value: Json | undefined): string[] => (value === undefined || value === null ? [] : ([] as string[]).concat(value as string | string[]));

const APP = SETTINGS.ApplicationName;
const NAMESPACE = SETTINGS.MetricsNamespace;
const SHARD = 'shardId-000000000007';
const WORKER = 'ip-10-0-1-23.eu-west-1.compute.internal';

// --- what the code publishes ------------------------------------------------

/** Every source file under src/. */
function sources(dir = join(root, 'src')): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? sources(path) : path.endsWith('.ts') ? [path] : [];
  });
}

/** The label names each metric is counted, set or observed with in src/ (`METRIC.x, { label: ... }`); [] for a call without labels. */
const LABELS: Map<MetricName, Set<string>> = (() => {
  const byKey = new Map(Object.entries(METRIC) as [string, MetricName][]);
  const labels = new Map<MetricName, Set<string>>();
  for (const file of sources()) {
    for (const match of readFileSync(file, 'utf8').matchAll(/METRIC\.(\w+)\s*,\s*(?:[\w.]+\s*,\s*)?(\{[^}]*\})?/g)) {
      const name = byKey.get(match[1]!);
      if (!name) continue;
      const keys = [...(match[2] ?? '').matchAll(/(\w+)\s*:/g)].map((key) => key[1]!).sort();
      const set = labels.get(name) ?? new Set<string>();
      set.add(keys.join(','));
      labels.set(name, set);
    }
  }
  return labels;
})();

interface EmfDocument {
  _aws: { CloudWatchMetrics: { Namespace: string; Dimensions: string[][]; Metrics: { Name: string; Unit: string }[] }[] };
  [key: string]: unknown;
}

/** The dimension sets (names, sorted) the EMF publisher gives a metric with these labels, as a record processor of a shard publishes it. */
async function publishedDimensionSets(name: MetricName, labels: string[]): Promise<Set<string>> {
  const lines: string[] = [];
  const metrics = new Metrics();
  const values = Object.fromEntries(labels.map((label) => [label, `${label}-value`]));
  const kind = METRIC_SPECS[name].kind;
  if (kind === 'counter') metrics.increment(name, values);
  else if (kind === 'gauge') metrics.gauge(name, 1, values);
  else metrics.observe(name, 1, values);
  const publisher = new EmfPublisher({ metrics, sink: new StreamSink({ write: (text: string) => lines.push(text) }), namespace: NAMESPACE, app: APP, worker: WORKER, shard: () => SHARD });
  await publisher.publish();
  const sets = new Set<string>();
  for (const document of lines.map((line) => JSON.parse(line) as EmfDocument)) {
    for (const directive of document._aws.CloudWatchMetrics) {
      if (directive.Namespace !== NAMESPACE || !directive.Metrics.some((metric) => metric.Name === name)) continue;
      for (const set of directive.Dimensions) sets.add([...set].sort().join(','));
    }
  }
  return sets;
}

// --- what the alarms watch --------------------------------------------------

interface MetricRef {
  namespace: string;
  metricName: string;
  /** Dimension names, sorted. */
  dimensions: string[];
  /** Dimension values the alarm fixes (a metric's own dimensions, or a query's WHERE). */
  values: Record<string, string>;
  source: 'metric' | 'insights';
}

/** `SELECT FN(metric) FROM SCHEMA("namespace", dims...) WHERE a = 'x' AND b = 'y'` */
function parseInsights(expression: string): MetricRef {
  const match = /^SELECT (SUM|MAX|MIN|AVG|COUNT)\((\w+)\) FROM SCHEMA\("([^"]+)", ([\w, ]+)\)(?: WHERE (.+?))?(?: GROUP BY .+)?$/.exec(expression);
  if (!match) throw new Error(`not a Metrics Insights query this test reads: ${expression}`);
  const values: Record<string, string> = {};
  for (const clause of (match[5] ?? '').split(' AND ').filter(Boolean)) {
    const condition = /^(\w+) (=|!=) '([^']*)'$/.exec(clause);
    if (!condition) throw new Error(`unexpected condition ${clause}`);
    if (condition[2] === '=') values[condition[1]!] = condition[3]!;
  }
  return {
    namespace: match[3]!,
    metricName: match[2]!,
    dimensions: match[4]!
      .split(',')
      .map((d) => d.trim())
      .sort(),
    values,
    source: 'insights',
  };
}

function metricRef(metric: JsonObject): MetricRef {
  const dimensions = (metric.Dimensions ?? []) as JsonObject[];
  return {
    namespace: String(metric.Namespace),
    metricName: String(metric.MetricName),
    dimensions: dimensions.map((dimension) => String(dimension.Name)).sort(),
    values: Object.fromEntries(dimensions.map((dimension) => [String(dimension.Name), String(dimension.Value)])),
    source: 'metric',
  };
}

/** The metrics an alarm reads: its own metric, or each metric and Metrics Insights query of its expression. */
function alarmMetrics(properties: JsonObject): MetricRef[] {
  if (properties.MetricName !== undefined) return [metricRef(properties)];
  return ((properties.Metrics ?? []) as JsonObject[]).flatMap((query) => {
    if (query.MetricStat) return [metricRef((query.MetricStat as JsonObject).Metric as JsonObject)];
    const expression = String(query.Expression);
    return expression.startsWith('SELECT ') ? [parseInsights(expression)] : [];
  });
}

const alarmIds = Object.keys(resources)
  .filter((id) => resources[id]!.Type === 'AWS::CloudWatch::Alarm')
  .sort();

test('the stack ships nine alarms, one per thing that needs a person', (t) => {
  t.deepEqual(alarmIds, [
    'DeadLettersAlarm',
    'DriftAuditFailedAlarm',
    'DriftFoundAlarm',
    'IamBreakerOpenAlarm',
    'IamThrottlingAlarm',
    'LagAlarm',
    'ParkedRecordsAlarm',
    'StuckShardAlarm',
    'WorkersBelowMinimumAlarm',
  ]);
  for (const id of alarmIds) {
    const properties = propsOf(id);
    t.is(properties.AlarmName, `${APP}-${id.replace(/Alarm$/, '')}`);
    t.deepEqual((resources[id]!.Properties as JsonObject).AlarmActions, [{ Ref: 'AlarmTopic' }], id);
    t.deepEqual((resources[id]!.Properties as JsonObject).OKActions, [{ Ref: 'AlarmTopic' }], id);
    t.true(String(properties.AlarmDescription).length > 40, id);
  }
});

for (const id of alarmIds) {
  test(`${id} watches a metric that is published: the code's namespace, name and dimension set, or an AWS service's`, async (t) => {
    const refs = alarmMetrics(propsOf(id));
    t.true(refs.length > 0, 'the alarm reads a metric');
    for (const ref of refs) {
      if (ref.namespace === 'ECS/ContainerInsights') {
        // Container Insights, which the stack enables on the cluster, publishes the service's task counts.
        t.is(ref.metricName, 'RunningTaskCount');
        t.deepEqual(ref.dimensions, ['ClusterName', 'ServiceName']);
        t.deepEqual(ref.values, { ClusterName: resolver.resolve({ Ref: 'Cluster' }), ServiceName: resolver.resolve({ 'Fn::GetAtt': ['Service', 'Name'] }) });
        t.deepEqual(propsOf('Cluster').ClusterSettings, [{ Name: 'containerInsights', Value: 'enabled' }]);
        continue;
      }
      // The code's own metrics: the namespace the workers are configured with.
      t.is(ref.namespace, NAMESPACE, `${id}: namespace`);
      t.true(ref.metricName in METRIC_SPECS, `${id}: ${ref.metricName} is in METRIC_SPECS`);
      const name = ref.metricName as MetricName;
      const labels = ref.dimensions.filter((dimension) => !['App', 'ShardId', 'Worker'].includes(dimension));
      const labelSets = LABELS.get(name) ?? new Set(['']);
      t.true(labelSets.has(labels.join(',')), `${id}: ${name} is published with labels [${[...labelSets].join('] or [')}], not [${labels.join(',')}]`);
      const published = await publishedDimensionSets(name, labels);
      t.true(published.has(ref.dimensions.join(',')), `${id}: ${name} is published with dimension sets ${[...published].join(' | ')}, not ${ref.dimensions.join(',')}`);
      t.is(ref.values.App, APP, `${id}: the application's own metrics`);
      for (const key of Object.keys(ref.values)) t.true(ref.dimensions.includes(key), `${id}: ${key} is a dimension of the set`);
    }
  });
}

test('the throttling alarm counts IAM calls that ended in the error name IAM throttles with, which the code treats as passing', (t) => {
  const [ref] = alarmMetrics(propsOf('IamThrottlingAlarm'));
  t.like(ref, { metricName: METRIC.awsCalls, values: { service: 'iam', outcome: IAM_THROTTLING_OUTCOME } });
  // src/aws/clients.ts observes the IAM client under the service name `iam`.
  t.regex(read('src/aws/clients.ts'), /observeCalls\(clients\.iam, 'iam', observer\)/);
  t.true(isRetriable(Object.assign(new Error('Rate exceeded'), { name: IAM_THROTTLING_OUTCOME, $metadata: { httpStatusCode: 400 } })));
});

test('the drift alarms watch exactly the document `ips drift` publishes', async (t) => {
  const lines: string[] = [];
  const environment = containerEnvironment('DriftAuditTaskDefinition', DRIFT_CONTAINER_NAME);
  const config = loadConfig({ ...environment, IPS_METRICS_SINK: 'stderr' });
  await publishAuditMetrics(config, { drifted: 3, failed: true }, { IPS_METRICS_SINK: 'stderr' }, { write: (text: string) => lines.push(text) });
  t.is(lines.length, 1);
  const document = JSON.parse(lines[0]!) as EmfDocument;
  const [directive] = document._aws.CloudWatchMetrics;
  t.is(directive!.Namespace, NAMESPACE);
  t.deepEqual(directive!.Dimensions, [['App']]);
  t.deepEqual(directive!.Metrics.map((metric) => metric.Name).sort(), [METRIC.driftAuditFailed, METRIC.driftFound]);
  t.is(document[METRIC.driftFound], 3);
  t.is(document[METRIC.driftAuditFailed], 1);
  t.is(document.App, APP);
  t.deepEqual(alarmMetrics(propsOf('DriftFoundAlarm')), [{ namespace: directive!.Namespace, metricName: METRIC.driftFound, dimensions: ['App'], values: { App: APP }, source: 'metric' }]);
  t.deepEqual(alarmMetrics(propsOf('DriftAuditFailedAlarm')), [{ namespace: directive!.Namespace, metricName: METRIC.driftAuditFailed, dimensions: ['App'], values: { App: APP }, source: 'metric' }]);
  // An audit that could not run says only that.
  const failed: string[] = [];
  await publishAuditMetrics(config, { failed: true }, { IPS_METRICS_SINK: 'stderr' }, { write: (text: string) => failed.push(text) });
  const failure = JSON.parse(failed[0]!) as EmfDocument;
  t.deepEqual(
    failure._aws.CloudWatchMetrics[0]!.Metrics.map((metric) => metric.Name),
    [METRIC.driftAuditFailed],
  );
  // At a terminal, with no sink asked for, the audit writes no metric.
  const quiet: string[] = [];
  await publishAuditMetrics(loadConfig({}), { drifted: 3, failed: false }, {}, { write: (text: string) => quiet.push(text) });
  t.deepEqual(quiet, []);
});

test('an audit that reports nothing is no all-clear: both drift alarms count a missing hour as breaching, over DriftAuditWindowHours hours that cover the schedule', (t) => {
  for (const id of ['DriftFoundAlarm', 'DriftAuditFailedAlarm']) {
    t.like(propsOf(id), { TreatMissingData: 'breaching', Period: 3600, Statistic: 'Maximum' }, id);
    t.deepEqual((resources[id]!.Properties as JsonObject).EvaluationPeriods, { Ref: 'DriftAuditWindowHours' }, id);
    t.deepEqual((resources[id]!.Properties as JsonObject).DatapointsToAlarm, { Ref: 'DriftAuditWindowHours' }, id);
  }
  t.like(propsOf('DriftAuditFailedAlarm'), { Threshold: 1, ComparisonOperator: 'GreaterThanOrEqualToThreshold' });
  // The default schedule runs an audit every hour: the default window holds at least one.
  t.is(parameters.DriftAuditSchedule!.Default, 'rate(1 hour)');
  t.true(Number(parameters.DriftAuditWindowHours!.Default) >= 1);
  t.is(parameters.DriftAuditWindowHours!.MaxValue, 24);
});

test('every threshold is a parameter with a default, described, and in the README with that default', (t) => {
  const readme = read('README.md');
  const thresholds = ['LagAlarmSeconds', 'StuckShardMinutes', 'DeadLetterAlarmThreshold', 'IamThrottleAlarmCalls', 'BreakerOpenMinutes', 'DriftAlarmThreshold', 'DriftAuditWindowHours', 'MinWorkers'];
  const referenced = new Set(
    alarmIds.flatMap((id) => {
      const properties = resources[id]!.Properties as JsonObject;
      return [properties.Threshold, properties.EvaluationPeriods].flatMap((value) => (value && typeof value === 'object' && 'Ref' in value ? [String(value.Ref)] : []));
    }),
  );
  t.deepEqual([...referenced].sort(), [...thresholds].sort());
  for (const name of [...thresholds, 'AlertEmail', 'DriftAuditSchedule', 'DriftAuditState', 'MetricsNamespace', 'CloudWatchAgentImage']) {
    const parameter = parameters[name]!;
    t.truthy(parameter, name);
    t.not(parameter.Default, undefined, `${name} has a default`);
    t.true(String(parameter.Description).length > 20, `${name} is described`);
    const row = readme.split('\n').find((line) => line.startsWith(`| \`${name}\``));
    t.truthy(row, `README's parameter table has ${name}`);
    if (row && parameter.Default !== '') t.true(row.includes(`\`${String(parameter.Default)}\``), `README gives ${name}'s default ${String(parameter.Default)}: ${row}`);
  }
  t.is(parameters.MetricsNamespace!.Default, loadConfig({}).metricsNamespace);
  t.is(parameters.CloudWatchAgentImage!.Default, DEFAULT_AGENT_IMAGE);
});

test('the e-mail subscription exists only when AlertEmail is set', (t) => {
  t.is(resources.AlertEmailSubscription!.Condition, 'HasAlertEmail');
  t.false(new TemplateResolver(template, SETTINGS).exists('AlertEmailSubscription'));
  t.true(new TemplateResolver(template, { ...SETTINGS, AlertEmail: 'oncall@example.com' }).exists('AlertEmailSubscription'));
  t.like(propsOf('AlertEmailSubscription'), { Protocol: 'email', TopicArn: 'AlarmTopic' });
  // CloudWatch alarms of this account only may publish; the topic takes TLS only.
  const statements = (propsOf('AlarmTopicPolicy').PolicyDocument as JsonObject).Statement as unknown as (Statement & { Principal?: JsonObject })[];
  t.true(statements.some((statement) => statement.Effect === 'Deny' && JSON.stringify(statement.Condition).includes('aws:SecureTransport')));
  const allow = statements.filter((statement) => statement.Effect === 'Allow');
  t.deepEqual(
    allow.map((statement) => statement.Principal),
    [{ Service: 'cloudwatch.amazonaws.com' }],
  );
  t.like(allow[0]!.Condition, { StringEquals: { 'aws:SourceAccount': '123456789012' } });
});

// --- the metrics' route -------------------------------------------------------

function containers(taskDefinition: string): JsonObject[] {
  return propsOf(taskDefinition).ContainerDefinitions as JsonObject[];
}

function containerEnvironment(taskDefinition: string, name: string): Record<string, string> {
  const container = containers(taskDefinition).find((item) => item.Name === name)!;
  return Object.fromEntries(((container.Environment ?? []) as JsonObject[]).map((variable) => [String(variable.Name), String(variable.Value)]));
}

for (const [taskDefinition, name] of [
  ['TaskDefinition', CONTAINER_NAME],
  ['DriftAuditTaskDefinition', DRIFT_CONTAINER_NAME],
] as const) {
  test(`${taskDefinition}: the CloudWatch agent sidecar listens for EMF, and ${name} publishes to it under the stack's namespace`, (t) => {
    const agent = containers(taskDefinition).find((item) => item.Name === AGENT_CONTAINER_NAME)!;
    t.truthy(agent);
    t.like(agent, { Image: DEFAULT_AGENT_IMAGE, Essential: false });
    t.deepEqual(JSON.parse(containerEnvironment(taskDefinition, AGENT_CONTAINER_NAME).CW_CONFIG_CONTENT!), AGENT_CONFIG);
    t.like(agent.LogConfiguration, { LogDriver: 'awslogs', Options: { 'awslogs-stream-prefix': AGENT_CONTAINER_NAME } });
    const main = containers(taskDefinition).find((item) => item.Name === name)!;
    t.deepEqual(main.DependsOn, [{ ContainerName: AGENT_CONTAINER_NAME, Condition: 'START' }]);
    // Read as the process reads it: the agent sink, at the agent's endpoint, under the stack's namespace.
    const environment = containerEnvironment(taskDefinition, name);
    const config = loadConfig(environment);
    t.is(config.metricsSink, 'agent');
    t.is(config.emfAgentEndpoint, DEFAULT_AGENT_ENDPOINT);
    t.is(config.metricsNamespace, NAMESPACE);
    t.is(config.appName, APP);
    t.is(environment.AWS_EMF_LOG_GROUP_NAME, String(propsOf('MetricsLogGroup').LogGroupName));
  });
}

test("the agent's grant (on the task role it runs with) is writing its log group, nothing else", (t) => {
  const metricsLogGroupArn = resolver.resolve({ 'Fn::GetAtt': ['MetricsLogGroup', 'Arn'] });
  t.is(metricsLogGroupArn, `arn:aws:logs:eu-west-1:123456789012:log-group:${APP}-metrics:*`);
  for (const role of ['TaskRole', 'DriftAuditRole']) {
    const statements = ((propsOf(role).Policies as JsonObject[])[0]!.PolicyDocument as JsonObject).Statement as unknown as Statement[];
    const logs = statements.filter((statement) => list(statement.Action as Json).some((action) => action.startsWith('logs:')));
    t.deepEqual(
      logs.map((statement) => ({ actions: list(statement.Action as Json).sort(), resources: list(statement.Resource as Json) })),
      [{ actions: [...METRICS_AGENT_ACTIONS].sort(), resources: [metricsLogGroupArn as string] }],
      role,
    );
  }
  // The log group is the stack's (retention, removal), named as src/metrics/emf.ts names it by default.
  t.is(propsOf('MetricsLogGroup').LogGroupName, `${loadConfig({ IPS_APP_NAME: APP }).appName}-metrics`);
  t.deepEqual((resources.MetricsLogGroup!.Properties as JsonObject).RetentionInDays, { Ref: 'LogRetentionDays' });
});

// --- the scheduled drift audit ------------------------------------------------

test('the drift audit runs on a schedule as `ips drift --json`, never --repair', (t) => {
  const rule = propsOf('DriftAuditRule');
  t.like(resources.DriftAuditRule!.Properties, { ScheduleExpression: { Ref: 'DriftAuditSchedule' }, State: { Ref: 'DriftAuditState' } });
  t.is(parameters.DriftAuditSchedule!.Default, 'rate(1 hour)');
  const [target] = rule.Targets as JsonObject[];
  t.like(target, { Arn: resolver.resolve({ 'Fn::GetAtt': ['Cluster', 'Arn'] }), RoleArn: resolver.resolve({ 'Fn::GetAtt': ['DriftAuditScheduleRole', 'Arn'] }) });
  t.like(target!.EcsParameters, {
    TaskDefinitionArn: 'DriftAuditTaskDefinition',
    LaunchType: 'FARGATE',
    TaskCount: 1,
  });
  // The service's network: its subnets, its security group (HTTPS out only), its public IP setting.
  const network = (id: string, path: (properties: JsonObject) => Json) => path(resources[id]!.Properties as JsonObject);
  t.deepEqual(
    network('DriftAuditRule', (p) => (((p.Targets as JsonObject[])[0]!.EcsParameters as JsonObject).NetworkConfiguration as JsonObject).AwsVpcConfiguration!),
    network('Service', (p) => (p.NetworkConfiguration as JsonObject).AwsvpcConfiguration!),
  );
  const audit = containers('DriftAuditTaskDefinition').find((item) => item.Name === DRIFT_CONTAINER_NAME)!;
  const command = [...list(audit.EntryPoint as Json), ...list(audit.Command as Json)];
  t.deepEqual(command, DRIFT_COMMAND);
  t.deepEqual(command, ['node', 'dist/ops/cli.js', 'drift', '--json']);
  t.false(command.includes('--repair'));
  t.is(audit.Image, 'image', "the workers' image");
  t.like(audit, { User: '10001:10001', ReadonlyRootFilesystem: true });
  t.true(existsSync(join(root, 'src/ops/cli.ts')));
  // It needs the ledger's name and the managed path, as the worker has them.
  t.like(containerEnvironment('DriftAuditTaskDefinition', DRIFT_CONTAINER_NAME), {
    IPS_APP_NAME: APP,
    IPS_LEDGER_TABLE: loadConfig({ IPS_APP_NAME: APP }).ledgerTable,
    IPS_MANAGED_PATH_PREFIX: loadConfig({}).managedPathPrefix,
  });
});

test("the drift audit's role reads what the audit reads and writes nothing in IAM or the ledger", (t) => {
  const statements = ((propsOf('DriftAuditRole').Policies as JsonObject[])[0]!.PolicyDocument as JsonObject).Statement as unknown as Statement[];
  const actions = statements.flatMap((statement) => list(statement.Action as Json));
  // IAM: the commands src/ops/drift-audit.ts sends (under the managed path), and the account listing it pages (src/iam/policy-details.ts) on "*".
  const imported = /import\s*\{([^}]*)\}\s*from\s*'@aws-sdk\/client-iam'/.exec(read('src/ops/drift-audit.ts'))?.[1] ?? '';
  const called = [...imported.matchAll(/\b(\w+)Command\b/g)].map((match) => `iam:${match[1]}`).sort();
  t.deepEqual(called, [...DRIFT_IAM_READ_ACTIONS].sort());
  t.regex(read('src/ops/drift-audit.ts'), /listPolicyDetails\(iam\)/);
  t.regex(read('src/iam/policy-details.ts'), /export async function listPolicyDetails[\s\S]*?new GetAccountAuthorizationDetailsCommand\(\{ Filter: \['LocalManagedPolicy'\]/);
  t.deepEqual(actions.filter((action) => action.startsWith('iam:')).sort(), [...DRIFT_IAM_READ_ACTIONS, ...DRIFT_IAM_LIST_ACTIONS].sort());
  t.false(actions.some((action) => IAM_WRITE_ACTIONS.includes(action)));
  const managed = `arn:aws:iam::123456789012:policy${loadConfig({}).managedPathPrefix}*`;
  for (const statement of statements.filter((item) => list(item.Action as Json).some((action) => action.startsWith('iam:')))) {
    const onStar = list(statement.Resource as Json).includes('*');
    t.deepEqual(list(statement.Resource as Json), onStar ? ['*'] : [managed], statement.Sid);
    if (onStar) t.deepEqual(list(statement.Action as Json), DRIFT_IAM_LIST_ACTIONS);
  }
  // DynamoDB: DescribeTable (the progress estimate in drift.ts), Scan (ledger.entries) and GetItem (ledger.get), on the ledger only.
  t.regex(read('src/ops/commands/drift.ts'), /new DescribeTableCommand\(/);
  t.regex(read('src/ledger/dynamodb-ledger.ts'), /async \*entries\(\)[\s\S]*?paginateScan[\s\S]*?async get\([\s\S]*?new GetItemCommand\(/);
  const dynamodb = statements.filter((statement) => list(statement.Action as Json).some((action) => action.startsWith('dynamodb:')));
  t.deepEqual(dynamodb.flatMap((statement) => list(statement.Action as Json)).sort(), [...DRIFT_LEDGER_ACTIONS].sort());
  t.deepEqual([...new Set(dynamodb.flatMap((statement) => list(statement.Resource as Json)))], [resolver.resolve({ 'Fn::GetAtt': ['LedgerTable', 'Arn'] })]);
  t.deepEqual(
    actions.filter((action) => !action.startsWith('iam:') && !action.startsWith('dynamodb:') && !action.startsWith('logs:')),
    [],
  );
  // EventBridge's role starts this task definition in this cluster and passes its two roles to ECS, nothing else.
  const schedule = ((propsOf('DriftAuditScheduleRole').Policies as JsonObject[])[0]!.PolicyDocument as JsonObject).Statement as unknown as Statement[];
  t.deepEqual(
    schedule.map((statement) => ({ actions: list(statement.Action as Json), resources: list(statement.Resource as Json) })),
    [
      { actions: ['ecs:RunTask'], resources: ['DriftAuditTaskDefinition'] },
      { actions: ['iam:PassRole'], resources: [resolver.resolve({ 'Fn::GetAtt': ['DriftAuditRole', 'Arn'] }) as string, resolver.resolve({ 'Fn::GetAtt': ['TaskExecutionRole', 'Arn'] }) as string] },
    ],
  );
});

// --- the dashboard ------------------------------------------------------------

test('the dashboard shows the alarms and the metrics per shard and per worker', async (t) => {
  const body = JSON.parse(String(propsOf('Dashboard').DashboardBody)) as { widgets: { type: string; properties: JsonObject }[] };
  t.is(propsOf('Dashboard').DashboardName, APP);
  const status = body.widgets.find((widget) => widget.type === 'alarm')!;
  t.deepEqual(list(status.properties.alarms as Json).sort(), alarmIds.map((id) => `${id}.Arn`).sort());
  const queries = body.widgets
    .filter((widget) => widget.type === 'metric')
    .flatMap((widget) => (widget.properties.metrics as JsonObject[][]).flat())
    .flatMap((entry) => (entry && typeof entry === 'object' && 'expression' in entry ? [String(entry.expression)] : []))
    .filter((expression) => expression.startsWith('SELECT '))
    .map((expression) => ({ expression, ref: parseInsights(expression) }));
  const grouped = (by: string) =>
    queries
      .filter((query) => query.expression.includes(`GROUP BY ${by}`))
      .map((query) => query.ref.metricName)
      .sort();
  t.deepEqual(grouped('ShardId'), [METRIC.batchDurationMs, METRIC.deadLettersWritten, METRIC.oldestUnsettledAgeMs, METRIC.outcomes, METRIC.recordAgeMs].sort());
  t.deepEqual(grouped('Worker'), [METRIC.awsCalls, METRIC.iamBreakerState, METRIC.rssBytes].sort());
  for (const { ref, expression } of queries) {
    t.is(ref.namespace, NAMESPACE);
    t.is(ref.values.App, APP);
    const name = ref.metricName as MetricName;
    const labels = ref.dimensions.filter((dimension) => !['App', 'ShardId', 'Worker'].includes(dimension));
    t.true((LABELS.get(name) ?? new Set([''])).has(labels.join(',')), expression);
    t.true((await publishedDimensionSets(name, labels)).has(ref.dimensions.join(',')), expression);
  }
});
