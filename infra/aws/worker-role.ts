// The worker's task role: each grant is what the code calls, on what it owns.
// test/unit/deploy.test.ts checks the grants against the calls the record
// processor's files make, and that they stay within the managed path, the
// stack's own tables and stream, and the metrics log group.
import { Aws, CfnCondition, Fn } from 'aws-cdk-lib';
import { Table } from 'aws-cdk-lib/aws-dynamodb';
import type { ITable } from 'aws-cdk-lib/aws-dynamodb';
import { Policy, PolicyStatement } from 'aws-cdk-lib/aws-iam';
import type { CfnPolicy } from 'aws-cdk-lib/aws-iam';
import type { Stream } from 'aws-cdk-lib/aws-kinesis';
import type { ILogGroup } from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import { OWNER_TAG } from '../../src/contract/ownership.js';
import { acknowledge, keepElementId, keepLogicalId } from './cfn.js';
import { InlinePolicyRole } from './inline-policy-role.js';
import { metricsAgentStatement } from './operations.js';
import { ecsTasksPrincipal } from './platform.js';

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

export interface WorkerRoleProps {
  /** IPS_APP_NAME: the owner tag's value, the KCL's metrics namespace and consumer name. */
  readonly appName: string;
  readonly managedPathPrefix: string;
  readonly ledger: Table;
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
}

export class WorkerRole extends Construct {
  readonly role: InlinePolicyRole;

  constructor(scope: Construct, id: string, props: WorkerRoleProps) {
    super(scope, id);
    const useFanOut = keepElementId(new CfnCondition(this, 'UseFanOut', { expression: Fn.conditionEquals(props.retrievalMode, 'FANOUT') }));
    const publishKclMetrics = keepElementId(
      new CfnCondition(this, 'PublishKclMetrics', { expression: Fn.conditionNot(Fn.conditionEquals(props.kclMetricsLevel, 'NONE')) }),
    );
    const taskRole = keepLogicalId(
      new InlinePolicyRole(this, 'TaskRole', {
        description: 'iam-policy-stream worker: IAM policies under the managed path, its own tables and stream.',
        assumedBy: ecsTasksPrincipal(),
        policyName: 'worker',
      }),
    );
    this.role = taskRole;
    this.grantCalls(taskRole, props);
    // The CloudWatch agent sidecar runs with the task role (its ECS setup puts its grant there): it writes the metrics log group.
    taskRole.addToPrincipalPolicy(metricsAgentStatement(props.metricsLogGroup));
    const { stream } = props;
    // Grants that exist only in some configurations: policies of their own,
    // attached to the task role under the parameter's condition (CDK's policy
    // documents have no statement-level Fn::If, and as policies cdk-nag and the
    // tests see them). Created beside the role rather than in it: the KCL
    // retries its fan-out registration and metrics until they are attached.
    const conditionalPolicy = (id: string, policyName: string, condition: CfnCondition, statements: PolicyStatement[]) => {
      const policy = keepLogicalId(new Policy(this, id, { policyName, roles: [taskRole], statements }));
      (policy.node.defaultChild as CfnPolicy).cfnOptions.condition = condition;
      return policy;
    };
    const fanOut = conditionalPolicy('FanOutPolicy', 'fan-out', useFanOut, [
      new PolicyStatement({ sid: 'RegisterFanOutConsumer', actions: ['kinesis:RegisterStreamConsumer'], resources: [stream.streamArn] }),
      // The KCL names its consumer after the application.
      new PolicyStatement({
        sid: 'ReadFanOut',
        actions: ['kinesis:DescribeStreamConsumer', 'kinesis:SubscribeToShard'],
        resources: [`${stream.streamArn}/consumer/${props.appName}:*`],
      }),
    ]);
    acknowledge(fanOut, {
      'AwsSolutions-IAM5[Resource::<Stream.Arn>/consumer/<ApplicationName>:*]':
        "A consumer's ARN ends in its creation timestamp, which exists only once the KCL has registered it; the wildcard covers that timestamp alone, under this stream and the consumer named after the application.",
    });
    const metrics = conditionalPolicy('KclMetricsPolicy', 'kcl-metrics', publishKclMetrics, [
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
    const { appName: app, ledger, deadLetters, leases, stream, kclMajor } = props;
    // The managed path's policies, and nothing else in the account.
    const managedPolicies = `arn:${Aws.PARTITION}:iam::${Aws.ACCOUNT_ID}:policy${props.managedPathPrefix}*`;
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
      role.grantAs('KclCoordination', () => {
        for (const kclTable of kclTables) kclTable.grant(role, ...KCL3_TABLE_ACTIONS);
      });
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
