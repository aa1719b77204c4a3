// The grammar of an IAM identity-policy document, checked before any IAM
// call (the emulator checks little of it, and a refusal from IAM costs a
// call), then what it grants (policy/document-guard.ts). The grammar accepts
// what IAM accepts: action names in any case (AWS's own managed policies
// hold `SNS:Publish` and `securityHub:GetFindings`), both versions of the
// language, a statement or a list of them. Throws an InvalidEventError with
// the first problem found.
import { InvalidEventError } from '../faults/errors.js';
import type { DocumentGuard, GrantStatement } from '../policy/document-guard.js';
import { MAX_DOCUMENT_CHARS, documentSize } from '../policy/document-size.js';

export { MAX_DOCUMENT_CHARS, documentSize };

const TOP_KEYS = new Set(['Version', 'Id', 'Statement']);
const STATEMENT_KEYS = new Set(['Sid', 'Effect', 'Action', 'NotAction', 'Resource', 'NotResource', 'Condition']);
const VERSIONS = new Set(['2012-10-17', '2008-10-17']);
/** `*`, or a service prefix and an action name, either with wildcards; IAM reads both without regard to case. */
const ACTION = /^(\*|[A-Za-z0-9*?-]+:[A-Za-z0-9*?_-]+)$/;
const SID = /^[A-Za-z0-9]*$/;

function malformed(detail: string): never {
  throw new InvalidEventError('malformed-document', detail);
}

function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

function stringList(value: unknown, where: string): string[] {
  const list = typeof value === 'string' ? [value] : value;
  if (!Array.isArray(list) || list.length === 0) malformed(`${where} must be a non-empty string or array of strings`);
  for (const item of list) if (typeof item !== 'string' || item.length === 0) malformed(`${where} must hold non-empty strings`);
  return list as string[];
}

function checkCondition(condition: unknown, where: string): void {
  if (!isObject(condition)) malformed(`${where}.Condition must be an object`);
  for (const [operator, block] of Object.entries(condition)) {
    if (!isObject(block)) malformed(`${where}.Condition.${operator} must be an object of condition keys`);
    for (const [key, value] of Object.entries(block)) {
      const values = Array.isArray(value) ? value : [value];
      if (values.length === 0 || values.some((v) => !['string', 'number', 'boolean'].includes(typeof v))) {
        malformed(`${where}.Condition.${operator}.${key} must be a string, number, boolean or an array of them`);
      }
    }
  }
}

/** What the check learned of a valid document. */
export interface DocumentFindings {
  /** Action patterns that cover no action AWS publishes: IAM accepts them, and they grant nothing. */
  unknownActions: string[];
}

/** Throws InvalidEventError (malformed-document, document-too-large, admin-grant-refused, unknown-action). */
export function checkPolicyDocument(document: unknown, guard: DocumentGuard): DocumentFindings {
  if (!isObject(document)) malformed('document must be a JSON object');
  const size = documentSize(document);
  if (size > MAX_DOCUMENT_CHARS) throw new InvalidEventError('document-too-large', `document has ${size} characters without white space; IAM allows ${MAX_DOCUMENT_CHARS}`);
  for (const key of Object.keys(document)) if (!TOP_KEYS.has(key)) malformed(`unknown top-level key ${JSON.stringify(key).slice(0, 80)}`);
  if (document.Version !== undefined && !VERSIONS.has(document.Version as string)) malformed('Version must be "2012-10-17" or "2008-10-17"');
  if (document.Id !== undefined && typeof document.Id !== 'string') malformed('Id must be a string');
  const statements = Array.isArray(document.Statement) ? document.Statement : [document.Statement];
  if (document.Statement === undefined || statements.length === 0) malformed('Statement is required and must not be empty');
  const grants = statements.map((statement, i) => checkStatement(statement, `Statement[${i}]`));
  // The grammar of every statement first, then what they grant: a document that is malformed is malformed, whatever it grants.
  for (const grant of grants) guard.checkStatement(grant);
  const unknownActions = [...new Set(grants.flatMap((grant) => guard.unknownIn(grant.actions)))];
  if (unknownActions.length > 0 && guard.unknownActions === 'reject') {
    throw new InvalidEventError(
      'unknown-action',
      `no AWS service publishes ${unknownActions
        .slice(0, 3)
        .map((a) => JSON.stringify(a.slice(0, 80)))
        .join(', ')}${unknownActions.length > 3 ? ` and ${unknownActions.length - 3} more` : ''}`,
    );
  }
  return { unknownActions };
}

function checkStatement(statement: unknown, where: string): GrantStatement {
  if (!isObject(statement)) malformed(`${where} must be an object`);
  for (const key of Object.keys(statement)) {
    if (key === 'Principal' || key === 'NotPrincipal') malformed(`${where}.${key} is not allowed in an identity policy`);
    if (!STATEMENT_KEYS.has(key)) malformed(`${where} has unknown key ${JSON.stringify(key).slice(0, 80)}`);
  }
  if (statement.Sid !== undefined && (typeof statement.Sid !== 'string' || !SID.test(statement.Sid))) malformed(`${where}.Sid must be alphanumeric`);
  if (statement.Effect !== 'Allow' && statement.Effect !== 'Deny') malformed(`${where}.Effect must be "Allow" or "Deny"`);
  if ((statement.Action === undefined) === (statement.NotAction === undefined)) malformed(`${where} needs exactly one of Action and NotAction`);
  if ((statement.Resource === undefined) === (statement.NotResource === undefined)) malformed(`${where} needs exactly one of Resource and NotResource`);
  const actionKey = statement.Action !== undefined ? 'Action' : 'NotAction';
  const actions = stringList(statement[actionKey], `${where}.${actionKey}`);
  for (const action of actions) if (!ACTION.test(action)) malformed(`${where}.${actionKey} has an invalid action ${JSON.stringify(action).slice(0, 80)}`);
  const resourceKey = statement.Resource !== undefined ? 'Resource' : 'NotResource';
  const resources = stringList(statement[resourceKey], `${where}.${resourceKey}`);
  if (statement.Condition !== undefined) checkCondition(statement.Condition, where);
  const sid = typeof statement.Sid === 'string' && statement.Sid !== '' ? ` (Sid ${statement.Sid.slice(0, 40)})` : '';
  return { where: `${where}${sid}`, effect: statement.Effect, actionKey, actions, resourceKey, resources };
}
