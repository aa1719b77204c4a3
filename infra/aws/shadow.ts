// The shadow service (ShadowWorkers > 0): workers of the same image with
// IPS_MODE=shadow beside the live ones. Each reads the stream under its own
// KCL application and tables (`<app>-shadow`, the configuration's shadow
// namespace), plans every record as the live processor would apply it, and
// writes nothing to IAM: its role reads IAM under the managed path and holds
// no IAM write. Its metrics go to a namespace of their own, so the live alarms
// never count a shadow's records. `ips plan --shadow-report` reads its ledger.
//
// In the accounts of TargetAccounts it reads through the drift audit's
// read-only role there (TargetAuditRoleName), never the workers' write role:
// its role may assume that role alone, and its tasks are told its name. The
// target-account stack trusts the shadow role only when given its ARN
// (ShadowRoleArn, this stack's output of that name).
//
// Every resource here exists only while ShadowWorkers is above 0, and the
// shadow's tables go with it: they hold nothing the live processor needs.
import { CfnCondition, CfnResource, Fn } from 'aws-cdk-lib';
import type { Table } from 'aws-cdk-lib/aws-dynamodb';
import type { ISecurityGroup } from 'aws-cdk-lib/aws-ec2';
import type { CfnService, ICluster } from 'aws-cdk-lib/aws-ecs';
import type { IRole } from 'aws-cdk-lib/aws-iam';
import type { Stream } from 'aws-cdk-lib/aws-kinesis';
import type { ILogGroup } from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import { loadConfig } from '../../src/config/config.js';
import { keepElementId, keepLogicalId } from './cfn.js';
import type { NetworkParameters, TargetAccountParameters, WorkerParameters } from './parameters.js';
import { LedgerTables } from './tables.js';
import { assumeTargetRoles, targetAccountEnvironment } from './target-account.js';
import { WorkerRole } from './worker-role.js';
import type { WorkerRoleConditions } from './worker-role.js';
import { workerEnvironment, workerFargateService, workerTaskDefinition } from './worker-task.js';

/** What the configuration appends to the application name in shadow mode: the shadow's KCL application and table prefix. */
export const SHADOW_SUFFIX = (() => {
  const marker = 'app-name-marker';
  const { namespace } = loadConfig({ IPS_APP_NAME: marker, IPS_MODE: 'shadow' });
  if (!namespace.startsWith(marker) || namespace === marker) throw new Error(`the shadow namespace ${namespace} does not derive from IPS_APP_NAME`);
  return namespace.slice(marker.length);
})();

/** Appended to MetricsNamespace for the shadow's metrics. */
export const SHADOW_METRICS_SUFFIX = '/Shadow';

export interface ShadowServiceProps {
  /** The live application's name: the owner tag the shadow judges ownership by. */
  readonly appName: string;
  readonly managedPathPrefix: string;
  readonly metricsNamespace: string;
  /** Its tasks; 0: no shadow (nothing of this construct is created). */
  readonly shadowWorkers: number;
  readonly workers: WorkerParameters;
  readonly network: NetworkParameters;
  readonly stream: Stream;
  readonly cluster: ICluster;
  /** The live workers' security group: the same network needs. */
  readonly securityGroup: ISecurityGroup;
  readonly executionRole: IRole;
  readonly logGroup: ILogGroup;
  readonly metricsLogGroup: ILogGroup;
  readonly kclMajor: number;
  /** The live worker role's conditions on the parameters (fan-out, KCL metrics): the shadow's grants follow them. */
  readonly roleConditions: WorkerRoleConditions;
  /** TargetAccounts, the audit role's name and the ExternalId: the shadow reads those accounts through the audit role. */
  readonly targets: TargetAccountParameters;
  /** Holds when TargetAccounts names an account: the shadow's AssumeRole grant exists only then. */
  readonly hasTargetAccounts: CfnCondition;
}

export class ShadowService extends Construct {
  readonly condition: CfnCondition;
  readonly tables: { ledger: Table; eventArchive: Table; deadLetters: Table; leases: Table };
  readonly role: IRole;
  readonly service: CfnService;

  constructor(scope: Construct, id: string, props: ShadowServiceProps) {
    super(scope, id);
    const namespace = `${props.appName}${SHADOW_SUFFIX}`;
    const runShadow = keepElementId(new CfnCondition(this, 'RunShadow', { expression: Fn.conditionNot(Fn.conditionEquals(props.shadowWorkers, 0)) }));
    this.condition = runShadow;

    const tables = new LedgerTables(this, 'Tables', { appName: namespace, idPrefix: 'Shadow', disposable: true });
    this.tables = tables;
    const { role } = new WorkerRole(this, 'Role', {
      appName: namespace,
      managedPathPrefix: props.managedPathPrefix,
      ...tables,
      stream: props.stream,
      metricsLogGroup: props.metricsLogGroup,
      kclMajor: props.kclMajor,
      kclMetricsLevel: props.workers.kclMetricsLevel,
      retrievalMode: props.workers.retrievalMode,
      shadow: { idPrefix: 'Shadow', conditions: props.roleConditions },
    });
    this.role = role;
    // The read-only role the drift audit assumes in each target account, and no other: a shadow never holds the write role.
    assumeTargetRoles(this, 'ShadowTargetAccountsPolicy', {
      role,
      policyName: 'target-accounts',
      accounts: props.targets.accounts,
      condition: props.hasTargetAccounts,
      roleName: props.targets.auditRoleName,
    });

    const environment = {
      ...workerEnvironment({
        // Ownership is the live application's tag: the shadow plans what the live processor would do.
        appName: props.appName,
        managedPathPrefix: props.managedPathPrefix,
        metricsNamespace: `${props.metricsNamespace}${SHADOW_METRICS_SUFFIX}`,
        metricsLogGroup: props.metricsLogGroup,
        streamName: props.stream.streamName,
        tables: { ledger: tables.ledger.tableName, eventArchive: tables.eventArchive.tableName, deadLetters: tables.deadLetters.tableName, leases: tables.leases.tableName },
        workers: props.workers,
        // The audit role's name, which the configuration requires of a shadow (src/config/config.ts).
        targetAccountEnvironment: targetAccountEnvironment({ accounts: props.targets.accounts, roleName: props.targets.auditRoleName, externalId: props.targets.externalId }),
      }),
      IPS_MODE: 'shadow',
    };
    const taskDefinition = keepLogicalId(
      workerTaskDefinition(this, 'TaskDefinition', { family: namespace, workers: props.workers, executionRole: props.executionRole, taskRole: role, logGroup: props.logGroup, environment }),
      'ShadowTaskDefinition',
    );
    this.service = keepElementId(
      workerFargateService(this, 'ShadowService', {
        serviceName: namespace,
        cluster: props.cluster,
        taskDefinition,
        desiredCount: props.shadowWorkers,
        network: props.network,
        securityGroup: props.securityGroup,
      }),
    );
    this.onlyWithShadow(runShadow);
  }

  /** Every resource of the shadow exists only under RunShadow; one with a condition of its own (fan-out, KCL metrics), under both. */
  private onlyWithShadow(runShadow: CfnCondition): void {
    for (const child of this.node.findAll()) {
      if (!(child instanceof CfnResource)) continue;
      const own = child.cfnOptions.condition;
      if (own === undefined || own === runShadow) child.cfnOptions.condition = runShadow;
      else child.cfnOptions.condition = keepElementId(new CfnCondition(this, `RunShadowAnd${own.node.id}`, { expression: Fn.conditionAnd(runShadow, own) }));
    }
  }
}
