// The shadow service of the CDK stack (infra/aws/shadow.ts): with ShadowWorkers
// above 0, workers of the same image with IPS_MODE=shadow, under their own KCL
// application and tables, with a role that reads IAM and writes none of it;
// with 0 (the default), nothing of it exists. In the target accounts it reads
// through the drift audit's read-only role, never the workers' write role.
// The template is read as CloudFormation will resolve it (parameters,
// conditions, joins).
import test from 'ava';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Template } from 'aws-cdk-lib/assertions';
import { buildApp } from '../../infra/aws/app.js';
import { TemplateResolver, allowsAssumeRole } from '../../infra/aws/least-privilege.js';
import type { JsonObject, Statement } from '../../infra/aws/least-privilege.js';
import { SHADOW_METRICS_SUFFIX } from '../../infra/aws/shadow.js';
import { IAM_LIST_ACTIONS, IAM_READ_ACTIONS, IAM_WRITE_ACTIONS } from '../../infra/aws/worker-role.js';
import { DEFAULT_TARGET_AUDIT_ROLE_NAME, DEFAULT_TARGET_ROLE_NAME } from '../../infra/aws/target-account.js';
import { loadConfig } from '../../src/config/config.js';

const root = resolve(import.meta.dirname, '..', '..');
const read = (path: string) => readFileSync(join(root, path), 'utf8');
const outdir = mkdtempSync(join(tmpdir(), 'ips-shadow-'));
test.after.always(() => rmSync(outdir, { recursive: true, force: true }));

const template = Template.fromStack(buildApp({ outdir, nag: false }).stack).toJSON() as JsonObject;
const resources = template.Resources as Record<string, JsonObject>;
const SETTINGS = { ImageUri: 'image', VpcId: 'vpc-1', SubnetIds: ['subnet-1'], ApplicationName: 'ips-prod', MetricsNamespace: 'Platform/IPS' };
const SHADOW_IDS = Object.keys(resources).filter((id) => id.startsWith('Shadow'));
const statementsOf = (policy: JsonObject) => ([] as Statement[]).concat((policy.PolicyDocument as unknown as { Statement: Statement[] }).Statement);
const actionsOf = (statement: Statement) => ([] as string[]).concat(statement.Action ?? []);

test('with ShadowWorkers 0 (the default) no resource of the shadow exists; above 0, all of them', (t) => {
  t.true(SHADOW_IDS.length >= 7, SHADOW_IDS.join(', '));
  const off = new TemplateResolver(template, SETTINGS);
  const on = new TemplateResolver(template, { ...SETTINGS, ShadowWorkers: 2 });
  for (const id of SHADOW_IDS) {
    t.false(off.exists(id), `${id} without a shadow`);
    t.truthy(resources[id]!.Condition, `${id} has a condition`);
  }
  for (const id of ['ShadowLedgerTable', 'ShadowEventArchiveTable', 'ShadowDeadLetterTable', 'ShadowLeaseTable', 'ShadowTaskRole', 'ShadowTaskDefinition', 'ShadowService', 'ShadowKclMetricsPolicy']) {
    t.true(on.exists(id), `${id} with a shadow`);
  }
  // Fan-out grants follow RetrievalMode, for the shadow as for the workers.
  t.false(on.exists('ShadowFanOutPolicy'));
  t.true(new TemplateResolver(template, { ...SETTINGS, ShadowWorkers: 1, RetrievalMode: 'FANOUT' }).exists('ShadowFanOutPolicy'));
  // The live resources do not depend on it.
  for (const id of ['LedgerTable', 'TaskRole', 'TaskDefinition', 'Service']) t.true(off.exists(id) && on.exists(id), id);
});

test("the shadow's tables, KCL application and metrics namespace are its own, named as IPS_MODE=shadow names them; ownership is the live application's", (t) => {
  const on = new TemplateResolver(template, { ...SETTINGS, ShadowWorkers: 2 });
  const shadow = loadConfig({ IPS_APP_NAME: 'ips-prod', IPS_MODE: 'shadow' });
  const tableName = (id: string) => (on.resolve(resources[id]!) as JsonObject & { Properties: { TableName: string } }).Properties.TableName;
  t.is(tableName('ShadowLedgerTable'), shadow.ledgerTable);
  t.is(tableName('ShadowEventArchiveTable'), shadow.eventArchiveTable);
  t.is(tableName('ShadowDeadLetterTable'), shadow.deadLetterTable);
  t.is(tableName('ShadowLeaseTable'), shadow.leaseTable);
  t.not(tableName('ShadowLedgerTable'), tableName('LedgerTable'));

  const definition = (on.resolve(resources.ShadowTaskDefinition!) as { Properties: { ContainerDefinitions: JsonObject[]; TaskRoleArn: unknown; Family: string } }).Properties;
  const environment = Object.fromEntries((definition.ContainerDefinitions[0]!.Environment as { Name: string; Value: string }[]).map(({ Name, Value }) => [Name, Value]));
  t.like(environment, {
    IPS_MODE: 'shadow',
    IPS_APP_NAME: 'ips-prod',
    IPS_LEDGER_TABLE: shadow.ledgerTable,
    IPS_EVENT_ARCHIVE_TABLE: shadow.eventArchiveTable,
    IPS_DEAD_LETTER_TABLE: shadow.deadLetterTable,
    IPS_LEASE_TABLE: shadow.leaseTable,
    IPS_METRICS_NAMESPACE: `Platform/IPS${SHADOW_METRICS_SUFFIX}`,
  });
  // The configuration the image reads from that environment is a shadow's, under its own KCL application.
  const config = loadConfig(environment);
  t.is(config.mode, 'shadow');
  t.is(config.namespace, shadow.namespace);
  t.is(config.leaseTable, shadow.leaseTable);
  t.is(definition.Family, shadow.namespace);
  t.deepEqual(definition.TaskRoleArn, on.resolve({ 'Fn::GetAtt': ['ShadowTaskRole', 'Arn'] }));
  const service = (on.resolve(resources.ShadowService!) as { Properties: JsonObject }).Properties;
  t.like(service, { ServiceName: shadow.namespace });
  t.is(Number(service.DesiredCount), 2);
});

test('the shadow role reads IAM under the managed path and writes none of it; its tables are its own', (t) => {
  const on = new TemplateResolver(template, { ...SETTINGS, ShadowWorkers: 1, RetrievalMode: 'FANOUT' });
  const role = on.resolve(resources.ShadowTaskRole!) as { Properties: { Policies: JsonObject[] } };
  const policies = [...role.Properties.Policies, ...['ShadowFanOutPolicy', 'ShadowKclMetricsPolicy'].map((id) => (on.resolve(resources[id]!) as { Properties: JsonObject }).Properties)];
  const statements = policies.flatMap(statementsOf);
  const iam = statements.flatMap(actionsOf).filter((action) => action.startsWith('iam:'));
  t.deepEqual([...new Set(iam)].sort(), [...IAM_READ_ACTIONS, ...IAM_LIST_ACTIONS].sort());
  for (const write of IAM_WRITE_ACTIONS) t.false(iam.includes(write), write);
  t.false(statements.some((statement) => actionsOf(statement).some((action) => action === '*' || action.endsWith(':*'))));
  // Every IAM call of a shadow's planning step is a granted read (src/shadow, src/plan and the policy helpers they use).
  const called = ['src/plan/world.ts', 'src/iam/policies.ts']
    .flatMap((file) => [...read(file).matchAll(/new (\w+)Command\(/g)].map((match) => `iam:${match[1]}`))
    .filter((action) => !action.startsWith('iam:GetCallerIdentity'));
  for (const action of called) t.true(iam.includes(action), `${action} is granted`);
  // DynamoDB: the shadow's own tables, never the live ones.
  const shadowArns = ['ShadowLedgerTable', 'ShadowEventArchiveTable', 'ShadowDeadLetterTable', 'ShadowLeaseTable'].map((id) => JSON.stringify(on.resolve({ 'Fn::GetAtt': [id, 'Arn'] })));
  const liveArns = ['LedgerTable', 'EventArchiveTable', 'DeadLetterTable', 'LeaseTable'].map((id) => JSON.stringify(on.resolve({ 'Fn::GetAtt': [id, 'Arn'] })));
  for (const statement of statements.filter((s) => actionsOf(s).some((action) => action.startsWith('dynamodb:')))) {
    for (const resource of ([] as unknown[]).concat(statement.Resource ?? [])) {
      const text = JSON.stringify(resource);
      t.false(liveArns.includes(text), `${statement.Sid}: a live table`);
      t.true(shadowArns.some((arn) => text.startsWith(arn.slice(0, -1))) || text.includes('-shadow'), `${statement.Sid}: ${text}`);
    }
  }
});

const TARGETS = ['111111111111', '222222222222'];
const environmentOf = (resolver: TemplateResolver, id: string) =>
  Object.fromEntries(
    ((resolver.resolve(resources[id]!) as { Properties: { ContainerDefinitions: JsonObject[] } }).Properties.ContainerDefinitions[0]!.Environment as { Name: string; Value: string }[]).map(
      ({ Name, Value }) => [Name, Value],
    ),
  );
/** Every statement of the shadow role, inline and attached, that exists with these parameter values. */
function shadowStatements(resolver: TemplateResolver): Statement[] {
  const role = (resolver.resolve(resources.ShadowTaskRole!) as { Properties: { Policies: JsonObject[] } }).Properties;
  const attached = resolver
    .resourcesOfType('AWS::IAM::Policy')
    .map((id) => (resolver.resolve(resources[id]!) as { Properties: JsonObject }).Properties)
    .filter((policy) => JSON.stringify(policy.Roles).includes('ShadowTaskRole'));
  return [...role.Policies, ...attached].flatMap(statementsOf);
}

test("the shadow is told the target accounts and the audit role's name, which its configuration takes; the ExternalId as the workers", (t) => {
  const settings = { ...SETTINGS, ShadowWorkers: 1, TargetAccounts: TARGETS, TargetRoleName: 'ops-writer', TargetAuditRoleName: 'ops-reader', TargetExternalId: 'ips-ext-7f3a' };
  const environment = environmentOf(new TemplateResolver(template, settings), 'ShadowTaskDefinition');
  t.like(environment, { IPS_TARGET_ACCOUNTS: TARGETS.join(','), IPS_TARGET_ROLE_NAME: 'ops-reader', IPS_TARGET_EXTERNAL_ID: 'ips-ext-7f3a' });
  const config = loadConfig(environment);
  t.deepEqual(config.targetAccounts, TARGETS);
  t.is(config.targetRoleName, 'ops-reader');
  // With the defaults, the audit role's default name: one a shadow starts with (the write role's it refuses).
  const defaults = environmentOf(new TemplateResolver(template, { ...SETTINGS, ShadowWorkers: 1 }), 'ShadowTaskDefinition');
  t.like(defaults, { IPS_TARGET_ACCOUNTS: '', IPS_TARGET_ROLE_NAME: DEFAULT_TARGET_AUDIT_ROLE_NAME, IPS_TARGET_EXTERNAL_ID: '' });
  t.is(loadConfig(defaults).targetRoleName, DEFAULT_TARGET_AUDIT_ROLE_NAME);
});

test('the shadow role may assume the audit role in each target account and no other role: none without target accounts or without a shadow', (t) => {
  const roleArn = (account: string, name: string) => `arn:aws:iam::${account}:role/${name}`;
  const on = new TemplateResolver(template, { ...SETTINGS, ShadowWorkers: 1, TargetAccounts: TARGETS });
  t.true(on.exists('ShadowTargetAccountsPolicy'));
  const statements = shadowStatements(on);
  for (const account of TARGETS) t.true(allowsAssumeRole(statements, roleArn(account, DEFAULT_TARGET_AUDIT_ROLE_NAME)), account);
  for (const other of [
    roleArn(TARGETS[0]!, DEFAULT_TARGET_ROLE_NAME),
    roleArn(TARGETS[1]!, DEFAULT_TARGET_ROLE_NAME),
    roleArn('333333333333', DEFAULT_TARGET_AUDIT_ROLE_NAME),
    roleArn(TARGETS[0]!, 'OrganizationAccountAccessRole'),
  ]) {
    t.false(allowsAssumeRole(statements, other), other);
  }
  t.deepEqual(
    statements.flatMap(actionsOf).filter((action) => action.startsWith('sts:')),
    ['sts:AssumeRole'],
  );
  // The role name follows TargetAuditRoleName, never TargetRoleName.
  const renamed = shadowStatements(new TemplateResolver(template, { ...SETTINGS, ShadowWorkers: 1, TargetAccounts: TARGETS, TargetRoleName: 'ops-writer', TargetAuditRoleName: 'ops-reader' }));
  t.true(allowsAssumeRole(renamed, roleArn(TARGETS[1]!, 'ops-reader')));
  t.false(allowsAssumeRole(renamed, roleArn(TARGETS[1]!, 'ops-writer')));
  // Without target accounts, or without a shadow, the policy is not created.
  const noTargets = new TemplateResolver(template, { ...SETTINGS, ShadowWorkers: 1 });
  t.false(noTargets.exists('ShadowTargetAccountsPolicy'));
  t.deepEqual(
    shadowStatements(noTargets)
      .flatMap(actionsOf)
      .filter((action) => action.startsWith('sts:')),
    [],
  );
  t.false(new TemplateResolver(template, { ...SETTINGS, TargetAccounts: TARGETS }).exists('ShadowTargetAccountsPolicy'));
});
