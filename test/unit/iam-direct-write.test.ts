// The IAM step's choice between writing from the ledger's word and reading IAM
// first (iam/reconciler.ts, writesDirectly), against a fake IAM client that
// keeps policies with numbered versions as IAM does and counts every call; and
// the pipeline's part: the hint it gives, and the versions the ledger keeps.
import test from 'ava';
import { setTimeout as sleep } from 'node:timers/promises';
import { DeleteConflictException, LimitExceededException, MalformedPolicyDocumentException, NoSuchEntityException } from '@aws-sdk/client-iam';
import type { IAMClient } from '@aws-sdk/client-iam';
import type { STSClient } from '@aws-sdk/client-sts';
import type { PolicyDeleted, PolicyEvent, PolicyUpserted } from '../../src/contract/event.js';
import { documentHash } from '../../src/iam/document.js';
import { followedBy, IamReconciler } from '../../src/iam/reconciler.js';
import type { StepHint } from '../../src/iam/reconciler.js';
import { Metrics } from '../../src/metrics/metrics.js';
import { RejectedEventError, TransientError } from '../../src/faults/errors.js';
import type { ApplyHint } from '../../src/pipeline/types.js';
import { MemoryLedger } from '../support/fakes.js';
import { doc, harness, silentLogger, streamRecords, testConfig, upsertRecord } from '../support/pipeline.js';

const ACCOUNT = '123456789012';
const PREFIX = '/stream-managed/';
const APP = 'iam-policy-stream';
const arnOf = (name: string) => `arn:aws:iam::${ACCOUNT}:policy${PREFIX}${name}`;

interface FakePolicy {
  path: string;
  tags: Map<string, string>;
  versions: { id: string; document: unknown; created: number }[];
  defaultId: string;
  next: number;
}

/** IAM as far as the reconciler's calls go: one account, versions numbered v1, v2, ... and never reused, at most 5. */
class FakeIamClient {
  readonly policies = new Map<string, FakePolicy>();
  readonly calls: string[] = [];
  /** Answers to force on the next call of an operation (a write refused, say). */
  readonly refuse = new Map<string, Error>();
  /** Refuse every write with AccessDenied for these ARNs (the worker role's grant needs the ownership tag). */
  readonly denied = new Set<string>();
  /** Policies attached to a role. */
  readonly attached = new Set<string>();
  private clock = 0;

  /** A policy as our own earlier steps left it: owned, `versions` documents, the last the default. */
  seed(name: string, documents: unknown[], tags: Record<string, string> = {}, owner = APP): FakePolicy {
    const policy: FakePolicy = { path: PREFIX, tags: new Map([...Object.entries(tags), ['managed-by', owner]]), versions: [], defaultId: '', next: 1 };
    for (const document of documents) this.addVersion(policy, document);
    this.policies.set(arnOf(name), policy);
    return policy;
  }

  addVersion(policy: FakePolicy, document: unknown): string {
    const id = `v${policy.next++}`;
    policy.versions.push({ id, document, created: this.clock++ });
    policy.defaultId = id;
    return id;
  }

  count(operation: string): number {
    return this.calls.filter((call) => call === operation).length;
  }

  readonly send = async (command: { constructor: { name: string }; input: Record<string, any> }) => {
    const operation = command.constructor.name.replace(/Command$/, '');
    this.calls.push(operation);
    const forced = this.refuse.get(operation);
    if (forced) {
      this.refuse.delete(operation);
      throw forced;
    }
    const input = command.input;
    const arn = input.PolicyArn ?? `arn:aws:iam::${ACCOUNT}:policy${input.Path}${input.PolicyName}`;
    const policy = this.policies.get(arn);
    const missing = () => new NoSuchEntityException({ message: `${arn} does not exist`, $metadata: {} });
    if (!['GetPolicy', 'GetPolicyVersion', 'ListPolicyVersions', 'ListEntitiesForPolicy', 'ListPolicies', 'CreatePolicy'].includes(operation) && this.denied.has(arn)) {
      // IAM models no AccessDenied error: the SDK names the generic error after its code.
      throw Object.assign(new Error('not authorized to perform this action'), { name: 'AccessDenied', $metadata: { httpStatusCode: 403 } });
    }
    switch (operation) {
      case 'GetPolicy':
        if (!policy) throw missing();
        return { Policy: { Arn: arn, Path: policy.path, DefaultVersionId: policy.defaultId, Tags: [...policy.tags].map(([Key, Value]) => ({ Key, Value })) } };
      case 'GetPolicyVersion': {
        const version = policy?.versions.find((v) => v.id === input.VersionId);
        if (!version) throw missing();
        return { PolicyVersion: { VersionId: version.id, IsDefaultVersion: version.id === policy!.defaultId, Document: JSON.stringify(version.document) } };
      }
      case 'ListPolicyVersions':
        if (!policy) throw missing();
        return { Versions: policy.versions.map((v) => ({ VersionId: v.id, IsDefaultVersion: v.id === policy.defaultId, CreateDate: new Date(v.created) })) };
      case 'ListEntitiesForPolicy':
        if (!policy) throw missing();
        return { PolicyRoles: this.attached.has(arn) ? [{ RoleName: 'r' }] : [], PolicyUsers: [], PolicyGroups: [], IsTruncated: false };
      case 'CreatePolicy': {
        const created = this.seed(input.PolicyName, [JSON.parse(input.PolicyDocument)]);
        return { Policy: { Arn: arn, DefaultVersionId: created.defaultId } };
      }
      case 'CreatePolicyVersion': {
        if (!policy) throw missing();
        if (policy.versions.length >= 5) throw new LimitExceededException({ message: 'A managed policy can have up to 5 versions', $metadata: {} });
        const id = this.addVersion(policy, JSON.parse(input.PolicyDocument));
        return { PolicyVersion: { VersionId: id, IsDefaultVersion: true } };
      }
      case 'DeletePolicyVersion': {
        if (!policy?.versions.some((v) => v.id === input.VersionId)) throw missing();
        if (input.VersionId === policy.defaultId) throw new DeleteConflictException({ message: 'Cannot delete the default version', $metadata: {} });
        policy.versions = policy.versions.filter((v) => v.id !== input.VersionId);
        return {};
      }
      case 'DeletePolicy':
        if (!policy) throw missing();
        this.policies.delete(arn);
        return {};
      case 'TagPolicy':
        if (!policy) throw missing();
        for (const tag of input.Tags) policy.tags.set(tag.Key, tag.Value);
        return {};
      case 'UntagPolicy':
        if (!policy) throw missing();
        for (const key of input.TagKeys) policy.tags.delete(key);
        return {};
      default:
        throw new Error(`the fake does not know ${operation}`);
    }
  };
}

/** Reported versions: what each step said it left in IAM, in order. */
type Reporting = { reported?: (string[] | undefined)[] };

/** The reconciler's steps, each answering its outcome and adding the versions it left to the hint's `reported`, when the hint keeps one. */
function reconcilerOn(iam: FakeIamClient) {
  const sts = { send: async () => ({ Account: ACCOUNT, Arn: `arn:aws:sts::${ACCOUNT}:assumed-role/worker/task` }) } as unknown as STSClient;
  const reconciler = new IamReconciler({ iam: iam as unknown as IAMClient, sts, config: testConfig(), metrics: new Metrics(), logger: silentLogger, visibilityWindowMs: 30_000 });
  return {
    async upsert(event: PolicyUpserted, hint: StepHint & Reporting = {}) {
      const step = await reconciler.upsertStep(event, hint);
      hint.reported?.push(step.versions);
      return step.outcome;
    },
    async delete(event: PolicyDeleted, hint: StepHint & Reporting = {}) {
      const step = await reconciler.deleteStep(event, hint);
      hint.reported?.push(step.versions);
      return step.outcome;
    },
  };
}

let counter = 0;
function upsert(name: string, document: object, tags: Record<string, string> = {}): PolicyUpserted {
  return { specVersion: '1', eventId: `u${counter++}`, type: 'policy.upserted', policyName: name, policyPath: PREFIX, pathGiven: false, document, tags } as PolicyUpserted;
}

/** The hint the pipeline gives for a policy its ledger vouches for. */
function vouched(policy: FakePolicy, lastApplied: unknown, tags: Record<string, string> = {}): StepHint & { reported: (string[] | undefined)[] } {
  const reported: (string[] | undefined)[] = [];
  return {
    ledgerSaysPresent: true,
    ledgerDocHash: documentHash(lastApplied),
    ledgerVersions: policy.versions.map((v) => v.id),
    ledgerTags: tags,
    reported,
  };
}

test('an update of a policy the ledger vouches for is one IAM call: CreatePolicyVersion as default', async (t) => {
  const iam = new FakeIamClient();
  const policy = iam.seed('direct-1', [doc(1), doc(2)]);
  const hint = vouched(policy, doc(2));
  t.is(await reconcilerOn(iam).upsert(upsert('direct-1', doc(3)), hint), 'updated');
  t.deepEqual(iam.calls, ['CreatePolicyVersion']);
  t.deepEqual(hint.reported, [['v1', 'v2', 'v3']], 'the ledger learns the new version');
  t.deepEqual(policy.versions.find((v) => v.id === policy.defaultId)?.document, doc(3));
});

test('at 5 versions the ledger knows of, the oldest goes first: two calls, no read', async (t) => {
  const iam = new FakeIamClient();
  const policy = iam.seed('direct-5', [doc(1), doc(2), doc(3), doc(4), doc(5)]);
  const hint = vouched(policy, doc(5));
  t.is(await reconcilerOn(iam).upsert(upsert('direct-5', doc(6)), hint), 'updated');
  t.deepEqual(iam.calls, ['DeletePolicyVersion', 'CreatePolicyVersion']);
  t.deepEqual(hint.reported, [['v2', 'v3', 'v4', 'v5', 'v6']]);
});

test("tags are written only when they differ from the ledger's, without reading them", async (t) => {
  const iam = new FakeIamClient();
  const policy = iam.seed('direct-tags', [doc(1)], { team: 'a', old: 'x' });
  const same = vouched(policy, doc(1), { team: 'a', old: 'x' });
  await reconcilerOn(iam).upsert(upsert('direct-tags', doc(2), { team: 'a', old: 'x' }), same);
  t.deepEqual(iam.calls, ['CreatePolicyVersion'], 'same tags: no tag call');
  iam.calls.length = 0;
  const changed = vouched(policy, doc(2), { team: 'a', old: 'x' });
  await reconcilerOn(iam).upsert(upsert('direct-tags', doc(3), { team: 'b' }), changed);
  t.deepEqual(iam.calls, ['TagPolicy', 'UntagPolicy', 'CreatePolicyVersion']);
  t.deepEqual(Object.fromEntries(policy.tags), { team: 'b', 'managed-by': APP }, 'the ownership tag stays');
});

test("the wanted document is the ledger's last applied one: IAM's default is read before `unchanged`", async (t) => {
  const iam = new FakeIamClient();
  const policy = iam.seed('direct-same', [doc(1), doc(2)]);
  const hint = vouched(policy, doc(2));
  t.is(await reconcilerOn(iam).upsert(upsert('direct-same', doc(2)), hint), 'unchanged');
  t.deepEqual(iam.calls, ['GetPolicy', 'GetPolicyVersion']);
  t.deepEqual(hint.reported, [['v1', 'v2']], "IAM's default is the ledger's: its versions still hold");
});

test("the ledger's last document, but IAM holds another (changed out of band): read, then written", async (t) => {
  const iam = new FakeIamClient();
  const policy = iam.seed('direct-drift', [doc(1), doc(2)]);
  const hint = vouched(policy, doc(2));
  iam.addVersion(policy, doc('elsewhere')); // v3, out of band
  t.is(await reconcilerOn(iam).upsert(upsert('direct-drift', doc(2)), hint), 'updated');
  t.deepEqual(iam.calls, ['GetPolicy', 'GetPolicyVersion', 'ListPolicyVersions', 'CreatePolicyVersion']);
  t.deepEqual(hint.reported, [['v1', 'v2', 'v3', 'v4']], 'learned from the list read');
});

test("without the ledger's word the step reads IAM first, as before", async (t) => {
  const cases: [string, (policy: FakePolicy) => StepHint][] = [
    ['no versions known (an entry written before they were kept)', () => ({ ledgerSaysPresent: true, ledgerDocHash: documentHash(doc(1)) })],
    ['re-verification (forceWrite)', (policy) => ({ ...vouched(policy, doc(1)), forceWrite: true })],
    ['the ledger does not know the path', (policy) => ({ ...vouched(policy, doc(1)), pathUnknown: true })],
    ['no last applied document', (policy) => ({ ledgerSaysPresent: true, ledgerVersions: policy.versions.map((v) => v.id) })],
    ['not present by the ledger', (policy) => ({ ledgerVersions: policy.versions.map((v) => v.id), ledgerDocHash: documentHash(doc(1)) })],
  ];
  for (const [why, hintFor] of cases) {
    const iam = new FakeIamClient();
    const policy = iam.seed('direct-read', [doc(1)]);
    t.is(await reconcilerOn(iam).upsert(upsert('direct-read', doc(2)), hintFor(policy)), 'updated', why);
    t.deepEqual(iam.calls.slice(0, 3), ['GetPolicy', 'GetPolicyVersion', 'ListPolicyVersions'], why);
  }
});

test('IAM has more versions than the ledger knows: LimitExceeded sends the step to the read path, which prunes', async (t) => {
  const iam = new FakeIamClient();
  const policy = iam.seed('direct-limit', [doc(1), doc(2), doc(3)]);
  const hint = vouched(policy, doc(3));
  iam.addVersion(policy, doc(4)); // made elsewhere: 4 and 5 exist, the ledger knows 3
  iam.addVersion(policy, doc(5));
  t.is(await reconcilerOn(iam).upsert(upsert('direct-limit', doc(6)), hint), 'updated');
  t.deepEqual(iam.calls, ['CreatePolicyVersion', 'GetPolicy', 'GetPolicyVersion', 'ListPolicyVersions', 'DeletePolicyVersion', 'CreatePolicyVersion']);
  t.is(policy.versions.length, 5);
  t.deepEqual(policy.versions.find((v) => v.id === policy.defaultId)?.document, doc(6));
  t.deepEqual(hint.reported, [['v2', 'v3', 'v4', 'v5', 'v6']]);
});

test('a version made elsewhere shows in the number IAM gives ours: written, and the versions are no longer counted', async (t) => {
  const iam = new FakeIamClient();
  const policy = iam.seed('direct-number', [doc(1), doc(2)]);
  const hint = vouched(policy, doc(2));
  iam.addVersion(policy, doc('elsewhere')); // v3
  t.is(await reconcilerOn(iam).upsert(upsert('direct-number', doc(3)), hint), 'updated');
  t.deepEqual(iam.calls, ['CreatePolicyVersion']);
  t.deepEqual(hint.reported, [undefined], 'v4 where v3 was due: the next update reads IAM');
});

test('the oldest version the ledger knows is the default now (DeleteConflict): the read path decides', async (t) => {
  const iam = new FakeIamClient();
  const policy = iam.seed('direct-default', [doc(1), doc(2), doc(3), doc(4), doc(5)]);
  const hint = vouched(policy, doc(5));
  policy.defaultId = 'v1'; // set as default out of band
  t.is(await reconcilerOn(iam).upsert(upsert('direct-default', doc(6)), hint), 'updated');
  t.deepEqual(iam.calls.slice(0, 2), ['DeletePolicyVersion', 'GetPolicy']);
  t.deepEqual(policy.versions.find((v) => v.id === policy.defaultId)?.document, doc(6));
  t.false(policy.versions.some((v) => v.id === 'v1') && policy.defaultId === 'v1');
});

test('the policy was deleted out of band: NoSuchEntity from the write sends the step to the read path (read lag first)', async (t) => {
  const iam = new FakeIamClient();
  const policy = iam.seed('direct-gone', [doc(1)]);
  const hint = vouched(policy, doc(1));
  iam.policies.delete(arnOf('direct-gone'));
  const error = await t.throwsAsync(reconcilerOn(iam).upsert(upsert('direct-gone', doc(2)), hint));
  t.true(error instanceof TransientError && error.reason === 'iam-not-yet-visible', 'the ledger says present: NoSuchEntity is read lag for a while');
  t.deepEqual(iam.calls, ['CreatePolicyVersion', 'GetPolicy']);
});

test('a policy no longer ours: the role refuses the write (AccessDenied), the read path rejects it as not-owned', async (t) => {
  const iam = new FakeIamClient();
  const policy = iam.seed('direct-foreign', [doc(1)]);
  const hint = vouched(policy, doc(1));
  policy.tags.set('managed-by', 'someone-else');
  iam.denied.add(arnOf('direct-foreign'));
  const error = await t.throwsAsync(reconcilerOn(iam).upsert(upsert('direct-foreign', doc(2)), hint));
  t.true(error instanceof RejectedEventError && error.reason === 'not-owned');
  t.deepEqual(iam.calls, ['CreatePolicyVersion', 'GetPolicy']);
});

test('a document IAM refuses is rejected from the direct write as from the read path', async (t) => {
  const iam = new FakeIamClient();
  const policy = iam.seed('direct-malformed', [doc(1)]);
  iam.refuse.set('CreatePolicyVersion', new MalformedPolicyDocumentException({ message: 'bad', $metadata: {} }));
  const error = await t.throwsAsync(reconcilerOn(iam).upsert(upsert('direct-malformed', doc(2)), vouched(policy, doc(1))));
  t.true(error instanceof RejectedEventError && error.reason.startsWith('iam:MalformedPolicyDocument'), String(error));
  t.deepEqual(iam.calls, ['CreatePolicyVersion']);
});

test('a new policy reports its first version; a delete reports none left', async (t) => {
  const iam = new FakeIamClient();
  const reported: (string[] | undefined)[] = [];
  const r = reconcilerOn(iam);
  t.is(await r.upsert(upsert('direct-new', doc(1)), { likelyAbsent: true, reported }), 'created');
  t.deepEqual(iam.calls, ['CreatePolicy']);
  t.is(
    await r.delete({ specVersion: '1', eventId: 'd1', type: 'policy.deleted', policyName: 'direct-new', policyPath: PREFIX, pathGiven: false } as PolicyEvent as never, {
      ledgerSaysPresent: true,
      reported,
    }),
    'deleted',
  );
  t.deepEqual(reported, [['v1'], []]);
});

const removal = (name: string) => ({ specVersion: '1', eventId: `d${counter++}`, type: 'policy.deleted', policyName: name, policyPath: PREFIX, pathGiven: false }) as PolicyEvent as never;

test('a delete of a policy the ledger vouches for: the attachment check, its other versions, the policy; no read of the policy', async (t) => {
  const iam = new FakeIamClient();
  const policy = iam.seed('direct-del', [doc(1), doc(2), doc(3)]);
  const hint = vouched(policy, doc(3));
  t.is(await reconcilerOn(iam).delete(removal('direct-del'), hint), 'deleted');
  t.deepEqual(iam.calls, ['ListEntitiesForPolicy', 'DeletePolicyVersion', 'DeletePolicyVersion', 'DeletePolicy']);
  t.deepEqual(hint.reported, [[]]);
  t.false(iam.policies.has(arnOf('direct-del')));
});

test('an attached policy is kept by the direct delete too, nothing deleted', async (t) => {
  const iam = new FakeIamClient();
  const policy = iam.seed('direct-del-attached', [doc(1), doc(2)]);
  iam.attached.add(arnOf('direct-del-attached'));
  const hint = vouched(policy, doc(2));
  t.is(await reconcilerOn(iam).delete(removal('direct-del-attached'), hint), 'retained-in-use');
  t.deepEqual(iam.calls, ['ListEntitiesForPolicy']);
  t.deepEqual(hint.reported, [['v1', 'v2']]);
  t.is(policy.versions.length, 2);
});

test('a delete whose versions the ledger no longer knows right falls back to reading IAM', async (t) => {
  const iam = new FakeIamClient();
  const policy = iam.seed('direct-del-stale', [doc(1), doc(2), doc(3)]);
  const hint = vouched(policy, doc(3));
  policy.versions = policy.versions.filter((v) => v.id !== 'v1'); // deleted out of band
  iam.addVersion(policy, doc(4)); // and one made: v4
  t.is(await reconcilerOn(iam).delete(removal('direct-del-stale'), hint), 'deleted');
  t.deepEqual(iam.calls.slice(0, 3), ['ListEntitiesForPolicy', 'DeletePolicyVersion', 'GetPolicy']);
  t.false(iam.policies.has(arnOf('direct-del-stale')));
});

test('followedBy: the new version must be the next number after the newest known', (t) => {
  t.deepEqual(followedBy(['v1', 'v2'], 'v3'), ['v1', 'v2', 'v3']);
  t.deepEqual(followedBy(['v3', 'v7', 'v9'], 'v10'), ['v3', 'v7', 'v9', 'v10']);
  t.is(followedBy(['v1', 'v2'], 'v4'), undefined);
  t.is(followedBy(['v1'], undefined), undefined);
});

// The pipeline's part: which hint the IAM step gets, and what the ledger keeps.

/** An applier that answers as IAM would for a policy made once and updated, reporting versions as the reconciler does. */
function recordingApplier() {
  const hints: ApplyHint[] = [];
  let next = 1;
  return {
    hints,
    async apply(event: PolicyEvent, hint: ApplyHint = {}) {
      hints.push({ ...hint });
      if (event.type === 'policy.deleted') return { outcome: 'deleted' as const, versions: [] };
      const id = `v${next++}`;
      return { outcome: id === 'v1' ? ('created' as const) : ('updated' as const), versions: hint.ledgerVersions ? [...hint.ledgerVersions, id] : [id] };
    },
  };
}

test("the pipeline hands the ledger's versions and tags to the next update, and the ledger keeps what the step reported", async (t) => {
  const ledger = new MemoryLedger();
  const applier = recordingApplier();
  const h = harness({ ledger, applier });
  const records = streamRecords([upsertRecord('hint-1', 'h-1', doc(1)), upsertRecord('hint-1', 'h-2', doc(2))]);
  await h.pipeline.processBatch([{ ...records[0]!, index: 0 }]);
  t.true(applier.hints[0]!.likelyAbsent);
  t.is(applier.hints[0]!.ledgerVersions, undefined);
  t.deepEqual(ledger.entries.get('hint-1')!.iamVersions, ['v1']);
  await h.pipeline.processBatch([{ ...records[1]!, index: 0 }]);
  t.deepEqual(applier.hints[1]!.ledgerVersions, ['v1']);
  t.deepEqual(applier.hints[1]!.ledgerTags, {});
  t.is(applier.hints[1]!.ledgerDocHash, documentHash(doc(1)));
  t.deepEqual(ledger.entries.get('hint-1')!.iamVersions, ['v1', 'v2']);
});

test('no versions in the hint while the ledger owes a verification, and a verification forgets them', async (t) => {
  const ledger = new MemoryLedger();
  const applier = recordingApplier();
  const h = harness({ ledger, applier });
  const records = streamRecords([upsertRecord('hint-v', 'v-1', doc(1)), upsertRecord('hint-v', 'v-2', doc(2)), upsertRecord('hint-v', 'v-3', doc(3))]);
  await h.pipeline.processBatch([{ ...records[0]!, index: 0 }]);
  await ledger.requestVerification('hint-v');
  await h.pipeline.processBatch([{ ...records[1]!, index: 0 }]);
  t.is(applier.hints[1]!.ledgerVersions, undefined, 'IAM is read while a verification is owed');
  t.true(applier.hints[1]!.ledgerSaysPresent);
  // The step read IAM (a fake here) and completed: the mark is answered, its reported versions kept.
  await h.pipeline.processBatch([{ ...records[2]!, index: 0 }]);
  t.truthy(applier.hints[2]!.ledgerVersions);
  // A verification converges IAM with a write of its own: the count is no longer known.
  await ledger.requestVerification('hint-v');
  const entry = ledger.entries.get('hint-v')!;
  const claim = await ledger.claimVerification('hint-v', 'verifier');
  t.true(claim.won);
  if (claim.won) await ledger.completeVerification('hint-v', claim.token, entry.verifyRequested!);
  t.is(ledger.entries.get('hint-v')!.iamVersions, undefined);
});

test('no versions in the hint for a claim taken over from another owner', async (t) => {
  const ledger = new MemoryLedger(1_000);
  const applier = recordingApplier();
  const first = harness({ ledger, applier, owner: 'first', claimTtlMs: 1_000 });
  const records = streamRecords([upsertRecord('hint-t', 't-1', doc(1)), upsertRecord('hint-t', 't-2', doc(2))]);
  await first.pipeline.processBatch([{ ...records[0]!, index: 0 }]);
  // Another owner's claim, left mid-step (its holder died), expires.
  const held = await ledger.claim({ policy: 'hint-t', record: records[1]!, eventId: 'other', payloadHash: 'x', owner: 'dead', epoch: 0 });
  t.true(held.won);
  await sleep(1_200); // the dead owner's claim expires
  const second = harness({ ledger, applier, owner: 'second', claimTtlMs: 1_000 });
  await second.pipeline.processBatch([{ ...records[1]!, index: 0 }]);
  t.is(applier.hints[1]!.ledgerVersions, undefined, 'the dead owner may have written a version: IAM is read');
});

test('a step the applier refuses leaves the versions unknown', async (t) => {
  const ledger = new MemoryLedger();
  let calls = 0;
  const applier = {
    async apply(_event: PolicyEvent, _hint: ApplyHint = {}) {
      if (calls++ === 0) return { outcome: 'created' as const, versions: ['v1'] };
      throw new RejectedEventError('iam:MalformedPolicyDocument', 'refused');
    },
  };
  const h = harness({ ledger, applier });
  const records = streamRecords([upsertRecord('hint-r', 'r-1', doc(1)), upsertRecord('hint-r', 'r-2', doc(2))]);
  await h.pipeline.processBatch([{ ...records[0]!, index: 0 }]);
  t.deepEqual(ledger.entries.get('hint-r')!.iamVersions, ['v1']);
  const [settled] = await h.pipeline.processBatch([{ ...records[1]!, index: 0 }]);
  t.is(settled!.outcome, 'rejected');
  t.is(ledger.entries.get('hint-r')!.iamVersions, undefined);
});
