// The worker's task role: each grant is what the code calls, on what it owns.
// test/unit/deploy.test.ts checks the grants against the calls the record
// processor's files make, and that they stay within the managed path, the
// stack's own tables and stream, and the metrics log group.
import { CfnCondition, Fn, Stack } from 'aws-cdk-lib';
import { Table } from 'aws-cdk-lib/aws-dynamodb';
import type { CfnTable } from 'aws-cdk-lib/aws-dynamodb';
import type { ITable } from 'aws-cdk-lib/aws-dynamodb';
import { PolicyStatement } from 'aws-cdk-lib/aws-iam';
import type { Stream } from 'aws-cdk-lib/aws-kinesis';
import type { ILogGroup } from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import { acknowledge, findingName, keepElementId, keepLogicalId } from './cfn.js';
import { conditionalPolicy, InlinePolicyRole } from './inline-policy-role.js';
import { grantManagedPolicies } from './managed-policy-grant.js';
import { metricsAgentStatement } from './operations.js';
import { ecsTasksPrincipal } from './platform.js';

// The IAM grant is the one the target role in each target account holds too (managed-policy-grant.ts).
export { IAM_LIST_ACTIONS, IAM_READ_ACTIONS, IAM_WRITE_ACTIONS } from './managed-policy-grant.js';
/**
 * What the record processor does to its own tables: the ledger's
 * (src/ledger/dynamodb-ledger.ts) reads and conditional updates, the dead-letter
 * store's `store` (src/deadletter/dead-letter-store.ts) conditional put. Named
 * actions rather than grantReadWriteData, which would add Query, Scan,
 * ConditionCheckItem, BatchWriteItem, PutItem, DeleteItem and DescribeTable:
 * none of them is called, and DeleteItem or a Scan of the ledger is exactly
 * what a compromised worker should not be able to do. BatchGetItem reads the
 * archived eventIds that versions before the archive table left in the ledger
 * (src/ledger/event-archive.ts); no batch writes it any more.
 */
export const LEDGER_ACTIONS = ['dynamodb:BatchGetItem', 'dynamodb:GetItem', 'dynamodb:UpdateItem'];
/** The event archive (src/ledger/event-archive.ts): eventIds put in batches before a completion, read in batches when a full window cannot tell. */
export const EVENT_ARCHIVE_ACTIONS = ['dynamodb:BatchGetItem', 'dynamodb:BatchWriteItem'];
export const DEAD_LETTER_ACTIONS = ['dynamodb:PutItem'];
/** The KCL's lease bookkeeping on a table that already exists (this stack creates it). */
export const LEASE_ACTIONS_KCL2 = ['dynamodb:DescribeTable', 'dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:UpdateItem', 'dynamodb:DeleteItem', 'dynamodb:Scan'];
/** KCL 3 adds an index to the lease table and queries it. */
export const LEASE_ACTIONS_KCL3 = [...LEASE_ACTIONS_KCL2, 'dynamodb:UpdateTable', 'dynamodb:Query'];
/** KCL 3 also creates its coordinator and worker-metrics tables itself. */
export const KCL3_TABLE_ACTIONS = [...LEASE_ACTIONS_KCL3, 'dynamodb:CreateTable'];
export const KCL3_TABLE_SUFFIXES = ['-CoordinatorState', '-WorkerMetricStats'];
/** The daemon's reads (DescribeStream*, GetShardIterator, GetRecords) and the processor's ListShards (src/stream/shard-tree.ts). */
export const STREAM_READ_ACTIONS = ['kinesis:DescribeStream', 'kinesis:DescribeStreamSummary', 'kinesis:ListShards', 'kinesis:GetShardIterator', 'kinesis:GetRecords'];

export interface WorkerRoleProps {
  /** IPS_APP_NAME: the owner tag's value, the KCL's metrics namespace and consumer name. */
  readonly appName: string;
  readonly managedPathPrefix: string;
  readonly ledger: Table;
  readonly eventArchive: Table;
  readonly deadLetters: Table;
  readonly leases: Table;
  readonly stream: Stream;
  /** The CloudWatch agent sidecar writes it with the task role's credentials. */
  readonly metricsLogGroup: ILogGroup;
  /** Major version of the KCL the image runs: KCL 3 needs more tables. */
  readonly kclMajor: number;
  /** NONE drops the PutMetricData grant. */
  readonly kclMetricsLevel: string;
  /** FANOUT adds the enhanced fan-out grants. */
  readonly retrievalMode: string;
  /**
   * A shadow worker's role (shadow.ts): IAM reads only, and its elements'
   * logical IDs start with this prefix. `appName` is then the shadow's KCL
   * application (its namespace), which names its KCL tables, fan-out consumer
   * and KCL metrics.
   */
  readonly shadow?: { idPrefix: string; conditions: WorkerRoleConditions };
}

/** The role's conditions on the parameters: the fan-out grant, the KCL metrics grant. */
export interface WorkerRoleConditions {
  readonly useFanOut: CfnCondition;
  readonly publishKclMetrics: CfnCondition;
}

export class WorkerRole extends Construct {
  readonly role: InlinePolicyRole;
  readonly conditions: WorkerRoleConditions;

  constructor(scope: Construct, id: string, props: WorkerRoleProps) {
    super(scope, id);
    const prefix = props.shadow?.idPrefix ?? '';
    // A shadow's grants follow the same parameters: the live role's conditions (CloudFormation warns of equal ones).
    const useFanOut = props.shadow?.conditions.useFanOut ?? keepElementId(new CfnCondition(this, 'UseFanOut', { expression: Fn.conditionEquals(props.retrievalMode, 'FANOUT') }));
    const publishKclMetrics =
      props.shadow?.conditions.publishKclMetrics ?? keepElementId(new CfnCondition(this, 'PublishKclMetrics', { expression: Fn.conditionNot(Fn.conditionEquals(props.kclMetricsLevel, 'NONE')) }));
    this.conditions = { useFanOut, publishKclMetrics };
    const taskRole = keepLogicalId(
      new InlinePolicyRole(this, 'TaskRole', {
        description: props.shadow
          ? 'iam-policy-stream shadow worker: reads the IAM policies under the managed path (no IAM write), its own tables and the stream.'
          : 'iam-policy-stream worker: IAM policies under the managed path, its own tables and stream.',
        assumedBy: ecsTasksPrincipal(),
        policyName: props.shadow ? 'shadow-worker' : 'worker',
      }),
      `${prefix}TaskRole`,
    );
    this.role = taskRole;
    this.grantCalls(taskRole, props);
    // The CloudWatch agent sidecar runs with the task role (its ECS setup puts its grant there): it writes the metrics log group.
    taskRole.addToPrincipalPolicy(metricsAgentStatement(props.metricsLogGroup));
    const { stream } = props;
    // Created beside the role rather than in it, under the parameter's
    // condition: the KCL retries its fan-out registration and metrics until
    // they are attached.
    const conditional = (id: string, policyName: string, condition: CfnCondition, statements: PolicyStatement[]) =>
      conditionalPolicy(this, `${prefix}${id}`, { policyName, role: taskRole, condition, statements });
    const fanOut = conditional('FanOutPolicy', 'fan-out', useFanOut, [
      new PolicyStatement({ sid: 'RegisterFanOutConsumer', actions: ['kinesis:RegisterStreamConsumer'], resources: [stream.streamArn] }),
      // The KCL names its consumer after the application.
      new PolicyStatement({
        sid: 'ReadFanOut',
        actions: ['kinesis:DescribeStreamConsumer', 'kinesis:SubscribeToShard'],
        resources: [`${stream.streamArn}/consumer/${props.appName}:*`],
      }),
    ]);
    acknowledge(fanOut, {
      [`AwsSolutions-IAM5[Resource::<Stream.Arn>/consumer/${findingName(this, props.appName)}:*]`]:
        "A consumer's ARN ends in its creation timestamp, which exists only once the KCL has registered it; the wildcard covers that timestamp alone, under this stream and the consumer named after the application.",
    });
    const metrics = conditional('KclMetricsPolicy', 'kcl-metrics', publishKclMetrics, [
      new PolicyStatement({
        sid: 'KclMetrics',
        actions: ['cloudwatch:PutMetricData'],
        // PutMetricData has no resource ARN; the namespace (the KCL uses the application name) is the fence.
        resources: ['*'],
        conditions: { StringEquals: { 'cloudwatch:namespace': props.appName } },
      }),
    ]);
    acknowledge(metrics, {
      'AwsSolutions-IAM5[Resource::*]':
        'cloudwatch:PutMetricData has no resource type: IAM grants it on "*" only. The cloudwatch:namespace condition limits it to the namespace the KCL publishes under (the application name).',
    });
  }

  /** The record processor's calls: IAM under the managed path, its tables, its stream. */
  private grantCalls(role: InlinePolicyRole, props: WorkerRoleProps): void {
    const { appName: app, ledger, eventArchive, deadLetters, leases, stream, kclMajor } = props;
    grantManagedPolicies(role, { appName: app, managedPathPrefix: props.managedPathPrefix }, { readOnly: props.shadow !== undefined });

    role.grantAs('Ledger', () => ledger.grant(role, ...LEDGER_ACTIONS));
    role.grantAs('EventArchive', () => eventArchive.grant(role, ...EVENT_ARCHIVE_ACTIONS));
    role.grantAs('DeadLetters', () => deadLetters.grant(role, ...DEAD_LETTER_ACTIONS));
    role.grantAs('KclLeases', () => leases.grant(role, ...(kclMajor >= 3 ? LEASE_ACTIONS_KCL3 : LEASE_ACTIONS_KCL2)));
    if (kclMajor >= 3) {
      // KCL 3 creates these itself, named after the application like the lease table; the index grant is for their indexes.
      const kclTables: ITable[] = KCL3_TABLE_SUFFIXES.map((suffix) => Table.fromTableAttributes(this, `Kcl${suffix.slice(1)}`, { tableName: `${app}${suffix}`, grantIndexPermissions: true }));
      role.grantAs('KclCoordination', () => {
        for (const kclTable of kclTables) kclTable.grant(role, ...KCL3_TABLE_ACTIONS);
      });
      role.grantAs('KclLeaseIndex', () => role.addToPrincipalPolicy(new PolicyStatement({ actions: ['dynamodb:Query'], resources: [`${leases.tableArn}/index/*`] })));
    }
    role.grantAs('ReadStream', () => stream.grant(role, ...STREAM_READ_ACTIONS));

    if (kclMajor >= 3) {
      acknowledge(role, {
        [`AwsSolutions-IAM5[Resource::<${Stack.of(this).resolve((leases.node.defaultChild as CfnTable).logicalId) as string}.Arn>/index/*]`]:
          "KCL 3 adds a lease-owner index to the lease table and queries it; index names are the KCL's.",
        ...Object.fromEntries(
          KCL3_TABLE_SUFFIXES.map((suffix) => [
            `AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:dynamodb:<AWS::Region>:<AWS::AccountId>:table/${findingName(this, app)}${suffix}/index/*]`,
            `KCL 3 creates and indexes the ${suffix.slice(1)} table itself; index names are the KCL's.`,
          ]),
        ),
      });
    }
  }
}
