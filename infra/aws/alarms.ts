// The alarms and the SNS topic they notify, on firing and on recovery. Every
// threshold is a parameter (AlarmParameters); every metric is one the code
// publishes (operations.ts says how it reaches CloudWatch) or one Container
// Insights counts.
import { Aws, CfnCondition, Duration, Fn } from 'aws-cdk-lib';
import type { CfnResource } from 'aws-cdk-lib';
import { Alarm, ComparisonOperator, MathExpression, TreatMissingData } from 'aws-cdk-lib/aws-cloudwatch';
import type { IMetric } from 'aws-cdk-lib/aws-cloudwatch';
import { SnsAction } from 'aws-cdk-lib/aws-cloudwatch-actions';
import type { CfnService, ICluster } from 'aws-cdk-lib/aws-ecs';
import { PolicyStatement, ServicePrincipal } from 'aws-cdk-lib/aws-iam';
import { CfnSubscription, Topic } from 'aws-cdk-lib/aws-sns';
import { Construct } from 'constructs';
import { METRIC } from '../../src/metrics/metrics.js';
import { keepElementId, keepLogicalId } from './cfn.js';
import { IAM_THROTTLING_OUTCOME, applicationMetric, insightsMetric, insightsQuery, serviceTaskMetric } from './operations.js';
import type { AlarmParameters } from './parameters.js';

export interface OperationalAlarmsProps extends AlarmParameters {
  readonly appName: string;
  /** IPS_METRICS_NAMESPACE: where the workers' own metrics are. */
  readonly namespace: string;
  readonly cluster: ICluster;
  readonly service: CfnService;
  /** The WorkersBelowMinimum alarm's threshold (the scaling minimum). */
  readonly minWorkers: number;
}

export class OperationalAlarms extends Construct {
  readonly topic: Topic;
  readonly alarms: Alarm[] = [];

  constructor(scope: Construct, id: string, props: OperationalAlarmsProps) {
    super(scope, id);
    const { appName: app, namespace } = props;

    // --- the topic ------------------------------------------------------------
    // TLS only. Not KMS-encrypted: alarm notifications carry alarm and metric names and values, no
    // record content, and CloudWatch cannot publish to a topic under the AWS managed SNS key.
    const topic = keepLogicalId(new Topic(this, 'AlarmTopic', { displayName: `${app} alarms`, enforceSSL: true }));
    this.topic = topic;
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
    const hasEmail = keepElementId(new CfnCondition(this, 'HasAlertEmail', { expression: Fn.conditionNot(Fn.conditionEquals(props.alertEmail, '')) }));
    const subscription = keepElementId(new CfnSubscription(this, 'AlertEmailSubscription', { topicArn: topic.topicArn, protocol: 'email', endpoint: props.alertEmail }));
    subscription.cfnOptions.condition = hasEmail;

    // --- the metrics ----------------------------------------------------------
    const oneMinute = Duration.minutes(1);
    const fiveMinutes = Duration.minutes(5);
    const oneHour = Duration.hours(1);
    const appMetric = (metricName: string, statistic: string, period: Duration) => applicationMetric({ namespace, app, metricName, statistic, period });
    const recordAge = appMetric(METRIC.recordAgeMs, 'Maximum', oneMinute);
    const oldestUnsettled = appMetric(METRIC.oldestUnsettledAgeMs, 'Maximum', oneMinute);
    const breakerState = appMetric(METRIC.iamBreakerState, 'Maximum', oneMinute);
    // Hour by hour: an audit runs every DriftAuditSchedule, so an hour without its document means an
    // audit that did not run or did not finish (DriftAuditWindowHours of them in a row alarm).
    const driftFound = appMetric(METRIC.driftFound, 'Maximum', oneHour);
    const driftAuditFailed = appMetric(METRIC.driftAuditFailed, 'Maximum', oneHour);
    const runningTasks = serviceTaskMetric({ cluster: props.cluster, service: props.service, metricName: 'RunningTaskCount', statistic: 'Minimum', period: oneMinute });
    const deadLettersWritten = insightsMetric(
      insightsQuery({ fn: 'SUM', namespace, metric: METRIC.deadLettersWritten, dimensions: ['App', 'reason'], where: { App: app } }),
      'dead letters written',
      fiveMinutes,
    );
    const iamThrottled = insightsMetric(
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

    const parkedRecords = insightsMetric(insightsQuery({ fn: 'MAX', namespace, metric: METRIC.parkedRecords, dimensions: ['App', 'account'], where: { App: app } }), 'records parked', fiveMinutes);

    // --- the alarms -----------------------------------------------------------
    const alarm = (
      alarmId: string,
      options: { metric: IMetric; threshold: number; comparisonOperator: ComparisonOperator; evaluationPeriods: number; treatMissingData: TreatMissingData; description: string },
    ) => {
      const created = keepLogicalId(
        new Alarm(this, alarmId, {
          alarmName: `${app}-${alarmId.replace(/Alarm$/, '')}`,
          alarmDescription: options.description,
          metric: options.metric,
          threshold: options.threshold,
          comparisonOperator: options.comparisonOperator,
          evaluationPeriods: options.evaluationPeriods,
          datapointsToAlarm: options.evaluationPeriods,
          treatMissingData: options.treatMissingData,
        }),
      );
      created.addAlarmAction(new SnsAction(topic));
      created.addOkAction(new SnsAction(topic));
      this.alarms.push(created);
      return created;
    };
    alarm('LagAlarm', {
      metric: new MathExpression({ expression: 'age / 1000', usingMetrics: { age: recordAge }, label: 'record age at outcome (s)', period: oneMinute }),
      threshold: props.lagSeconds,
      comparisonOperator: ComparisonOperator.GREATER_THAN_THRESHOLD,
      evaluationPeriods: 3,
      // No record settled: no lag to measure (a record held is the stuck-shard alarm's).
      treatMissingData: TreatMissingData.NOT_BREACHING,
      description:
        'Records settle later than LagAlarmSeconds after they reached the stream (record_age_ms Maximum): the workers fall behind. Scale workers and shards, or look for throttling (docs/operations.md, "Alarms").',
    });
    alarm('StuckShardAlarm', {
      metric: new MathExpression({ expression: 'age / 60000', usingMetrics: { age: oldestUnsettled }, label: 'oldest unsettled record (min)', period: oneMinute }),
      threshold: props.stuckShardMinutes,
      comparisonOperator: ComparisonOperator.GREATER_THAN_THRESHOLD,
      evaluationPeriods: 2,
      treatMissingData: TreatMissingData.NOT_BREACHING,
      description: 'A shard holds a record without an outcome for longer than StuckShardMinutes (oldest_unsettled_age_ms Maximum). `ips status` names the shard and the policy holding it.',
    });
    alarm('DeadLettersAlarm', {
      metric: deadLettersWritten,
      threshold: props.deadLetterThreshold,
      comparisonOperator: ComparisonOperator.GREATER_THAN_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: TreatMissingData.NOT_BREACHING,
      description: 'Dead letters were written (dead_letters_written Sum over every reason). `ips dead-letters list` shows them; redrive after fixing the cause.',
    });
    alarm('ParkedRecordsAlarm', {
      metric: parkedRecords,
      threshold: 0,
      comparisonOperator: ComparisonOperator.GREATER_THAN_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: TreatMissingData.NOT_BREACHING,
      description:
        'Records are parked (parked_records Maximum over the accounts): an account\'s IAM has been unavailable for IPS_PARK_AFTER_MS (breaker open, or its role refused by STS). The other accounts flow on; `ips parked list` shows the parks, the workers apply them once the account is back (docs/operations.md, "Parked records").',
    });
    alarm('IamThrottlingAlarm', {
      metric: iamThrottled,
      threshold: props.iamThrottleCalls,
      comparisonOperator: ComparisonOperator.GREATER_THAN_THRESHOLD,
      evaluationPeriods: 3,
      treatMissingData: TreatMissingData.NOT_BREACHING,
      description:
        'IAM throttles the workers for 15 minutes running (aws_calls service=iam outcome=Throttling Sum). Something else in the account calls IAM too, or there are more workers than IAM allows.',
    });
    alarm('IamBreakerOpenAlarm', {
      metric: breakerState,
      threshold: 2,
      comparisonOperator: ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods: props.breakerOpenMinutes,
      treatMissingData: TreatMissingData.NOT_BREACHING,
      description: 'The IAM circuit breaker of a worker has been open for BreakerOpenMinutes (iam_breaker_state Maximum >= 2): IAM keeps failing, the shards wait.',
    });
    alarm('WorkersBelowMinimumAlarm', {
      metric: runningTasks,
      threshold: props.minWorkers,
      comparisonOperator: ComparisonOperator.LESS_THAN_THRESHOLD,
      evaluationPeriods: 5,
      // No data from Container Insights: no task reports, which is fewer than any minimum above 0.
      treatMissingData: TreatMissingData.BREACHING,
      description: "Fewer workers run than MinWorkers for 5 minutes (ECS/ContainerInsights RunningTaskCount Minimum). Look at the service events and the stopped tasks' reasons.",
    });
    // An audit that publishes nothing (it could not start, or stopped before the end) is no news of
    // drift either way: both drift alarms count the missing hour as breaching, so they never stay OK
    // on silence.
    alarm('DriftFoundAlarm', {
      metric: driftFound,
      threshold: props.driftThreshold,
      comparisonOperator: ComparisonOperator.GREATER_THAN_THRESHOLD,
      evaluationPeriods: props.driftWindowHours,
      treatMissingData: TreatMissingData.BREACHING,
      description:
        'The scheduled drift audit found IAM differing from the ledger (drift_found) in every hour of DriftAuditWindowHours, or reported nothing. Run `ips drift` for the list and `ips drift --repair` to converge (docs/operations.md, "drift"); if the audit reported nothing, see DriftAuditFailed.',
    });
    alarm('DriftAuditFailedAlarm', {
      metric: driftAuditFailed,
      threshold: 1,
      comparisonOperator: ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods: props.driftWindowHours,
      treatMissingData: TreatMissingData.BREACHING,
      description:
        'The scheduled drift audit could not judge everything (drift_audit_failed: a policy it may not read, or an audit that could not run) or reported nothing, in every hour of DriftAuditWindowHours. The audit task\'s log (stream prefix drift-audit) says why (docs/operations.md, "drift").',
    });
  }
}
