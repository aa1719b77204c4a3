// AWS's own managed policies, documents IAM accepts and that the team did
// not write, through the processor's checks: every one that fits is accepted
// or refused by the guardrail, never refused as malformed, and the guardrail
// refuses exactly those that grant an escalation action on all resources.
import test from 'ava';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { projectRoot } from '../../src/config/paths.js';
import { DocumentGuard } from '../../src/policy/document-guard.js';
import { ESCALATION_ACTIONS } from '../../src/policy/escalation-actions.js';
import { REPORT_BEGIN, REPORT_END, awsManagedPolicies, fittingManagedPolicies, judge, refusedReport } from '../../tools/corpus/aws-managed-policies.js';

const fitting = fittingManagedPolicies();
const verdicts = judge(fitting, new DocumentGuard());

test('every AWS managed policy that fits is accepted or refused by the guardrail, never as malformed', (t) => {
  const counts = new Map<string, number>();
  for (const v of verdicts) counts.set(v.verdict, (counts.get(v.verdict) ?? 0) + 1);
  t.log(`${awsManagedPolicies().length} AWS managed policies, ${fitting.length} fit: ${[...counts].map(([k, n]) => `${k} ${n}`).join(', ')}`);
  t.true(fitting.length > 1_000);
  t.deepEqual(
    verdicts.filter((v) => v.verdict !== 'accepted' && v.verdict !== 'admin-grant-refused').map((v) => `${v.policy.name}: ${v.verdict} ${v.detail}`),
    [],
  );
});

test('the broad but safe ones pass; the administrator ones do not', (t) => {
  const verdictOf = (name: string) => verdicts.find((v) => v.policy.name === name)?.verdict;
  for (const name of ['PowerUserAccess', 'AmazonS3FullAccess', 'IAMReadOnlyAccess', 'AWSAgentlessDiscoveryService', 'AWSConnector', 'AmazonDetectiveFullAccess'])
    t.is(verdictOf(name), 'accepted', name);
  for (const name of ['AdministratorAccess', 'IAMFullAccess']) t.is(verdictOf(name), 'admin-grant-refused', name);
  // ReadOnlyAccess and SecurityAudit are larger than a customer-managed policy may be: what they grant passes, statement by statement.
  const guard = new DocumentGuard();
  for (const name of ['ReadOnlyAccess', 'SecurityAudit', 'ViewOnlyAccess']) {
    const policy = awsManagedPolicies().find((p) => p.name === name)!;
    const statements = (Array.isArray(policy.document.Statement) ? policy.document.Statement : [policy.document.Statement]) as object[];
    for (const [i, statement] of (statements as Record<string, unknown>[]).entries()) {
      const list = (value: unknown) => (Array.isArray(value) ? value : [value]) as string[];
      const grant = {
        where: `${name} Statement[${i}]`,
        effect: statement.Effect as 'Allow',
        actionKey: statement.Action !== undefined ? ('Action' as const) : ('NotAction' as const),
        actions: list(statement.Action ?? statement.NotAction),
        resourceKey: statement.Resource !== undefined ? ('Resource' as const) : ('NotResource' as const),
        resources: list(statement.Resource ?? statement.NotResource),
      };
      t.notThrows(() => guard.checkStatement(grant), grant.where);
    }
  }
});

test('the guardrail refuses a managed policy exactly when one of its Allow statements grants an escalation action on "*" or on any NotResource', (t) => {
  // An independent, plainer reading of the same rule, for the common shapes: lower-cased globs, Resource "*" only.
  const glob = (pattern: string) =>
    new RegExp(
      `^${pattern
        .toLowerCase()
        .replace(/[.+^${}()|[\]\\]/g, '\\$&')
        .replace(/\*/g, '.*')
        .replace(/\?/g, '.')}$`,
    );
  const escalation = ESCALATION_ACTIONS.map((e) => e.action.toLowerCase()).filter((a) => a !== '*');
  const list = (value: unknown) => (Array.isArray(value) ? value : [value]) as string[];
  const plainlyRefused = (document: Record<string, unknown>) =>
    list(document.Statement).some((s: any) => {
      if (s.Effect !== 'Allow') return false;
      const everywhere = s.NotResource !== undefined || list(s.Resource).includes('*');
      if (!everywhere) return false;
      if (s.Action !== undefined) return list(s.Action).some((a) => a === '*' || escalation.some((e) => glob(a).test(e)));
      return escalation.some((e) => !list(s.NotAction).some((a) => glob(a).test(e)));
    });
  const mismatched = verdicts.filter((v) => plainlyRefused(v.policy.document) && v.verdict !== 'admin-grant-refused').map((v) => v.policy.name);
  t.deepEqual(mismatched, [], 'everything the plain reading refuses, the guardrail refuses');
  // The guardrail refuses more: patterns that cover every resource of the action's kind (arn:aws:iam::*:role/*).
  const beyond = verdicts.filter((v) => v.verdict === 'admin-grant-refused' && !plainlyRefused(v.policy.document));
  for (const v of beyond) t.regex(v.detail ?? '', /on all resources \(Resource .*(\*|arn:)/, v.policy.name);
});

test('docs/event-contract.md lists the AWS managed policies the guardrail refuses, as they are refused now', (t) => {
  const text = readFileSync(join(projectRoot(), 'docs', 'event-contract.md'), 'utf8');
  const section = text.slice(text.indexOf(REPORT_BEGIN), text.indexOf(REPORT_END) + REPORT_END.length);
  t.is(section, refusedReport(verdicts), 'run: npx tsx tools/corpus/write-report.ts');
});

test('docs/guardrails.md names every action of the escalation set', (t) => {
  const text = readFileSync(join(projectRoot(), 'docs', 'guardrails.md'), 'utf8');
  for (const entry of ESCALATION_ACTIONS) t.true(text.includes(`| \`${entry.action}\` |`), entry.action);
});
