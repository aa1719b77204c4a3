// The route of the metrics to CloudWatch: the CloudWatch agent as a sidecar
// of every task, the environment that points the processes at it, its grant,
// and how the alarms (alarms.ts) and the dashboard (dashboard.ts) name the
// metrics it delivers.
//
// The record processors publish their metrics in the Embedded Metric Format
// (src/metrics/emf.ts) to the agent at AWS_EMF_AGENT_ENDPOINT; the agent
// writes the documents to the metrics log group and CloudWatch extracts the
// metrics, under IPS_METRICS_NAMESPACE with the dimension sets METRIC_SPECS
// (src/metrics/metrics.ts) gives each metric. The alarms name those metrics
// and dimensions; test/unit/deploy-operations.test.ts checks each one against
// what the code publishes.
import { Aws } from 'aws-cdk-lib';
import type { Duration } from 'aws-cdk-lib';
import { MathExpression, Metric } from 'aws-cdk-lib/aws-cloudwatch';
import { ContainerDependencyCondition, ContainerImage, LogDriver } from 'aws-cdk-lib/aws-ecs';
import type { CfnService, ContainerDefinition, ICluster, TaskDefinition } from 'aws-cdk-lib/aws-ecs';
import { PolicyStatement } from 'aws-cdk-lib/aws-iam';
import type { ILogGroup } from 'aws-cdk-lib/aws-logs';
import { DEFAULT_AGENT_ENDPOINT } from '../../src/metrics/emf.js';

/** The agent's container in each task definition. */
export const AGENT_CONTAINER_NAME = 'cloudwatch-agent';
export const DEFAULT_AGENT_IMAGE = 'public.ecr.aws/cloudwatch-agent/cloudwatch-agent:latest';
/** The agent's configuration: its EMF listener (TCP and UDP on 25888) and nothing else; it collects no host metrics. */
export const AGENT_CONFIG = { logs: { metrics_collected: { emf: {} } } };
/** Where the processes reach the agent: the task's own loopback (awsvpc: the containers of a task share it). */
export const AGENT_ENDPOINT = DEFAULT_AGENT_ENDPOINT;
/** What the agent does with its log group: write the EMF documents (it creates the group and streams if they are missing). */
export const METRICS_AGENT_ACTIONS = ['logs:CreateLogGroup', 'logs:CreateLogStream', 'logs:PutLogEvents', 'logs:DescribeLogStreams'];

/** The error name the SDK gives IAM's throttling (IAM's error code; src/aws/call-observer.ts records it as `outcome`). */
export const IAM_THROTTLING_OUTCOME = 'Throttling';

/**
 * Adds the CloudWatch agent to a task definition as a sidecar listening for
 * EMF on the task's loopback, and makes `dependent` start after it. Not
 * essential: an agent that dies costs metrics (the alarms on them see missing
 * data), not the worker's leases.
 */
export function addCloudWatchAgent(taskDefinition: TaskDefinition, options: { image: string; logGroup: ILogGroup; dependent: ContainerDefinition }): ContainerDefinition {
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
  const where = [...Object.entries(options.where).map(([key, value]) => `${key} = '${value}'`), ...Object.entries(options.whereNot ?? {}).map(([key, value]) => `${key} != '${value}'`)];
  const groupBy = options.groupBy && options.groupBy.length > 0 ? ` GROUP BY ${options.groupBy.join(', ')}` : '';
  return `SELECT ${options.fn}(${options.metric}) FROM SCHEMA("${options.namespace}", ${options.dimensions.join(', ')})${where.length > 0 ? ` WHERE ${where.join(' AND ')}` : ''}${groupBy}`;
}

/** One of the application's metrics, with the dimension every worker's documents carry (`App`). */
export function applicationMetric(options: { namespace: string; app: string; metricName: string; statistic: string; period: Duration }): Metric {
  const { namespace, app, metricName, statistic, period } = options;
  return new Metric({ namespace, metricName, dimensionsMap: { App: app }, statistic, period });
}

/** A Metrics Insights query as a metric of the alarms and the dashboard. */
export function insightsMetric(expression: string, label: string, period: Duration): MathExpression {
  return new MathExpression({ expression, label, period, usingMetrics: {} });
}

/** Container Insights (enabled on the cluster by the stack) counts the service's tasks. */
export function serviceTaskMetric(options: { cluster: ICluster; service: CfnService; metricName: string; statistic: string; period: Duration }): Metric {
  const { cluster, service, metricName, statistic, period } = options;
  return new Metric({ namespace: 'ECS/ContainerInsights', metricName, dimensionsMap: { ClusterName: cluster.clusterName, ServiceName: service.attrName }, statistic, period });
}
