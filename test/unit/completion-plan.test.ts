// The completion a policy batch writes, planned from values alone (src/pipeline/completion-plan.ts).
import test from 'ava';
import type { PolicyEvent } from '../../src/contract/event.js';
import type { LedgerEntry } from '../../src/ledger/ledger.js';
import { planCompletion } from '../../src/pipeline/completion-plan.js';
import type { CompletionInput, StepSummary } from '../../src/pipeline/completion-plan.js';
import type { ValidRecord } from '../../src/pipeline/types.js';

const SHARD = 'shardId-000000000000';
const DOC = { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: 's3:GetObject', Resource: '*' }] };

function item(seq: number, eventId: string, revision?: number, type: PolicyEvent['type'] = 'policy.upserted'): ValidRecord {
  const base = { specVersion: '1' as const, eventId, policyName: 'p', policyPath: '/stream-managed/', pathGiven: false, ...(revision !== undefined ? { revision } : {}) };
  const event: PolicyEvent = type === 'policy.upserted' ? { ...base, type, document: DOC, tags: { team: 'a' } } : { ...base, type };
  return { record: { shardId: SHARD, sequenceNumber: String(seq), subSequenceNumber: 0, partitionKey: 'p', data: Buffer.from(''), index: seq, receivedAt: 0 }, event, payloadHash: `h-${eventId}` };
}

function entry(overrides: Partial<LedgerEntry> = {}): LedgerEntry {
  return {
    policy: 'p',
    epoch: 1,
    events: [{ eventId: 'old1', payloadHash: 'h-old1' }],
    position: { shardId: SHARD, sequenceNumber: '1', subSequenceNumber: 0, lineage: [] },
    revision: 3,
    state: 'present',
    desired: { path: '/stream-managed/', document: DOC, tags: {} },
    docHash: 'old-hash',
    ...overrides,
  } as LedgerEntry;
}

const NO_STEP: StepSummary = { applied: undefined, finalOutcome: undefined, path: undefined, versions: undefined, steps: 0, converged: false };

function input(overrides: Partial<CompletionInput>): CompletionInput {
  const previous = entry();
  return {
    policy: 'p',
    token: 't',
    epoch: 1,
    recentEventIds: 3,
    lineage: [],
    claimTtlMs: 10_000,
    claim: { previous, expiresAt: 20_000 },
    previous,
    scope: [],
    effective: [],
    step: NO_STEP,
    ...overrides,
  };
}

test('a refused event leaves neither its eventId nor its revision in the ledger, and the position still moves past it', (t) => {
  const applied = item(2, 'e2', 4);
  const refused = item(3, 'e3', 9);
  const plan = planCompletion(
    input({
      scope: [applied, refused],
      effective: [applied],
      step: { ...NO_STEP, applied: applied.event as never, finalOutcome: 'updated', path: '/stream-managed/', steps: 2, versions: ['v1', 'v2'], converged: true },
    }),
  );
  t.is(plan.request.revision, 4);
  t.deepEqual(
    plan.request.events.map((event) => event.eventId),
    ['old1', 'e2'],
  );
  t.is(plan.request.position.sequenceNumber, '3');
  t.is(plan.request.state, 'present');
  t.deepEqual(plan.request.iamVersions, ['v1', 'v2']);
});

test("events that leave the window are archived, this step's own ones told apart", (t) => {
  const events = [item(2, 'e2'), item(3, 'e3'), item(4, 'e4')];
  const plan = planCompletion(
    input({
      recentEventIds: 2,
      scope: events,
      effective: events,
      step: { ...NO_STEP, applied: events[2]!.event as never, finalOutcome: 'updated', path: '/stream-managed/', steps: 1, converged: true },
    }),
  );
  t.deepEqual(plan.forgotten.map((event) => event.eventId).sort(), ['e2', 'old1']);
  t.deepEqual([...plan.ownEventIds].sort(), ['e2', 'e3', 'e4']);
  t.deepEqual(
    plan.request.events.map((event) => event.eventId),
    ['e3', 'e4'],
  );
});

test("when no event took effect, the state, desired state and hash stay the entry's, even of an older epoch, and the epoch never goes down", (t) => {
  const old = entry({ epoch: 5 });
  const refused = item(2, 'e2');
  const plan = planCompletion(input({ epoch: 3, claim: { previous: old, expiresAt: 20_000 }, previous: undefined, scope: [refused], effective: [] }));
  t.is(plan.request.epoch, 5);
  t.is(plan.request.state, 'present');
  t.is(plan.request.docHash, 'old-hash');
  t.deepEqual(plan.request.desired, old.desired);
  t.is(plan.request.outcome, 'rejected');
  t.is(plan.request.revision, undefined);
});

test('a delete that deleted keeps only the path as desired state, and no versions', (t) => {
  const deleted = item(2, 'e2', undefined, 'policy.deleted');
  const plan = planCompletion(input({ scope: [deleted], effective: [deleted], step: { ...NO_STEP, finalOutcome: 'deleted', path: '/stream-managed/', steps: 1, versions: [], converged: true } }));
  t.is(plan.request.state, 'deleted');
  t.deepEqual(plan.request.desired, { path: '/stream-managed/' });
  t.is(plan.request.iamVersions, undefined);
});
