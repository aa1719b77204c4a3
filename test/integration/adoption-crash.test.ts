// Adopt and release cut short between their two writes (the tool killed, a
// call failing), against the real pipeline, the real DynamoDB ledger and the
// real reconciler on the local stack. Whatever the moment, the processor never
// writes a policy that is not tagged ours, and running the command again
// finishes the hand-over: adopt writes the ledger before the tag, release
// forgets before it untags (src/ops/adoption.ts).
import test from 'ava';
import { CreatePolicyCommand, GetPolicyCommand } from '@aws-sdk/client-iam';
import type { IAMClient } from '@aws-sdk/client-iam';
import { OWNER_TAG } from '../../src/contract/ownership.js';
import { IamReconciler } from '../../src/iam/reconciler.js';
import { reconcilerApplier } from '../../src/intake/applier.js';
import { DedupCache } from '../../src/ledger/dedup-cache.js';
import { ledgerFromConfig } from '../../src/ledger/dynamodb-ledger.js';
import { Metrics } from '../../src/metrics/metrics.js';
import { adoptPolicy, planAdoption, planRelease, releasePolicy } from '../../src/ops/adoption.js';
import type { HandOverDeps } from '../../src/ops/adoption.js';
import { createShardPipeline } from '../../src/pipeline/create.js';
import { ALL_HASH_KEYS } from '../../src/contract/hash-key.js';
import { useTestStack } from '../../tools/harness/stack.js';
import { MemoryDeadLetters } from '../support/fakes.js';
import { readManagedPolicy } from '../support/iam-state.js';
import { doc, silentLogger, streamRecords, upsertRecord } from '../support/pipeline.js';
import { LOCAL_ACCOUNT_ID } from '../../tools/local/stack.js';

const stackOf = useTestStack(test, { shards: 1 });

class Killed extends Error {}

/** An IAM client that runs `meanwhile` just before its first call of `operation` is sent (rejecting stops the call there: the tool killed). */
function interrupted(iam: Pick<IAMClient, 'send'>, operation: string, meanwhile: () => Promise<unknown>): Pick<IAMClient, 'send'> {
  let done = false;
  return {
    send: (async (command: { constructor: { name: string } }) => {
      if (!done && command.constructor.name === `${operation}Command`) {
        done = true;
        await meanwhile();
      }
      return iam.send(command as never);
    }) as IAMClient['send'],
  };
}

const killedBefore = (iam: Pick<IAMClient, 'send'>, operation: string) => interrupted(iam, operation, () => Promise.reject(new Killed(`killed before ${operation}`)));

function world() {
  const { config } = stackOf();
  const aws = stackOf().clients();
  const ledger = ledgerFromConfig(aws.dynamodb, config);
  const metrics = new Metrics();
  const pipeline = createShardPipeline(
    {
      config: { ...config, retryBaseMs: 5, retryBackoffCapMs: 200 },
      logger: silentLogger,
      metrics,
      ledger,
      cache: new DedupCache(1_000),
      applier: reconcilerApplier(new IamReconciler({ iam: aws.iam, sts: aws.sts, config, metrics, logger: silentLogger })),
      deadLetters: new MemoryDeadLetters(),
    },
    { shardId: 'shardId-000000000000', lineage: [], epoch: 0, owner: 'adoption-crash', hashKeyRange: ALL_HASH_KEYS },
  );
  const deps = (iam: Pick<IAMClient, 'send'>): HandOverDeps => ({ iam, ledger, config, operator: { arn: 'arn:aws:iam::123456789012:user/operator', user: 'operator@test' }, logger: silentLogger });
  const apply = async (policy: string, eventId: string, document: object) => (await pipeline.processBatch([{ ...streamRecords([upsertRecord(policy, eventId, document)])[0]!, index: 0 }]))[0]!;
  const tagOf = async (policy: string) =>
    (await aws.iam.send(new GetPolicyCommand({ PolicyArn: `arn:aws:iam::${LOCAL_ACCOUNT_ID}:policy${config.managedPathPrefix}${policy}` }))).Policy?.Tags?.find((tag) => tag.Key === OWNER_TAG)?.Value;
  const documentOf = async (policy: string) => (await readManagedPolicy(aws.iam, LOCAL_ACCOUNT_ID, config.managedPathPrefix, policy))?.document;
  const adopt = async (policy: string, iam: Pick<IAMClient, 'send'> = aws.iam) => {
    const [plan] = await planAdoption(aws.iam, ledger, config, [policy]);
    return plan!.kind === 'adopt' || plan!.kind === 'record' ? adoptPolicy({ ...plan!, arn: plan!.arn!, path: plan!.path! }, deps(iam)) : { policy, result: plan!.kind };
  };
  const release = async (policy: string, iam: Pick<IAMClient, 'send'> = aws.iam) => {
    const [plan] = await planRelease(aws.iam, config, [policy]);
    return releasePolicy({ ...plan!, arn: plan!.arn! }, deps(iam));
  };
  return { config, aws, ledger, apply, tagOf, documentOf, adopt, release };
}

test.serial('adopt killed between its ledger write and its tag: the policy stays not-owned, untouched, its adopted state kept; adopt again finishes it', async (t) => {
  const w = world();
  const name = 'crash-adopt';
  await w.aws.iam.send(new CreatePolicyCommand({ PolicyName: name, Path: w.config.managedPathPrefix, PolicyDocument: JSON.stringify(doc('old')) }));

  await t.throwsAsync(w.adopt(name, killedBefore(w.aws.iam, 'TagPolicy')), { instanceOf: Killed });
  t.is((await w.ledger.get(name))?.state, 'present', 'the ledger was written first');
  t.is(await w.tagOf(name), undefined);

  const meanwhile = await w.apply(name, 'crash-adopt-1', doc('new'));
  t.is(meanwhile.outcome, 'rejected');
  t.is(meanwhile.reason, 'not-owned');
  t.deepEqual(await w.documentOf(name), doc('old'), 'nothing written to a policy without the tag');
  t.truthy((await w.ledger.get(name))?.adopted, 'the refused event kept the adopted state');

  t.like(await w.adopt(name), { result: 'adopted' });
  t.is(await w.tagOf(name), w.config.appName);
  const after = await w.apply(name, 'crash-adopt-2', doc('new'));
  t.is(after.outcome, 'updated');
  t.deepEqual(await w.documentOf(name), doc('new'));
});

test.serial('release killed between its forget and its untag: the policy is still ours and applied from IAM; release again gives it back and the ledger vouches for nothing', async (t) => {
  const w = world();
  const name = 'crash-release';
  t.is((await w.apply(name, 'crash-release-1', doc('one'))).outcome, 'created');
  t.true(((await w.ledger.get(name))?.iamVersions?.length ?? 0) > 0, 'the ledger vouches for the policy: updates are written directly');

  await t.throwsAsync(w.release(name, killedBefore(w.aws.iam, 'UntagPolicy')), { instanceOf: Killed });
  t.is((await w.ledger.get(name))?.iamVersions, undefined, 'forgotten first');
  t.is(await w.tagOf(name), w.config.appName);
  // Still tagged, so still ours: the step reads IAM, finds the tag, and applies.
  t.is((await w.apply(name, 'crash-release-2', doc('two'))).outcome, 'updated');
  t.truthy((await w.ledger.get(name))?.iamVersions, 'the step learned the versions again');

  t.like(await w.release(name), { result: 'released' });
  const entry = await w.ledger.get(name);
  t.is(entry?.state, 'unknown');
  t.is(entry?.iamVersions, undefined, 'what the step between learned is forgotten again');
  t.is(await w.tagOf(name), undefined);
  const refused = await w.apply(name, 'crash-release-3', doc('three'));
  t.is(refused.outcome, 'rejected');
  t.is(refused.reason, 'not-owned');
  t.deepEqual(await w.documentOf(name), doc('two'), 'a released policy is never written');
});

test.serial("an event applied between release's forget and its untag (the tag still there) is forgotten again before release ends", async (t) => {
  const w = world();
  const name = 'race-release';
  t.is((await w.apply(name, 'race-release-1', doc('one'))).outcome, 'created');
  let between: string | undefined;
  const iam = interrupted(w.aws.iam, 'UntagPolicy', async () => {
    between = (await w.apply(name, 'race-release-2', doc('two'))).outcome;
  });
  t.like(await w.release(name, iam), { result: 'released' });
  t.is(between, 'updated', 'the step found the tag and applied');
  const entry = await w.ledger.get(name);
  t.is(entry?.state, 'unknown');
  t.is(entry?.iamVersions, undefined);
  t.is(entry?.desired, undefined);
  const refused = await w.apply(name, 'race-release-3', doc('three'));
  t.is(refused.reason, 'not-owned');
  t.deepEqual(await w.documentOf(name), doc('two'));
});
