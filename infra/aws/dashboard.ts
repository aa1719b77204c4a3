// The CloudWatch dashboard: per shard and per worker, from Metrics Insights
// queries over the metrics the code publishes (operations.ts), with the
// alarms' states on top.
import { Duration } from 'aws-cdk-lib';
import { AlarmStatusWidget, Dashboard, GraphWidget, MathExpression, TextWidget } from 'aws-cdk-lib/aws-cloudwatch';
import type { IAlarm, IMetric } from 'aws-cdk-lib/aws-cloudwatch';
import type { CfnService, ICluster } from 'aws-cdk-lib/aws-ecs';
import { Construct } from 'constructs';
import { METRIC } from '../../src/metrics/metrics.js';
import { keepLogicalId } from './cfn.js';
import { applicationMetric, insightsMetric, insightsQuery, serviceTaskMetric } from './operations.js';

export interface OperationsDashboardProps {
  readonly appName: string;
  /** IPS_METRICS_NAMESPACE: where the workers' own metrics are. */
  readonly namespace: string;
  /** The KCL publishes its own metrics under the application name. */
  readonly kclNamespace: string;
  readonly cluster: ICluster;
  readonly service: CfnService;
  readonly alarms: IAlarm[];
}

export class OperationsDashboard extends Construct {
  readonly dashboard: Dashboard;

  constructor(scope: Construct, id: string, props: OperationsDashboardProps) {
    super(scope, id);
    const { appName: app, namespace } = props;
    const oneMinute = Duration.minutes(1);
    const fiveMinutes = Duration.minutes(5);
    const oneHour = Duration.hours(1);
    const appMetric = (metricName: string, statistic: string, period: Duration) => applicationMetric({ namespace, app, metricName, statistic, period });
    const serviceTasks = (metricName: string, statistic: string) => serviceTaskMetric({ cluster: props.cluster, service: props.service, metricName, statistic, period: oneMinute });
    const perShard = (metric: string, fn: 'SUM' | 'MAX', label: string, period = oneMinute, extra: string[] = []) =>
      insightsMetric(insightsQuery({ fn, namespace, metric, dimensions: ['App', 'ShardId', ...extra], where: { App: app }, groupBy: ['ShardId'] }), label, period);
    const perWorker = (metric: string, fn: 'SUM' | 'MAX', label: string, extra: string[] = [], whereNot: Record<string, string> = {}, groupBy: string[] = []) =>
      insightsMetric(insightsQuery({ fn, namespace, metric, dimensions: ['App', 'Worker', ...extra], where: { App: app }, whereNot, groupBy: ['Worker', ...groupBy] }), label, oneMinute);
    const graph = (title: string, left: IMetric[], options: { width?: number; leftLabel?: string } = {}) =>
      new GraphWidget({ title, left, width: options.width ?? 8, height: 6, ...(options.leftLabel ? { leftYAxis: { label: options.leftLabel, showUnits: false } } : {}) });

    const dashboard = keepLogicalId(new Dashboard(this, 'Dashboard', { dashboardName: app, defaultInterval: Duration.hours(3) }));
    this.dashboard = dashboard;
    dashboard.addWidgets(
      new TextWidget({
        markdown: `# ${app}\nPer shard and per worker (Metrics Insights, namespace \`${namespace}\`, last 3 hours). Alarms go to the SNS topic of the stack; docs/operations.md, "Alarms", says what each one means.`,
        width: 24,
        height: 2,
      }),
    );
    dashboard.addWidgets(new AlarmStatusWidget({ title: 'Alarms', alarms: props.alarms, width: 24, height: 3 }));
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
      graph('Running workers', [serviceTasks('RunningTaskCount', 'Minimum').with({ label: 'running' }), serviceTasks('DesiredTaskCount', 'Maximum').with({ label: 'desired' })], { width: 12 }),
      graph(
        'Drift found by the scheduled audit',
        [appMetric(METRIC.driftFound, 'Maximum', oneHour).with({ label: 'drifted policies' }), appMetric(METRIC.driftAuditFailed, 'Maximum', oneHour).with({ label: 'audit failed (1)' })],
        { width: 12 },
      ),
    );
  }
}
