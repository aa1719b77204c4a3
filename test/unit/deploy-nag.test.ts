// cdk-nag's AWS Solutions rules on the CDK app (infra/aws/app.ts), both of its
// stacks (the main one and the target account's): no finding
// left unacknowledged, every acknowledgment with its reason and every one of
// them needed. cdk-nag 3 is a CDK policy-validation plugin: it is registered
// with Validations.of(app).addPlugins (what Aspects.of(app).add was in cdk-nag
// 2), acknowledgments are Validations.of(construct).acknowledge (formerly
// NagSuppressions), and an unacknowledged error or warning fails synthesis.
import test from 'ava';
import { Validations } from 'aws-cdk-lib';
import type { App } from 'aws-cdk-lib';
import { Annotations, Match } from 'aws-cdk-lib/assertions';
import { AttributeType, Table } from 'aws-cdk-lib/aws-dynamodb';
import { AccountRootPrincipal, PolicyStatement, Role } from 'aws-cdk-lib/aws-iam';
import { AwsSolutionsChecks } from 'cdk-nag';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildApp } from '../../infra/aws/app.js';

const outdir = mkdtempSync(join(tmpdir(), 'ips-nag-'));
test.after.always(() => rmSync(outdir, { recursive: true, force: true }));
let apps = 0;
const nextOutdir = () => join(outdir, String(apps++));

/** KCL 2 (kcl/pom.xml today) and KCL 3 grant different tables. */
const KCL_VERSIONS = [undefined, '3.0.0'];

/** Runs the AWS Solutions pack on the app directly, to read its findings rather than a failed synthesis. */
const check = (app: App) => new AwsSolutionsChecks(undefined, { verbose: true }).validateScope(app);

/** The acknowledgments recorded on the app's constructs: where, which rule, why. */
function acknowledgments(app: App): { path: string; id: string; reason: string }[] {
  return app.node
    .findAll()
    .flatMap((construct) =>
      construct.node.metadata
        .filter((entry) => entry.type === Validations.ACKNOWLEDGED_RULES_METADATA_KEY)
        .flatMap((entry) => Object.entries(entry.data as Record<string, string>).map(([id, reason]) => ({ path: construct.node.path, id: id.replace(/^annotation::/i, ''), reason }))),
    );
}

for (const kclVersion of KCL_VERSIONS) {
  const label = `KCL ${kclVersion ?? 'of kcl/pom.xml'}`;

  test(`AwsSolutionsChecks: no unacknowledged error or warning (${label})`, (t) => {
    const { app } = buildApp({ outdir: nextOutdir(), nag: false, ...(kclVersion ? { kclVersion } : {}) });
    Validations.of(app).addPlugins(new AwsSolutionsChecks(app, { verbose: true }));
    // The plugin fails synthesis on any finding that is not acknowledged, errors and warnings alike.
    t.notThrows(() => app.synth());
    const report = check(app);
    t.deepEqual(report.violations, [], JSON.stringify(report.violations, null, 2));
    t.true(report.success);
  });

  test(`every acknowledgment says why, and answers a finding the stack has (${label})`, (t) => {
    const { app, stack, targetStack } = buildApp({ outdir: nextOutdir(), nag: false, ...(kclVersion ? { kclVersion } : {}) });
    const acknowledged = acknowledgments(app);
    t.true(
      acknowledged.some(({ path }) => path.startsWith(`${targetStack.node.path}/`)),
      'the target-account stack is checked too',
    );
    t.true(acknowledged.length > 0);
    for (const { id, reason, path } of acknowledged) {
      // A reason is a sentence about this resource, not a placeholder.
      t.true(reason.length >= 80 && /\s/.test(reason), `${path} ${id}: ${reason}`);
    }
    const nag = acknowledged.filter(({ id }) => id.startsWith('AwsSolutions-'));
    const construct = acknowledged.filter(({ id }) => !id.startsWith('AwsSolutions-'));
    for (const { id, path } of nag) t.regex(id, /^AwsSolutions-[A-Z]+\d+(\[.+\])?$/, path);
    // CDK's own construct warnings: none left, errors neither.
    for (const each of [stack, targetStack]) {
      t.deepEqual(Annotations.fromStack(each).findWarning('*', Match.anyValue()), [], each.stackName);
      t.deepEqual(Annotations.fromStack(each).findError('*', Match.anyValue()), [], each.stackName);
    }

    // The same stack with every acknowledgment left out: its findings are exactly the acknowledged ones.
    const acknowledge = Validations.prototype.acknowledge;
    let raw: ReturnType<typeof buildApp>;
    Validations.prototype.acknowledge = () => undefined;
    try {
      raw = buildApp({ outdir: nextOutdir(), nag: false, ...(kclVersion ? { kclVersion } : {}) });
    } finally {
      Validations.prototype.acknowledge = acknowledge;
    }
    t.deepEqual(acknowledgments(raw.app), []);
    const within = (finding: string, path: string) => finding === path || finding.startsWith(`${path}/`);
    const found = check(raw.app).violations.flatMap((violation) =>
      violation.violatingResources.map((resource) => ({ rule: violation.ruleName, path: resource.constructPath ?? resource.resourceLogicalId ?? '?' })),
    );
    t.true(found.length > 0, 'the acknowledgments are what keeps the stack clean');
    for (const finding of found) {
      t.true(
        nag.some(({ id, path }) => id === finding.rule && within(finding.path, path)),
        `${finding.rule} at ${finding.path} is acknowledged`,
      );
    }
    for (const { id, path } of nag) {
      t.true(
        found.some((finding) => finding.rule === id && within(finding.path, path)),
        `${id} at ${path} answers a finding (a stale acknowledgment would hide a future one)`,
      );
    }
    const warnings = [raw.stack, raw.targetStack].flatMap((each) => Annotations.fromStack(each).findWarning('*', Match.anyValue()));
    t.deepEqual(
      warnings.map((warning) => ({ path: warning.id.replace(/^\//, ''), ack: /\[ack: ([^\]]+)\]$/.exec(String(warning.entry.data))?.[1] })).sort((a, b) => a.path.localeCompare(b.path)),
      construct.map(({ path, id }) => ({ path, ack: id })).sort((a, b) => a.path.localeCompare(b.path)),
      'the construct warnings acknowledged are the ones the stack raises',
    );
  });
}

test('the checks do fail: an unencrypted, unrecoverable table and an iam:* grant stop the synthesis', (t) => {
  const { app, stack } = buildApp({ outdir: nextOutdir() });
  new Table(stack, 'Careless', { partitionKey: { name: 'id', type: AttributeType.STRING } });
  const admin = new Role(stack, 'Admin', { assumedBy: new AccountRootPrincipal() });
  admin.addToPrincipalPolicy(new PolicyStatement({ actions: ['iam:*'], resources: ['*'] }));
  const rules = check(app).violations.map((violation) => violation.ruleName);
  t.true(rules.includes('AwsSolutions-DDB3'), rules.join(', '));
  t.true(rules.includes('AwsSolutions-IAM5[Action::iam:*]'), rules.join(', '));
  t.true(rules.includes('AwsSolutions-IAM5[Resource::*]'), rules.join(', '));
  // buildApp registers the checks: the app itself refuses to synthesize.
  const error = t.throws(() => app.synth());
  for (const rule of ['AwsSolutions-DDB3', 'AwsSolutions-IAM5[Action::iam:*]']) t.true(error?.message.includes(rule), rule);
});
