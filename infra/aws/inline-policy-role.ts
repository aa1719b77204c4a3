// A role whose grants (`table.grant(role, ...)`, `stream.grant(role, ...)`,
// `role.addToPrincipalPolicy(...)`) all land in one inline policy of the role
// itself, instead of the separate AWS::IAM::Policy ("DefaultPolicy") an
// iam.Role creates for them.
//
// Why: the role and its permissions are then one resource, created and
// updated at once. Stacks deployed from the hand-written template that came
// before this CDK app have the worker's permissions inline; moving them to a
// separate policy resource would leave the running workers without any
// permission between the role's update and the new policy's creation.
import type { CfnCondition } from 'aws-cdk-lib';
import { Policy, PolicyDocument, Role } from 'aws-cdk-lib/aws-iam';
import type { AddToPrincipalPolicyResult, CfnPolicy, IRole, PolicyStatement, RoleProps } from 'aws-cdk-lib/aws-iam';
import type { Construct } from 'constructs';
import { keepLogicalId } from './cfn.js';

export interface InlinePolicyRoleProps extends Omit<RoleProps, 'inlinePolicies'> {
  /** Name of the inline policy that holds every grant. */
  readonly policyName: string;
}

export class InlinePolicyRole extends Role {
  /** The inline policy's document: every statement granted to this role. */
  readonly document: PolicyDocument;
  /** Statements added while `grantAs` runs, named when it returns. */
  private pending: PolicyStatement[] | undefined;

  constructor(scope: Construct, id: string, props: InlinePolicyRoleProps) {
    const { policyName, ...roleProps } = props;
    const document = new PolicyDocument();
    super(scope, id, { ...roleProps, inlinePolicies: { [policyName]: document } });
    this.document = document;
  }

  /**
   * Runs `grant` (e.g. `() => table.grant(role, 'dynamodb:GetItem')`) and names
   * the statements it adds `sid` (`sid1`, `sid2`, ... when there are several:
   * IAM wants statement ids unique within a policy), so the policy reads as a
   * list of purposes.
   */
  grantAs(sid: string, grant: () => unknown): void {
    if (this.pending) throw new Error('grantAs does not nest');
    const pending: PolicyStatement[] = [];
    this.pending = pending;
    try {
      grant();
    } finally {
      this.pending = undefined;
    }
    pending.forEach((statement, index) => {
      this.document.addStatements(statement.copy({ sid: pending.length === 1 ? sid : `${sid}${index + 1}` }));
    });
  }

  override addToPrincipalPolicy(statement: PolicyStatement): AddToPrincipalPolicyResult {
    if (this.pending) this.pending.push(statement);
    else this.document.addStatements(statement);
    return { statementAdded: true, policyDependable: this };
  }
}

/**
 * Grants that exist only in some configurations: a policy of their own,
 * attached to the role and created only while `condition` holds (CDK's policy
 * documents have no statement-level Fn::If; as a policy, cdk-nag and the
 * tests see them). Its logical ID is `id`.
 */
export function conditionalPolicy(scope: Construct, id: string, props: { policyName: string; role: IRole; condition: CfnCondition; statements: PolicyStatement[] }): Policy {
  const policy = keepLogicalId(new Policy(scope, id, { policyName: props.policyName, roles: [props.role], statements: props.statements }));
  (policy.node.defaultChild as CfnPolicy).cfnOptions.condition = props.condition;
  return policy;
}
