// Checks the worker role in the synthesized template against what it may
// touch: IAM policies under the managed path, its own tables, its own stream,
// the metrics log group its CloudWatch agent sidecar writes, and the target
// role in each target account (which it assumes through the SDK's
// temporary-credentials provider: sts:AssumeRole, and no other STS call).
// It reads the template as CloudFormation will (parameters, conditions,
// Fn::Sub, Fn::Join, Ref, Fn::GetAtt resolved offline with a stand-in account),
// not the CDK constructs that made it, so it is a second opinion on the CDK
// app (infra/aws/stack.ts) rather than a restatement of it, and fails on any
// grant that reaches past those resources.

export type { Json, JsonObject, ResolveContext } from './template-resolver.js';
export { STAND_IN, TemplateResolver } from './template-resolver.js';
import type { Json, JsonObject } from './template-resolver.js';
import { STAND_IN, TemplateResolver } from './template-resolver.js';

export interface Statement {
  Sid?: string;
  Effect: string;
  Action?: string | string[];
  NotAction?: string | string[];
  Resource?: string | string[];
  NotResource?: string | string[];
  Condition?: JsonObject;
}

export interface Scope {
  /** ARN prefix of the managed policies, e.g. arn:aws:iam::123456789012:policy/stream-managed/ */
  managedPoliciesArnPrefix: string;
  /** ARNs of the tables the worker may use. */
  tableArns: string[];
  streamArn: string;
  /** ARN of the log group the CloudWatch agent sidecar (same task role) writes the EMF documents to. */
  metricsLogGroupArn: string;
  /** The role the worker may assume in each target account; none without target accounts. */
  targetRoles?: { roleName: string; accounts: string[] };
}

/** Actions AWS authorizes only against "*", each with the condition key that must narrow it. */
const RESOURCELESS: Record<string, string> = { 'cloudwatch:PutMetricData': 'cloudwatch:namespace' };
/**
 * Read-only list actions that IAM grants on `*` only and no condition key can
 * narrow. They reveal names and metadata, never change anything.
 */
const LIST_ONLY = new Set(['iam:ListPolicies']);
// iam:GetAccountAuthorizationDetails is not one of them: it returns every
// policy's documents (and, with other filters, users' and roles'), so the
// worker never holds it. Only the drift audit's role does (operations.ts),
// and the audit looks at no document outside the managed path.
/** Producing is the upstream systems' job, and the ops tools' (redrive); a worker that writes to its own stream could loop. */
const FORBIDDEN = new Set(['kinesis:PutRecord', 'kinesis:PutRecords']);

const list = (value: string | string[] | undefined): string[] => (value === undefined ? [] : Array.isArray(value) ? value : [value]);

export function checkLeastPrivilege(statements: Statement[], scope: Scope): string[] {
  const violations: string[] = [];
  statements.forEach((statement, index) => {
    const name = statement.Sid ?? `#${index}`;
    if (statement.Effect !== 'Allow') return; // a Deny only narrows
    if (statement.NotAction !== undefined) violations.push(`${name}: NotAction grants everything else`);
    if (statement.NotResource !== undefined) violations.push(`${name}: NotResource grants everything else`);
    const actions = list(statement.Action);
    const resources = list(statement.Resource);
    if (actions.length === 0) violations.push(`${name}: no Action`);
    if (resources.length === 0 && statement.NotResource === undefined) violations.push(`${name}: no Resource`);
    for (const action of actions) {
      if (action.includes('*') || action.includes('?')) violations.push(`${name}: wildcard action ${action}`);
      if (FORBIDDEN.has(action)) violations.push(`${name}: ${action} is not the worker's`);
    }
    for (const resource of resources) {
      if (resource === '*') {
        const narrowed = actions.every((action) => {
          if (LIST_ONLY.has(action)) return true;
          const key = RESOURCELESS[action];
          return key !== undefined && hasConditionKey(statement.Condition, key);
        });
        if (!narrowed) violations.push(`${name}: ${actions.join(', ')} on Resource "*"`);
        continue;
      }
      for (const action of actions) {
        const service = action.split(':')[0];
        const problem = service === 'sts' ? outsideTargetRoles(action, resource, statement.Condition, scope) : outOfScope(service ?? '', resource, scope);
        if (problem) violations.push(`${name}: ${action} on ${resource}: ${problem}`);
      }
    }
  });
  return violations;
}

function outOfScope(service: string, resource: string, scope: Scope): string | undefined {
  switch (service) {
    case 'iam':
      // The prefix ends in "/", so a sibling path such as /stream-managed-other/ does not match.
      return resource.startsWith(scope.managedPoliciesArnPrefix) ? undefined : `not under ${scope.managedPoliciesArnPrefix}`;
    case 'dynamodb':
      return scope.tableArns.some((table) => resource === table || resource === `${table}/index/*`) ? undefined : 'not one of its tables';
    case 'kinesis':
      return resource === scope.streamArn || resource.startsWith(`${scope.streamArn}/consumer/`) ? undefined : 'not its stream';
    case 'logs':
      return resource === scope.metricsLogGroupArn ? undefined : 'not the metrics log group';
    case 'cloudwatch':
      return 'CloudWatch is granted only as PutMetricData with a namespace condition';
    default:
      return `service ${service} is not the worker's`;
  }
}

/**
 * STS: AssumeRole of the target role, by its name, in a target account: the
 * account in the ARN, or a wildcard account that aws:ResourceAccount limits to
 * target accounts (the main stack's way, target-account.ts).
 */
function outsideTargetRoles(action: string, resource: string, condition: JsonObject | undefined, scope: Scope): string | undefined {
  if (action !== 'sts:AssumeRole') return 'the only STS call is AssumeRole of a target role';
  const targets = scope.targetRoles;
  if (!targets || targets.accounts.length === 0) return 'no target account to assume a role in';
  const match = /^arn:[^:]+:iam::([^:]*):role\/(.*)$/.exec(resource);
  if (!match) return 'not a role';
  const [, account, name] = match as unknown as [string, string, string];
  if (name !== targets.roleName) return `not the target role ${targets.roleName}`;
  if (account === '*') {
    const limited = conditionValues(condition, 'StringEquals', 'aws:ResourceAccount');
    if (limited.length === 0) return 'any account: no aws:ResourceAccount condition';
    const outside = limited.filter((item) => !targets.accounts.includes(item));
    return outside.length === 0 ? undefined : `accounts ${outside.join(', ')} are not target accounts`;
  }
  return targets.accounts.includes(account) ? undefined : `account ${account} is not a target account`;
}

function conditionValues(condition: JsonObject | undefined, operator: string, key: string): string[] {
  const block = condition?.[operator];
  if (!block || typeof block !== 'object' || Array.isArray(block)) return [];
  const values = (block as JsonObject)[key];
  return values === undefined || values === null ? [] : ([] as Json[]).concat(values).map(String);
}

/** IAM's wildcards in an ARN or action: `*` any run of characters, `?` one. */
function globMatches(pattern: string, value: string, ignoreCase = false): boolean {
  const source = pattern
    .replace(/[.+^${}()|[\]\\]/g, '\\$&')
    .replace(/\*/g, '.*')
    .replace(/\?/g, '.');
  return new RegExp(`^${source}$`, ignoreCase ? 'i' : '').test(value);
}

/**
 * Whether the statements let their holder call sts:AssumeRole on `roleArn`,
 * as IAM decides it from an identity policy: an Allow whose action and
 * resource match and whose conditions hold, and no Deny that matches. The
 * request context is what STS sets for the call: aws:ResourceAccount, the
 * role's account. A condition this does not evaluate throws, so that a test
 * built on it cannot pass by not understanding a policy.
 */
export function allowsAssumeRole(statements: Statement[], roleArn: string): boolean {
  const account = /^arn:[^:]+:iam::(\d{12}):role\//.exec(roleArn)?.[1];
  if (!account) throw new Error(`not a role ARN: ${roleArn}`);
  const context: Record<string, string> = { 'aws:ResourceAccount': account };
  const applies = (statement: Statement) => {
    if (statement.NotAction !== undefined || statement.NotResource !== undefined) throw new Error(`${statement.Sid ?? 'a statement'}: NotAction and NotResource are not evaluated`);
    if (!list(statement.Action).some((action) => globMatches(action, 'sts:AssumeRole', true))) return false;
    if (!list(statement.Resource).some((resource) => globMatches(resource, roleArn))) return false;
    return Object.entries(statement.Condition ?? {}).every(([operator, block]) => {
      if (operator !== 'StringEquals') throw new Error(`condition operator ${operator} is not evaluated`);
      return Object.entries(block as JsonObject).every(([key, values]) => {
        const actual = context[key];
        if (actual === undefined) throw new Error(`condition key ${key} is not in the request context`);
        return ([] as Json[]).concat(values).map(String).includes(actual);
      });
    });
  };
  const matching = statements.filter(applies);
  return matching.some((statement) => statement.Effect === 'Allow') && !matching.some((statement) => statement.Effect === 'Deny');
}

function hasConditionKey(condition: JsonObject | undefined, key: string): boolean {
  return Object.values(condition ?? {}).some((block) => typeof block === 'object' && block !== null && !Array.isArray(block) && key in block);
}

/** The policy types that can add permissions to a role from outside it. */
const ATTACHED_POLICY_TYPES = ['AWS::IAM::Policy', 'AWS::IAM::ManagedPolicy'];

/** The logical ID of the worker's role in the template. */
export const WORKER_ROLE = 'TaskRole';

/**
 * The worker role's statements and the scope they must stay in, for one set
 * of parameter values: its inline policies and every policy resource attached
 * to it that CloudFormation creates with those values. `managedPolicyArns`
 * lists the managed policies (AWS or customer) the role names itself, whose
 * statements are not in the template and so cannot be checked here.
 */
export function workerRoleUnderTest(
  template: JsonObject,
  overrides: Record<string, string | number | string[]> = {},
): { statements: Statement[]; scope: Scope; resolver: TemplateResolver; managedPolicyArns: Json[] } {
  const resolver = new TemplateResolver(template, { ImageUri: 'image', VpcId: 'vpc-1', SubnetIds: ['subnet-1'], ...overrides });
  const role = resolver.resolve(resolver.resource(WORKER_ROLE)) as JsonObject;
  const roleProperties = role.Properties as JsonObject;
  const documentsOf = (policies: JsonObject[]) => policies.map((policy) => policy.PolicyDocument as JsonObject);
  const attached = ATTACHED_POLICY_TYPES.flatMap((type) => resolver.resourcesOfType(type))
    .map((logicalId) => resolver.resolve(resolver.resource(logicalId)) as JsonObject)
    .filter((policy) => {
      const roles = ((policy.Properties as JsonObject).Roles ?? []) as Json[];
      return roles.includes(resolver.resolve({ Ref: WORKER_ROLE }));
    })
    .map((policy) => policy.Properties as JsonObject);
  const documents = [...documentsOf((roleProperties.Policies ?? []) as JsonObject[]), ...documentsOf(attached)];
  const statements = documents.flatMap((document) => (document.Statement ?? []) as unknown as Statement[]);
  const { partition, region, accountId } = STAND_IN;
  const app = String(resolver.parameters.ApplicationName);
  const tableArn = (name: string) => `arn:${partition}:dynamodb:${region}:${accountId}:table/${name}`;
  const ownTables = ['LedgerTable', 'DeadLetterTable', 'LeaseTable', 'EventArchiveTable'].map((id) => resolver.resolve({ 'Fn::GetAtt': [id, 'Arn'] }) as string);
  return {
    statements,
    resolver,
    managedPolicyArns: (roleProperties.ManagedPolicyArns ?? []) as Json[],
    scope: {
      managedPoliciesArnPrefix: `arn:${partition}:iam::${accountId}:policy${String(resolver.parameters.ManagedPathPrefix)}`,
      // KCL 3 creates these two itself; they carry the application's name like the lease table.
      tableArns: [...ownTables, tableArn(`${app}-CoordinatorState`), tableArn(`${app}-WorkerMetricStats`)],
      streamArn: resolver.resolve({ 'Fn::GetAtt': ['Stream', 'Arn'] }) as string,
      metricsLogGroupArn: resolver.resolve({ 'Fn::GetAtt': ['MetricsLogGroup', 'Arn'] }) as string,
      targetRoles: {
        roleName: String(resolver.parameters.TargetRoleName),
        accounts: ([] as (string | number)[])
          .concat(resolver.parameters.TargetAccounts ?? [])
          .map(String)
          .filter((account) => account !== ''),
      },
    },
  };
}
