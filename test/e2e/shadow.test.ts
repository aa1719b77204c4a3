// End to end through the daemon: a shadow worker (IPS_MODE=shadow) reads the
// live stream under its own KCL application and tables. Alone first, it
// plans every record (outcome `planned`, with the action the live processor
// would take) and IAM is unchanged; then the live worker runs beside it and
// applies what the shadow planned; the shadow keeps planning, and never
// makes an IAM write.
import test from 'ava';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { projectRoot } from '../../src/config/paths.js';
import type { ShadowReport } from '../../src/ops/shadow-report.js';
import { CreatePolicyCommand, ListPoliciesCommand } from '@aws-sdk/client-iam';
import { loadConfig } from '../../src/config/config.js';
import { upsertedEvent, deletedEvent } from '../../src/contract/wire-event.js';
import { createAwsClients, destroyAwsClients } from '../../src/aws/clients.js';
import { policyDocument } from '../../src/ops/load.js';
import { eventRecord, putRecords } from '../../src/ops/producer.js';
import { provision } from '../../src/ops/provision.js';
import { startTestDaemon, waitForOutcomes } from '../../tools/harness/daemon.js';
import type { TestDaemon } from '../../tools/harness/daemon.js';
import { startRealisticIam } from '../../tools/harness/realistic-iam.js';
import type { RealisticIam } from '../../tools/harness/realistic-iam.js';
import { startTestStack } from '../../tools/harness/stack.js';
import type { TestStack } from '../../tools/harness/stack.js';
import { readOutcomes, sentRecordId } from '../../tools/oracle/outcome-log.js';

let testStack: TestStack | undefined;
let layer: RealisticIam | undefined;
const daemons: TestDaemon[] = [];
test.before(async () => {
  testStack = await startTestStack({ shards: 1 });
});
test.after.always(async () => {
  for (const daemon of daemons) await daemon.stop();
  await layer?.close();
  await testStack?.stack.stop();
});

/** `ips plan --shadow-report --json` as an operator runs it (judging every entry now: no visibility window). */
async function shadowReport(): Promise<{ code: number; report: ShadowReport }> {
  const env = { ...process.env, ...testStack!.stack.env, IPS_IAM_VISIBILITY_WINDOW_MS: '0' };
  try {
    const { stdout } = await promisify(execFile)(process.execPath, [join(projectRoot(), 'dist', 'ops', 'cli.js'), 'plan', '--shadow-report', '--json'], { env });
    return { code: 0, report: JSON.parse(stdout) };
  } catch (error) {
    const failed = error as { code: number; stdout: string };
    if (typeof failed.code !== 'number' || !failed.stdout) throw error;
    return { code: failed.code, report: JSON.parse(failed.stdout) };
  }
}

/** IAM writes: every action that is not a read. */
const writesIn = (calls: Record<string, number>) => Object.entries(calls).filter(([action]) => !/^(Get|List)/.test(action));

test('a shadow worker plans every record and writes nothing to IAM, alone and beside the live one', async (t) => {
  const { stack, config, clients } = testStack!;
  const aws = clients();
  // The shadow's own namespace: its KCL application, lease table, ledger and dead letters.
  const shadowEnv = { ...stack.env, IPS_MODE: 'shadow' };
  const shadowConfig = loadConfig(shadowEnv);
  t.is(shadowConfig.ledgerTable, `${config.appName}-shadow-ledger`);
  t.is(shadowConfig.leaseTable, `${config.appName}-shadow`);
  const shadowClients = createAwsClients(shadowConfig, { env: shadowEnv });
  await provision(shadowConfig, shadowClients, 1);
  destroyAwsClients(shadowClients);
  // Every IAM call of the shadow goes through a layer that counts them by action.
  layer = await startRealisticIam({ target: stack.env.AWS_ENDPOINT_URL_IAM!, lagMs: [0, 0] });
  const shadow = startTestDaemon(testStack!, 'shadow', { IPS_MODE: 'shadow', AWS_ENDPOINT_URL_IAM: layer.endpoint });
  daemons.push(shadow);

  // A policy someone else made under the managed path: the shadow must say the live worker would refuse it.
  await aws.iam.send(new CreatePolicyCommand({ PolicyName: 'shadow-foreign', Path: config.managedPathPrefix, PolicyDocument: JSON.stringify(policyDocument('foreign', 1)) }));
  const before = (await aws.iam.send(new ListPoliciesCommand({ Scope: 'Local' }))).Policies?.map((p) => p.Arn).sort();

  const first = await putRecords(aws.kinesis, config.streamName, [
    eventRecord(upsertedEvent({ eventId: 's1', name: 'shadow-new', revision: 1, document: policyDocument('shadow-new', 1) })),
    eventRecord(upsertedEvent({ eventId: 's2', name: 'shadow-foreign', revision: 1, document: policyDocument('shadow-foreign', 2) })),
    eventRecord(deletedEvent({ eventId: 's3', name: 'shadow-never', revision: 1 })),
  ]);
  const planned = await waitForOutcomes([shadow.logFile], first, 180_000);
  const line = (i: number) => planned.get(sentRecordId(first[i]!)) as unknown as { outcome: string; action: string; reason?: string };
  t.deepEqual(
    first.map((_, i) => [line(i).outcome, line(i).action]),
    [
      ['planned', 'create'],
      ['planned', 'refuse'],
      ['planned', 'none'],
    ],
  );
  t.is(line(1).reason, 'not-owned');
  t.deepEqual((await aws.iam.send(new ListPoliciesCommand({ Scope: 'Local' }))).Policies?.map((p) => p.Arn).sort(), before, 'IAM unchanged');
  t.deepEqual(writesIn(layer.stats.calls), [], `the shadow made IAM reads only: ${JSON.stringify(layer.stats.calls)}`);

  // The shadow report: what was planned, and that IAM does not hold it yet.
  const early = await shadowReport();
  t.is(early.code, 1, 'IAM disagrees with what the shadow planned');
  const earlyNew = early.report.policies.find((p) => p.policy === 'shadow-new');
  t.like(earlyNew, { planned: 'create', state: 'present', agrees: false });

  // The live worker beside it applies what the shadow planned.
  const live = startTestDaemon(testStack!, 'live');
  daemons.push(live);
  const applied = await waitForOutcomes([live.logFile], first, 180_000);
  t.deepEqual(
    first.map((put) => applied.get(sentRecordId(put))?.outcome),
    ['created', 'rejected', 'absent'],
    'what the shadow planned is what the live worker did',
  );

  // Both keep going: the shadow plans the next records, and still writes nothing.
  const second = await putRecords(aws.kinesis, config.streamName, [eventRecord(upsertedEvent({ eventId: 's4', name: 'shadow-new', revision: 2, document: policyDocument('shadow-new', 2) }))]);
  const [liveNext, shadowNext] = await Promise.all([waitForOutcomes([live.logFile], second, 120_000), waitForOutcomes([shadow.logFile], second, 120_000)]);
  t.is(liveNext.get(sentRecordId(second[0]!))?.outcome, 'updated');
  const next = shadowNext.get(sentRecordId(second[0]!)) as unknown as { outcome: string; action: string };
  t.is(next.outcome, 'planned');
  t.true(['update', 'none'].includes(next.action), `update before the live worker wrote it, none after: ${next.action}`);
  t.deepEqual(writesIn(layer.stats.calls), []);
  t.false(
    readOutcomes(shadow.logFile).some((l) => l.outcome !== 'planned'),
    'every shadow outcome is planned',
  );
  // Once the live worker applied the same stream, IAM holds what the shadow's fold ends at.
  const late = await shadowReport();
  t.like(
    late.report.policies.find((p) => p.policy === 'shadow-new'),
    { state: 'present', agrees: true },
    JSON.stringify(late.report),
  );
  t.like(
    late.report.policies.find((p) => p.policy === 'shadow-never'),
    { planned: 'none', agrees: true },
  );
});
