// The AWS deployment as a CDK stack, one construct per concern:
//
//   PolicyEventStream   the Kinesis stream (stream.ts)
//   LedgerTables        the ledger, event archive, dead-letter and KCL lease tables (tables.ts)
//   WorkerPlatform      log groups, cluster, execution role (platform.ts)
//   WorkerRole          the worker's least-privilege task role (worker-role.ts)
//   WorkerService       the ECS Fargate workers, their security group and CPU target tracking (workers.ts)
//   OperationalAlarms   the alarms and their SNS topic (alarms.ts)
//   OperationsDashboard the CloudWatch dashboard (dashboard.ts)
//   DriftAuditSchedule  the scheduled drift audit (drift-audit.ts)
//   ShadowService       with ShadowWorkers > 0: IPS_MODE=shadow workers, their own
//                       tables and a role that reads IAM only (shadow.ts)
//   TargetAccountsPolicy, DriftAuditTargetAccountsPolicy, ShadowTargetAccountsPolicy
//                       the worker, the audit and the shadow may assume their
//                       role in each of TargetAccounts, the shadow the audit's
//                       (target-account.ts; the roles come from the
//                       target-account stack, target-stack.ts)
//
// Everything a deployment varies is a CloudFormation parameter, declared in
// parameters.ts and handed to the constructs as one typed object, so the
// synthesized template (`npm run synth`) deploys as it is with plain
// CloudFormation. The grants are checked against the code's calls by
// test/unit/deploy.test.ts.
//
// Every resource keeps the logical ID it had in the hand-written template
// this replaces (cfn.ts), so a stack deployed from it updates in place.
import { readFileSync } from 'node:fs';
import { Aws, BootstraplessSynthesizer, CfnCondition, CfnOutput, Fn, Stack } from 'aws-cdk-lib';
import type { CfnOutputProps, StackProps } from 'aws-cdk-lib';
import type { Construct } from 'constructs';
import { OperationalAlarms } from './alarms.js';
import { keepElementId } from './cfn.js';
import { OperationsDashboard } from './dashboard.js';
import { DriftAuditSchedule } from './drift-audit.js';
import type { InlinePolicyRole } from './inline-policy-role.js';
import { metricsEnvironment } from './operations.js';
import { declareParameters } from './parameters.js';
import { WorkerPlatform } from './platform.js';
import { PolicyEventStream } from './stream.js';
import { ShadowService } from './shadow.js';
import { LedgerTables } from './tables.js';
import { assumeTargetRoles, targetAccountEnvironment } from './target-account.js';
import { WorkerRole } from './worker-role.js';
import { CONTAINER_USER, WorkerService } from './workers.js';

/** The stack's name, and the id of its template in the cloud assembly. */
export const STACK_NAME = 'iam-policy-stream';

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
      description: `iam-policy-stream: Kinesis stream, ledger, event archive, dead-letter and lease tables, and the ECS Fargate workers (KCL ${kclVersion} MultiLangDaemon) with a least-privilege task role.`,
      // No CDK bootstrap stack needed, for `cdk deploy` or for the template on
      // its own: the stack has no assets, and no BootstrapVersion parameter.
      synthesizer: new BootstraplessSynthesizer(),
      analyticsReporting: false,
      ...stackProps,
    });
    this.kclVersion = kclVersion;

    const parameters = declareParameters(this);
    const { appName: app, managedPathPrefix, metricsNamespace, workers, network, targets } = parameters;
    const hasTargetAccounts = keepElementId(new CfnCondition(this, 'HasTargetAccounts', { expression: Fn.conditionNot(Fn.conditionEquals(Fn.join('', targets.accounts), '')) }));

    const { stream } = new PolicyEventStream(this, 'Stream', parameters.stream);
    const { ledger, eventArchive, deadLetters, leases } = new LedgerTables(this, 'Tables', { appName: app });
    const platform = new WorkerPlatform(this, 'Platform', { appName: app, vpcId: network.vpcId, logRetentionDays: parameters.logRetentionDays });
    const { logGroup, metricsLogGroup, cluster, vpc } = platform;
    // The managed policy already lets it pull and write the log streams: no extra policy resource.
    const executionRole = platform.executionRole.withoutPolicyUpdates();

    const { role: taskRole, conditions: roleConditions } = new WorkerRole(this, 'WorkerRole', {
      appName: app,
      managedPathPrefix,
      ledger,
      eventArchive,
      deadLetters,
      leases,
      stream,
      metricsLogGroup,
      kclMajor,
      kclMetricsLevel: workers.kclMetricsLevel,
      retrievalMode: workers.retrievalMode,
    });
    this.taskRole = taskRole;
    assumeTargetRoles(this, 'TargetAccountsPolicy', {
      role: taskRole,
      policyName: 'target-accounts',
      accounts: targets.accounts,
      condition: hasTargetAccounts,
      roleName: targets.roleName,
    });

    const { service, securityGroup } = new WorkerService(this, 'Workers', {
      ...workers,
      appName: app,
      managedPathPrefix,
      metricsNamespace,
      network,
      stream,
      ledger,
      eventArchive,
      deadLetters,
      leases,
      cluster,
      vpc,
      executionRole,
      taskRole,
      logGroup,
      metricsLogGroup,
      targetAccountEnvironment: targetAccountEnvironment({ accounts: targets.accounts, roleName: targets.roleName, externalId: targets.externalId }),
    });

    // ShadowWorkers > 0: a shadow service beside the workers, with its own tables and a read-only IAM grant.
    const shadow = new ShadowService(this, 'Shadow', {
      appName: app,
      managedPathPrefix,
      metricsNamespace,
      shadowWorkers: parameters.shadowWorkers,
      workers,
      network,
      stream,
      cluster,
      securityGroup,
      executionRole,
      logGroup,
      metricsLogGroup,
      kclMajor,
      roleConditions,
      targets,
      hasTargetAccounts,
    });

    const { topic, alarms } = new OperationalAlarms(this, 'Alarms', {
      ...parameters.alarms,
      appName: app,
      namespace: metricsNamespace,
      cluster,
      service,
      minWorkers: workers.minWorkers,
    });
    // The KCL publishes its own metrics under the application name.
    const { dashboard } = new OperationsDashboard(this, 'Dashboard', { appName: app, namespace: metricsNamespace, kclNamespace: app, cluster, service, alarms });
    const drift = new DriftAuditSchedule(this, 'DriftAudit', {
      ...parameters.driftAudit,
      appName: app,
      imageUri: workers.imageUri,
      user: CONTAINER_USER,
      agentImage: workers.agentImage,
      cpuArchitecture: workers.cpuArchitecture,
      cluster,
      // The managed policy already lets it pull and write the log streams, as for the worker's task definition.
      executionRole,
      logGroup,
      metricsLogGroup,
      environment: {
        AWS_REGION: Aws.REGION,
        IPS_APP_NAME: app,
        IPS_LEDGER_TABLE: ledger.tableName,
        IPS_MANAGED_PATH_PREFIX: managedPathPrefix,
        IPS_LOG_LEVEL: workers.logLevel,
        // The `Worker` property of its metric document.
        IPS_WORKER_ID: 'drift-audit',
        ...metricsEnvironment({ namespace: metricsNamespace, metricsLogGroup }),
        // The audit reads each target account through its read-only role there.
        ...targetAccountEnvironment({ accounts: targets.accounts, roleName: targets.auditRoleName, externalId: targets.externalId }),
      },
      ledger,
      managedPathPrefix,
      subnets: network.subnetIds,
      securityGroup,
      assignPublicIp: network.assignPublicIp,
    });
    assumeTargetRoles(this, 'DriftAuditTargetAccountsPolicy', {
      role: drift.role,
      policyName: 'target-accounts',
      accounts: targets.accounts,
      condition: hasTargetAccounts,
      roleName: targets.auditRoleName,
    });

    // Output IDs as before; StreamName is also a parameter's, which CloudFormation allows and constructs do not.
    const output = (outputId: string, outputProps: CfnOutputProps) => new CfnOutput(this, `${outputId}Output`, outputProps).overrideLogicalId(outputId);
    output('StreamName', { description: 'Producers write here (IPS_STREAM_NAME).', value: stream.streamName });
    output('StreamArn', { value: stream.streamArn });
    output('LedgerTableName', { value: ledger.tableName });
    output('EventArchiveTableName', { value: eventArchive.tableName });
    output('DeadLetterTableName', { value: deadLetters.tableName });
    output('LeaseTableName', { value: leases.tableName });
    output('TaskRoleArn', { description: 'The worker role: WorkerRoleArn of the target-account stack.', value: taskRole.roleArn });
    output('DriftAuditRoleArn', { description: 'The drift audit role: DriftAuditRoleArn of the target-account stack.', value: drift.role.roleArn });
    output('ShadowRoleArn', {
      description: "The shadow's role, with ShadowWorkers above 0: ShadowRoleArn of the target-account stack.",
      value: shadow.role.roleArn,
      condition: shadow.condition,
    });
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
}
