// The grammar of an IAM identity-policy document, checked before any IAM
// call (the emulator checks little of it, and a refusal from IAM costs a
// call). Throws an InvalidEventError with the first problem found.
import { InvalidEventError } from '../faults/errors.js';

const TOP_KEYS = new Set(['Version', 'Id', 'Statement']);
const STATEMENT_KEYS = new Set(['Sid', 'Effect', 'Action', 'NotAction', 'Resource', 'NotResource', 'Condition']);
const VERSIONS = new Set(['2012-10-17', '2008-10-17']);
const ACTION = /^(\*|[a-z0-9-]+:[A-Za-z0-9*?]+)$/;
const SID = /^[A-Za-z0-9]*$/;
/** IAM's limit: 6,144 characters, whitespace not counted. */
export const MAX_DOCUMENT_CHARS = 6_144;

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

/** Size as IAM counts it: the JSON without whitespace (outside strings there is none after stringify). */
export function documentSize(document: unknown): number {
  return JSON.stringify(document).replace(/\s/g, '').length;
}

/** Throws InvalidEventError (malformed-document, document-too-large, admin-grant-refused). */
export function checkPolicyDocument(document: unknown, options: { refuseAdminGrant: boolean }): void {
  if (!isObject(document)) malformed('document must be a JSON object');
  const size = documentSize(document);
  if (size > MAX_DOCUMENT_CHARS) throw new InvalidEventError('document-too-large', `document has ${size} characters without whitespace; IAM allows ${MAX_DOCUMENT_CHARS}`);
  for (const key of Object.keys(document)) if (!TOP_KEYS.has(key)) malformed(`unknown top-level key ${JSON.stringify(key).slice(0, 80)}`);
  if (document.Version !== undefined && !VERSIONS.has(document.Version as string)) malformed('Version must be "2012-10-17" or "2008-10-17"');
  if (document.Id !== undefined && typeof document.Id !== 'string') malformed('Id must be a string');
  const statements = Array.isArray(document.Statement) ? document.Statement : [document.Statement];
  if (document.Statement === undefined || statements.length === 0) malformed('Statement is required and must not be empty');
  statements.forEach((statement, i) => {
    const where = `Statement[${i}]`;
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
    // The guardrail: no stream event may grant full administrator access.
    if (
      options.refuseAdminGrant &&
      statement.Effect === 'Allow' &&
      actionKey === 'Action' &&
      actions.some((a) => a === '*' || a === '*:*') &&
      resourceKey === 'Resource' &&
      resources.includes('*')
    ) {
      throw new InvalidEventError('admin-grant-refused', `${where} allows Action "*" on Resource "*"`);
    }
  });
}
