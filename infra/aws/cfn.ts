// What every construct of the stack does to its CloudFormation resources.
//
// Logical IDs are kept as they were in the hand-written template the CDK app
// replaced, whatever construct a resource now sits in: the tables and the
// stream are named and retained, so a new logical ID would mean a second
// resource of the same name, and any other one a replacement on deploy.
import { Stack, Validations } from 'aws-cdk-lib';
import type { CfnElement, CfnResource } from 'aws-cdk-lib';
import type { IConstruct } from 'constructs';

/** Gives the construct's CloudFormation resource a fixed logical ID, by default the construct's own id. */
export function keepLogicalId<T extends IConstruct>(construct: T, id = construct.node.id): T {
  (construct.node.defaultChild as CfnResource).overrideLogicalId(id);
  return construct;
}

/** The same for a CloudFormation element created directly (an L1 resource, a condition). */
export function keepElementId<T extends CfnElement>(element: T, id = element.node.id): T {
  element.overrideLogicalId(id);
  return element;
}

/** Acknowledges cdk-nag findings on a construct; every one says why. */
export function acknowledge(scope: IConstruct, findings: Record<string, string>): void {
  for (const [id, reason] of Object.entries(findings)) Validations.of(scope).acknowledge({ id, reason });
}

/**
 * A value as cdk-nag writes it in a finding's id: a parameter's Ref as
 * `<Name>`, a join of such references and text as the joined text (the
 * shadow's names, `<ApplicationName>-shadow`).
 */
export function findingName(scope: IConstruct, value: string): string {
  const part = (resolved: unknown): string => {
    if (typeof resolved === 'string') return resolved;
    const ref = (resolved as { Ref?: string }).Ref;
    if (ref !== undefined) return `<${ref}>`;
    const join = (resolved as { 'Fn::Join'?: [string, unknown[]] })['Fn::Join'];
    if (join) return join[1].map(part).join(join[0]);
    throw new Error(`no finding name for ${JSON.stringify(resolved)}`);
  };
  return part(Stack.of(scope).resolve(value));
}
