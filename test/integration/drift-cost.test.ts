// What a drift audit costs in IAM calls, counted by the realistic-IAM layer in
// front of the emulator (it pages GetAccountAuthorizationDetails and encodes
// documents as IAM does). IAM's rate limit is account-wide and the workers
// share it: an audit of N policies must cost pages of the account listing,
// not reads per policy. Tags are the one thing the listing lacks: they are
// read for a policy whose ledger entry has tags besides the owner tag, and
// for a bounded sample of the others.
import test from 'ava';
import { GetAccountAuthorizationDetailsCommand, IAMClient } from '@aws-sdk/client-iam';
import { decodePolicyVersionDocument } from '../../src/iam/document.js';
import { ledgerFromConfig } from '../../src/ledger/dynamodb-ledger.js';
import { DriftAudit } from '../../src/ops/drift-audit.js';
import { startRealisticIam } from '../../tools/harness/realistic-iam.js';
import { useTestStack } from '../../tools/harness/stack.js';
import { stackPipeline } from '../support/stack-pipeline.js';
import { doc, streamRecords } from '../support/pipeline.js';

const stackOf = useTestStack(test, { shards: 1 });

/** Policies with only the owner tag, and policies with tags of their own. */
const OWNER_ONLY = 150;
const TAGGED = 40;
/** The documented bound of the tag sample (docs/operations.md, "drift"): 25 policies or 3% of them, whichever is more. */
const tagSample = (policies: number) => Math.max(25, Math.ceil(policies * 0.03));
const ownerOnly = Array.from({ length: OWNER_ONLY }, (_, i) => `cost-plain-${i}`);
const tagged = Array.from({ length: TAGGED }, (_, i) => `cost-tagged-${i}`);

function upsert(name: string, tags?: Record<string, string>) {
  const body = { specVersion: '1', eventId: `e-${name}`, type: 'policy.upserted', policy: { name }, document: doc(name), ...(tags ? { tags } : {}) };
  return { partitionKey: name, data: Buffer.from(JSON.stringify(body)) };
}

test.serial.before(async () => {
  const { config, clients } = stackOf();
  const aws = clients();
  const pipeline = stackPipeline(config, aws, 'cost-test-worker');
  const settled = await pipeline.processBatch(streamRecords([...ownerOnly.map((name) => upsert(name)), ...tagged.map((name, i) => upsert(name, { team: `t${i % 3}` }))]));
  if (!settled.every((s) => s.outcome === 'created')) throw new Error(`not all created: ${JSON.stringify(settled.map((s) => s.outcome))}`);
});

test.serial('the realistic-IAM layer pages GetAccountAuthorizationDetails as IAM does: every policy once, each named, documents URL-encoded once', async (t) => {
  const { stack } = stackOf();
  const layer = await startRealisticIam({ target: stack.env.AWS_ENDPOINT_URL_IAM!, lagMs: [0, 0] });
  t.teardown(() => layer.close());
  const iam = new IAMClient({ endpoint: layer.endpoint, region: 'us-east-1', credentials: { accessKeyId: 'test', secretAccessKey: 'test' } });
  t.teardown(() => iam.destroy());
  const names: string[] = [];
  let marker: string | undefined;
  let pages = 0;
  do {
    const page = await iam.send(new GetAccountAuthorizationDetailsCommand({ Filter: ['LocalManagedPolicy'], MaxItems: 50, ...(marker ? { Marker: marker } : {}) }));
    pages++;
    t.true((page.Policies?.length ?? 0) <= 50);
    for (const policy of page.Policies ?? []) {
      names.push(policy.PolicyName!);
      const version = policy.PolicyVersionList?.find((v) => v.IsDefaultVersion);
      t.false(version!.Document!.trimStart().startsWith('{'), 'URL-encoded');
      t.deepEqual(decodePolicyVersionDocument(version!.Document!), doc(policy.PolicyName!));
    }
    marker = page.IsTruncated ? page.Marker : undefined;
  } while (marker);
  t.is(pages, Math.ceil((OWNER_ONLY + TAGGED) / 50));
  t.deepEqual(names.sort(), [...ownerOnly, ...tagged].sort());
});

test.serial('a drift audit costs pages of the account listing, tag reads only for policies with tags besides the owner tag and a bounded sample of the rest', async (t) => {
  const { config, clients, stack } = stackOf();
  const layer = await startRealisticIam({ target: stack.env.AWS_ENDPOINT_URL_IAM!, lagMs: [0, 0], policyAccess: { allow: [config.managedPathPrefix] } });
  t.teardown(() => layer.close());
  const iam = new IAMClient({ endpoint: layer.endpoint, region: 'us-east-1', credentials: { accessKeyId: 'test', secretAccessKey: 'test' } });
  t.teardown(() => iam.destroy());
  const ledger = ledgerFromConfig(clients().dynamodb, config);

  const result = await new DriftAudit({ iam, ledger, config: { ...config, iamVisibilityWindowMs: 0 } }).run();
  t.deepEqual(result.drift, []);
  t.deepEqual(result.failed, []);
  t.deepEqual(result.notJudged, []);
  t.is(result.ledgerEntries, OWNER_ONLY + TAGGED);

  const calls = layer.stats.calls;
  const total = Object.values(calls).reduce((sum, n) => sum + n, 0);
  const perPolicy = total / (OWNER_ONLY + TAGGED);
  t.log(`IAM calls: ${JSON.stringify(calls)}, ${perPolicy.toFixed(3)} per policy`);
  const pages = calls.GetAccountAuthorizationDetails ?? 0;
  t.is(pages, 1, 'one page holds up to 1,000 policies');
  // Every tagged policy's tags, and at most the sample's share of the others; nothing else per policy.
  const tagReads = calls.ListPolicyTags ?? 0;
  t.true(tagReads >= TAGGED, `${tagReads} tag reads`);
  t.true(tagReads <= TAGGED + tagSample(OWNER_ONLY + TAGGED), `${tagReads} tag reads`);
  t.deepEqual(Object.keys(calls).sort(), ['GetAccountAuthorizationDetails', 'ListPolicyTags'].sort());
  t.true(perPolicy <= 0.5, `${perPolicy} IAM calls per policy`);
  t.is(layer.stats.accessDenied, 0);
});
