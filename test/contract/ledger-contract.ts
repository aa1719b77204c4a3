// The ledger's contract (src/ledger/ledger.ts), as one suite that runs against
// every implementation: the DynamoDB ledger on DynamoDB Local
// (test/integration/dynamodb-ledger-contract.test.ts) and the in-memory ledger
// the unit tests use (test/unit/memory-ledger-contract.test.ts). A unit test
// is only as good as its fake: what DynamoDB's conditions refuse, the fake
// must refuse too, and what they let through, the fake must let through.
//
// Each case builds its own ledger on its own clock and its own policy names,
// so cases share nothing but the table.
import type { TestFn } from 'ava';
import { ClaimLostError } from '../../src/faults/errors.js';
import type { AdoptionRequest, ClaimRequest, CompletionRequest, Ledger, LedgerEntry } from '../../src/ledger/ledger.js';
import { needsVerification } from '../../src/ledger/ledger.js';
import type { LedgerPosition } from '../../src/ledger/position.js';
import type { RecordPosition } from '../../src/contract/record-id.js';

/** The ledger's interface plus what the operator tool and the tests use of both implementations. */
export interface ContractLedger extends Ledger {
  /** Moves the whole ledger, or only the given shards, to a new epoch above every earlier one. */
  advanceEpoch(shards?: string[]): Promise<number>;
  /** The policy's entry as stored, or undefined. */
  get(policy: string): Promise<LedgerEntry | undefined>;
}

export interface LedgerTimings {
  claimTtlMs: number;
  eventIdTtlDays: number;
  now: () => number;
}

export type MakeLedger = (timings: LedgerTimings) => ContractLedger;

const TTL = 10_000;
/** IPS_LATE_WRITE_MS both ledgers are made with: how long a taken-over claim's IAM writes may still land. */
export const LATE_WRITE_MS = 15_000;
const DAY = 86_400_000;

interface Case {
  ledger: ContractLedger;
  /** The ledger's clock; `advance` moves it. */
  now(): number;
  advance(ms: number): void;
  /** A policy name no other case uses. */
  policy(label: string): string;
}

let names = 0;
const run = `${process.pid}-${Date.now().toString(36)}`;

function setUp(make: MakeLedger): Case {
  let clock = Date.now();
  const now = () => clock;
  return {
    ledger: make({ claimTtlMs: TTL, eventIdTtlDays: 8, now }),
    now,
    advance: (ms) => void (clock += ms),
    policy: (label) => `${label}-${run}-${++names}`,
  };
}

const at = (shardId: string, sequenceNumber: string, subSequenceNumber = 0): RecordPosition => ({ shardId, sequenceNumber, subSequenceNumber });
const position = (record: RecordPosition, lineage: string[] = []): LedgerPosition => ({ ...record, lineage });

function claimRequest(policy: string, record: RecordPosition, fields: Partial<ClaimRequest> = {}): ClaimRequest {
  return { policy, record, eventId: `${policy}@${record.shardId}/${record.sequenceNumber}/${record.subSequenceNumber}`, payloadHash: 'hash', owner: 'owner-a', epoch: 0, ...fields };
}

function completion(policy: string, token: string, record: RecordPosition, fields: Partial<CompletionRequest> = {}): CompletionRequest {
  return { policy, token, epoch: 0, position: position(record), events: [], state: 'present', outcome: 'created', ...fields };
}

async function won(ledger: Ledger, request: ClaimRequest) {
  const result = await ledger.claim(request);
  if (!result.won) throw new Error(`the claim of ${request.policy} was refused: ${result.because}`);
  return result;
}

/** Claims and completes one event: the entry then remembers it. */
async function settle(ledger: Ledger, request: ClaimRequest, fields: Partial<CompletionRequest> = {}, lineage: string[] = []) {
  const { token } = await won(ledger, request);
  await ledger.complete(
    completion(request.policy, token, request.record, {
      epoch: request.epoch,
      position: position(request.record, lineage),
      events: [{ eventId: request.eventId, payloadHash: request.payloadHash }],
      ...(request.revision !== undefined ? { revision: request.revision } : {}),
      ...fields,
    }),
  );
}

async function refusal(ledger: Ledger, request: ClaimRequest): Promise<string> {
  const result = await ledger.claim(request);
  return result.won ? 'won' : result.because;
}

/** Registers the ledger contract's cases on `test`, each against a ledger from `make`. */
export function ledgerContract(test: TestFn, implementation: string, make: MakeLedger): void {
  const named = (title: string) => `${implementation}: ${title}`;

  test(named('a first claim wins; the entry then shows it held by its owner, with no history'), async (t) => {
    const c = setUp(make);
    const p = c.policy('first');
    const result = await won(c.ledger, claimRequest(p, at('s-0', '1000'), { epoch: 3 }));
    t.is(result.previous, undefined);
    t.false(result.takenOver);
    t.is(result.expiresAt, c.now() + TTL);
    const entry = await c.ledger.get(p);
    t.is(entry?.claim?.owner, 'owner-a');
    t.is(entry?.claim?.token, result.token);
    t.is(entry?.claim?.expiresAt, c.now() + TTL);
    t.is(BigInt(entry?.claim?.sequence ?? '-1'), 1000n, "the claimed record's sequence number");
    t.is(entry?.epoch, 0, 'a claim alone moves no epoch');
    t.deepEqual(entry?.events, []);
    t.is(entry?.position, undefined);
  });

  test(named('a live claim keeps another owner out up to its expiry instant; past it, the claim is taken over'), async (t) => {
    const c = setUp(make);
    const p = c.policy('live');
    const first = await won(c.ledger, claimRequest(p, at('s-0', '1')));
    const other = claimRequest(p, at('s-0', '1'), { owner: 'owner-b' });
    const refused = await c.ledger.claim(other);
    t.false(refused.won);
    if (!refused.won) {
      t.is(refused.because, 'claimed-elsewhere');
      t.is(refused.entry.claim?.owner, 'owner-a', 'the refusal shows who holds it');
    }
    c.advance(TTL);
    t.is(await refusal(c.ledger, other), 'claimed-elsewhere', 'at its expiry instant the claim still holds');
    c.advance(1);
    const taken = await won(c.ledger, other);
    t.true(taken.takenOver);
    // The takeover ends the expired claim and marks the policy in one write, then claims: the entry before the claim holds the mark, not the claim.
    t.is(taken.previous?.claim, undefined);
    t.is(taken.previous?.verifyRequested, 1, 'the takeover marked the policy for re-verification');
    t.is(taken.previous?.verifyAfter, first.expiresAt + LATE_WRITE_MS, "once the expired claim's late writes can no longer land");
    t.not(taken.token, first.token);
    t.is((await c.ledger.get(p))?.claim?.owner, 'owner-b');
  });

  test(named('the owner claiming again extends its own claim, with a new token: no takeover'), async (t) => {
    const c = setUp(make);
    const p = c.policy('again');
    const first = await won(c.ledger, claimRequest(p, at('s-0', '1')));
    c.advance(TTL / 2);
    const again = await won(c.ledger, claimRequest(p, at('s-0', '2')));
    t.false(again.takenOver);
    t.not(again.token, first.token);
    t.is(again.expiresAt, c.now() + TTL);
    await t.throwsAsync(c.ledger.complete(completion(p, first.token, at('s-0', '1'))), { instanceOf: ClaimLostError }, 'the first token no longer completes');
  });

  test(named('completion is fenced by the claim token: a taken-over claim cannot complete over the new owner'), async (t) => {
    const c = setUp(make);
    const p = c.policy('fence');
    const old = await won(c.ledger, claimRequest(p, at('s-0', '1')));
    c.advance(TTL + 1);
    const current = await won(c.ledger, claimRequest(p, at('s-0', '1'), { owner: 'owner-b' }));
    await t.throwsAsync(c.ledger.complete(completion(p, old.token, at('s-0', '1'), { outcome: 'stale-owner' })), { instanceOf: ClaimLostError });
    await t.throwsAsync(c.ledger.renew(p, old.token), { instanceOf: ClaimLostError });
    const held = await c.ledger.get(p);
    t.is(held?.claim?.token, current.token, 'the new owner still holds it');
    t.is(held?.position, undefined, "nothing of the old owner's completion was written");
    await c.ledger.complete(completion(p, current.token, at('s-0', '1')));
    t.is((await c.ledger.get(p))?.claim, undefined);
  });

  test(named('a completion or renewal without a claim at all is a lost claim'), async (t) => {
    const c = setUp(make);
    const p = c.policy('none');
    await t.throwsAsync(c.ledger.complete(completion(p, 'no-such-token', at('s-0', '1'))), { instanceOf: ClaimLostError });
    await t.throwsAsync(c.ledger.renew(p, 'no-such-token'), { instanceOf: ClaimLostError });
    await settle(c.ledger, claimRequest(p, at('s-0', '1')));
    await t.throwsAsync(c.ledger.completeVerification(p, 'no-such-token', 1), { instanceOf: ClaimLostError });
  });

  test(named('the token, not the clock, fences: a claim that expired while no one took it over still renews and completes'), async (t) => {
    const c = setUp(make);
    const p = c.policy('expired-own');
    const { token } = await won(c.ledger, claimRequest(p, at('s-0', '1')));
    c.advance(TTL + 5);
    t.is(await c.ledger.renew(p, token), c.now() + TTL);
    t.is((await c.ledger.get(p))?.claim?.expiresAt, c.now() + TTL);
    c.advance(TTL + 5);
    await c.ledger.complete(completion(p, token, at('s-0', '1')));
    t.is((await c.ledger.get(p))?.claim, undefined);
  });

  test(named('a completion writes the whole entry and releases the claim'), async (t) => {
    const c = setUp(make);
    const p = c.policy('complete');
    const { token } = await won(c.ledger, claimRequest(p, at('s-1', '1000', 3), { revision: 7 }));
    c.advance(1_234);
    await c.ledger.complete({
      policy: p,
      token,
      epoch: 0,
      position: position(at('s-1', '1000', 3), ['s-0']),
      revision: 7,
      events: [
        { eventId: 'e-1', payloadHash: 'h-1' },
        { eventId: 'e-2', payloadHash: 'h-2' },
      ],
      docHash: 'doc-7',
      state: 'present',
      desired: { path: '/managed/', document: { Version: '2012-10-17', Statement: [] }, tags: { team: 'red' } },
      iamVersions: ['v1', 'v2'],
      verifiedUpTo: 0,
      outcome: 'updated',
    });
    const entry = await c.ledger.get(p);
    t.like(entry, {
      policy: p,
      epoch: 0,
      position: { shardId: 's-1', sequenceNumber: '1000', subSequenceNumber: 3, lineage: ['s-0'] },
      revision: 7,
      events: [
        { eventId: 'e-1', payloadHash: 'h-1' },
        { eventId: 'e-2', payloadHash: 'h-2' },
      ],
      docHash: 'doc-7',
      state: 'present',
      desired: { path: '/managed/', document: { Version: '2012-10-17', Statement: [] }, tags: { team: 'red' } },
      iamVersions: ['v1', 'v2'],
      lastOutcome: 'updated',
      updatedAt: new Date(c.now()).toISOString(),
    });
    t.is(entry?.claim, undefined);
  });

  test(named('a completion keeps the document hash and desired state it does not name, and forgets IAM versions it does not vouch for'), async (t) => {
    const c = setUp(make);
    const p = c.policy('partial');
    await settle(c.ledger, claimRequest(p, at('s-0', '1')), { docHash: 'doc-1', desired: { path: '/managed/' }, iamVersions: ['v1'] });
    await settle(c.ledger, claimRequest(p, at('s-0', '2')), { state: 'retained-in-use', outcome: 'retained-in-use' });
    const entry = await c.ledger.get(p);
    t.is(entry?.docHash, 'doc-1');
    t.deepEqual(entry?.desired, { path: '/managed/' });
    t.is(entry?.iamVersions, undefined);
    t.is(entry?.state, 'retained-in-use');
    t.deepEqual(
      entry?.events.map((e) => e.eventId),
      [claimRequest(p, at('s-0', '2')).eventId],
      "the events are the completion's list, as given",
    );
  });

  test(named("on the position's shard, records at or before it are duplicates, by sequence number as a number, then subsequence"), async (t) => {
    const c = setUp(make);
    const p = c.policy('position');
    await settle(c.ledger, claimRequest(p, at('s-0', '999', 2)));
    t.is(await refusal(c.ledger, claimRequest(p, at('s-0', '999', 2), { eventId: 'x1' })), 'duplicate-sequence');
    t.is(await refusal(c.ledger, claimRequest(p, at('s-0', '999', 1), { eventId: 'x2' })), 'duplicate-sequence');
    t.is(await refusal(c.ledger, claimRequest(p, at('s-0', '998', 9), { eventId: 'x3' })), 'duplicate-sequence');
    t.is(await refusal(c.ledger, claimRequest(p, at('s-0', '99', 0), { eventId: 'x4' })), 'duplicate-sequence', '99 is before 999 though it is a prefix');
    t.is(await refusal(c.ledger, claimRequest(p, at('s-0', '999', 3), { eventId: 'x5' })), 'won', 'a later user record of the same aggregate');
    const c2 = setUp(make);
    const q = c2.policy('position-length');
    await settle(c2.ledger, claimRequest(q, at('s-0', '999')));
    t.is(await refusal(c2.ledger, claimRequest(q, at('s-0', '1000'), { eventId: 'y1' })), 'won', '1000 is after 999 though it sorts first as text');
    const long = '49680464252519823727834655071869294981423994413795770370';
    const c3 = setUp(make);
    const r = c3.policy('position-long');
    await settle(c3.ledger, claimRequest(r, at('s-0', long)));
    t.is(await refusal(c3.ledger, claimRequest(r, at('s-0', `${long.slice(0, -1)}1`), { eventId: 'z1' })), 'won');
    t.is(await refusal(c3.ledger, claimRequest(r, at('s-0', `${long.slice(0, -1)}0`), { eventId: 'z2' })), 'duplicate-sequence');
  });

  test(named("across shards the lineage orders: an ancestor's record is a duplicate, a descendant's or an unrelated shard's is new"), async (t) => {
    const c = setUp(make);
    const p = c.policy('lineage');
    await settle(c.ledger, claimRequest(p, at('s-child', '100')), {}, ['s-parent', 's-grandparent']);
    t.is(await refusal(c.ledger, claimRequest(p, at('s-parent', '999999'), { eventId: 'l1' })), 'duplicate-sequence');
    t.is(await refusal(c.ledger, claimRequest(p, at('s-grandparent', '5'), { eventId: 'l2' })), 'duplicate-sequence');
    const c2 = setUp(make);
    const q = c2.policy('lineage-desc');
    await settle(c2.ledger, claimRequest(q, at('s-child', '100')), {}, ['s-parent']);
    t.is(await refusal(c2.ledger, claimRequest(q, at('s-grandchild', '1'), { eventId: 'l3' })), 'won', 'a descendant, even with a lower sequence number');
    const c3 = setUp(make);
    const r = c3.policy('lineage-other');
    await settle(c3.ledger, claimRequest(r, at('s-child', '100')), {}, ['s-parent']);
    t.is(await refusal(c3.ledger, claimRequest(r, at('s-elsewhere', '1'), { eventId: 'l4' })), 'won');
  });

  test(named('a remembered eventId: the same payload is a producer retry, another payload a conflict'), async (t) => {
    const c = setUp(make);
    const p = c.policy('event-id');
    await settle(c.ledger, claimRequest(p, at('s-0', '1'), { eventId: 'e-1', payloadHash: 'h-1' }));
    t.is(await refusal(c.ledger, claimRequest(p, at('s-0', '2'), { eventId: 'e-1', payloadHash: 'h-1' })), 'duplicate-event-id');
    t.is(await refusal(c.ledger, claimRequest(p, at('s-0', '3'), { eventId: 'e-1', payloadHash: 'h-other' })), 'event-id-conflict');
    t.is(await refusal(c.ledger, claimRequest(p, at('s-0', '4'), { eventId: 'e-2', payloadHash: 'h-1' })), 'won');
  });

  test(named('a revision at or below the applied one is stale; a higher one, or none, is claimed'), async (t) => {
    const c = setUp(make);
    const p = c.policy('revision');
    await settle(c.ledger, claimRequest(p, at('s-0', '1'), { revision: 5 }));
    t.is(await refusal(c.ledger, claimRequest(p, at('s-0', '2'), { eventId: 'r4', revision: 4 })), 'stale-revision');
    t.is(await refusal(c.ledger, claimRequest(p, at('s-0', '3'), { eventId: 'r5', revision: 5 })), 'stale-revision');
    t.is(await refusal(c.ledger, claimRequest(p, at('s-0', '4'), { eventId: 'r-none' })), 'won', 'an event without a revision is not judged by revision');
    t.is(await refusal(c.ledger, claimRequest(p, at('s-0', '5'), { eventId: 'r6', revision: 6 })), 'won');
  });

  test(named('a claim without a settled event judges nothing: an expired claim alone refuses no record, eventId or revision'), async (t) => {
    const c = setUp(make);
    const p = c.policy('claim-only');
    await won(c.ledger, claimRequest(p, at('s-0', '10'), { eventId: 'c-1', revision: 9 }));
    c.advance(TTL + 1);
    t.is(await refusal(c.ledger, claimRequest(p, at('s-0', '5'), { eventId: 'c-1', revision: 1, owner: 'owner-b' })), 'won');
  });

  test(named('a newer epoch claims again what the entry settled; an older one is judged by the entry'), async (t) => {
    const c = setUp(make);
    const p = c.policy('epoch');
    const first = claimRequest(p, at('s-0', '10'), { eventId: 'ep-1', revision: 3, epoch: 1 });
    await settle(c.ledger, first);
    t.is(await refusal(c.ledger, { ...first, epoch: 1 }), 'duplicate-sequence');
    t.is(await refusal(c.ledger, { ...first, epoch: 0, record: at('s-0', '11'), eventId: 'ep-0' }), 'stale-revision', 'an older epoch does not re-open the entry');
    await settle(c.ledger, { ...first, epoch: 2 }, { epoch: 2 });
    const entry = await c.ledger.get(p);
    t.is(entry?.epoch, 2);
    t.is(await refusal(c.ledger, { ...first, epoch: 2 }), 'duplicate-sequence', 'settled again in the new epoch');
  });

  test(named('epochs: ledger-wide, or per shard and its lineage, always above every earlier one'), async (t) => {
    const c = setUp(make);
    const shard = `shard-${c.policy('epoch-scope')}`;
    const other = `shard-${c.policy('epoch-other')}`;
    const base = await c.ledger.currentEpoch();
    t.is(await c.ledger.currentEpoch([shard]), base, 'a shard with no epoch of its own is in the ledger-wide one');
    const scoped = await c.ledger.advanceEpoch([shard]);
    t.true(scoped > base);
    t.is(await c.ledger.currentEpoch([shard]), scoped);
    t.is(await c.ledger.currentEpoch([other, shard]), scoped, 'the highest of the shard and its ancestors');
    t.is(await c.ledger.currentEpoch([other]), base, 'other shards keep theirs');
    t.is(await c.ledger.currentEpoch(), base);
    const wide = await c.ledger.advanceEpoch();
    t.true(wide > scoped, 'a later epoch, whatever its scope, is above every earlier one');
    t.is(await c.ledger.currentEpoch([shard]), wide);
    t.is(await c.ledger.currentEpoch(), wide);
  });

  test(named('a refused claim changes nothing'), async (t) => {
    const c = setUp(make);
    const p = c.policy('refused');
    await settle(c.ledger, claimRequest(p, at('s-0', '10'), { revision: 2 }));
    const before = await c.ledger.get(p);
    for (const request of [claimRequest(p, at('s-0', '10')), claimRequest(p, at('s-0', '11'), { revision: 1 })]) t.not(await refusal(c.ledger, request), 'won');
    t.deepEqual(await c.ledger.get(p), before);
  });

  test(named('what the ledger hands out and takes in are copies: changing them later changes no entry'), async (t) => {
    const c = setUp(make);
    const p = c.policy('copies');
    const { token } = await won(c.ledger, claimRequest(p, at('s-0', '1')));
    const events = [{ eventId: 'copy-1', payloadHash: 'h' }];
    const desired = { path: '/managed/', tags: { team: 'red' } };
    const iamVersions = ['v1'];
    await c.ledger.complete(completion(p, token, at('s-0', '1'), { events, desired, iamVersions }));
    events.push({ eventId: 'copy-2', payloadHash: 'h' });
    desired.tags.team = 'blue';
    iamVersions.push('v2');
    const read = await c.ledger.get(p);
    t.deepEqual(read?.events, [{ eventId: 'copy-1', payloadHash: 'h' }]);
    t.deepEqual(read?.desired, { path: '/managed/', tags: { team: 'red' } });
    t.deepEqual(read?.iamVersions, ['v1']);
    read!.events.push({ eventId: 'copy-3' });
    const refused = await c.ledger.claim(claimRequest(p, at('s-0', '1')));
    if (!refused.won) refused.entry.events.push({ eventId: 'copy-4' });
    t.deepEqual((await c.ledger.get(p))?.events, [{ eventId: 'copy-1', payloadHash: 'h' }]);
  });

  test(named('a verification mark is a counter; its late-write bound only moves forward'), async (t) => {
    const c = setUp(make);
    const p = c.policy('mark');
    await settle(c.ledger, claimRequest(p, at('s-0', '1')));
    await c.ledger.requestVerification(p);
    t.true(needsVerification(await c.ledger.get(p)));
    t.is((await c.ledger.get(p))?.verifyAfter, undefined, 'no late writes named: no bound');
    await c.ledger.requestVerification(p, { ms: 5_000 });
    t.is((await c.ledger.get(p))?.verifyAfter, c.now() + 5_000);
    await c.ledger.requestVerification(p, { ms: 1_000 });
    await c.ledger.requestVerification(p, { ms: 1_000, from: c.now() + 10_000 });
    const entry = await c.ledger.get(p);
    t.is(entry?.verifyRequested, 4);
    t.is(entry?.verifyAfter, c.now() + 11_000, 'the latest bound wins, an earlier one does not move it back');
    t.deepEqual(entry?.events.length, 1, 'the mark leaves the rest of the entry as it was');
  });

  test(named('a mark on a policy the ledger never saw makes an entry that holds only the mark'), async (t) => {
    const c = setUp(make);
    const p = c.policy('mark-new');
    await c.ledger.requestVerification(p, { ms: 1_000 });
    const entry = await c.ledger.get(p);
    t.like(entry, { policy: p, epoch: 0, verifyRequested: 1, verifyAfter: c.now() + 1_000 });
    t.deepEqual(entry?.events, []);
    t.is(entry?.position, undefined);
    t.is(await refusal(c.ledger, claimRequest(p, at('s-0', '1'))), 'won', 'an event is still claimed');
  });

  test(named('a verification claim: only while a mark is owed, only once its late writes are past, never over a live claim elsewhere'), async (t) => {
    const c = setUp(make);
    const p = c.policy('verify');
    const refusedWith = async (owner: string) => {
      const result = await c.ledger.claimVerification(p, owner);
      return result.won ? 'won' : result.because;
    };
    t.not(await refusedWith('owner-v'), 'won', 'no entry: nothing to verify');
    await settle(c.ledger, claimRequest(p, at('s-0', '1')));
    t.is(await refusedWith('owner-v'), 'duplicate-sequence', 'no mark owed');
    await c.ledger.requestVerification(p, { ms: 3_000 });
    t.is(await refusedWith('owner-v'), 'verification-waits');
    c.advance(3_000);
    const holder = await won(c.ledger, claimRequest(p, at('s-0', '2'), { owner: 'owner-a' }));
    t.is(await refusedWith('owner-v'), 'claimed-elsewhere', 'an event claim held elsewhere keeps it out');
    await c.ledger.complete(completion(p, holder.token, at('s-0', '2')));
    const verification = await c.ledger.claimVerification(p, 'owner-v');
    t.true(verification.won, 'at the bound itself the late writes are past');
    if (!verification.won) return;
    t.is(verification.expiresAt, c.now() + TTL);
    t.is((await c.ledger.get(p))?.claim?.owner, 'owner-v');
    t.is(await refusal(c.ledger, claimRequest(p, at('s-0', '3'), { owner: 'owner-a' })), 'claimed-elsewhere', 'a verification claim keeps event claims out');
    c.advance(TTL + 1);
    t.false((await c.ledger.claimVerification(p, 'owner-w')).won, "an expired verification claim's late writes are waited for");
    c.advance(LATE_WRITE_MS);
    const over = await c.ledger.claimVerification(p, 'owner-w');
    t.true(over.won, 'an expired verification claim is taken over once its late writes are past');
  });

  test(named('completing a verification answers the marks it saw, releases the claim and forgets the IAM versions'), async (t) => {
    const c = setUp(make);
    const p = c.policy('verified');
    await settle(c.ledger, claimRequest(p, at('s-0', '1')), { iamVersions: ['v1'] });
    await c.ledger.requestVerification(p);
    await c.ledger.requestVerification(p);
    const claim = await c.ledger.claimVerification(p, 'owner-v');
    if (!claim.won) return t.fail(claim.because);
    await c.ledger.requestVerification(p); // a mark added while it runs outlives it
    await c.ledger.completeVerification(p, claim.token, 2);
    const entry = await c.ledger.get(p);
    t.is(entry?.claim, undefined);
    t.is(entry?.verifiedUpTo, 2);
    t.is(entry?.iamVersions, undefined);
    t.true(needsVerification(entry), 'the third mark is still owed');
    t.is(entry?.updatedAt, new Date(c.now()).toISOString());
    // The same completion again (its answer lost, the SDK's retry) is recognised as done and changes nothing.
    await c.ledger.completeVerification(p, claim.token, 3);
    t.is((await c.ledger.get(p))?.verifiedUpTo, 2, 'a verification completes once');
    await t.throwsAsync(c.ledger.completeVerification(p, 'another-token', 3), { instanceOf: ClaimLostError });
  });

  test(named('a completion that read IAM answers the marks up to the count it names'), async (t) => {
    const c = setUp(make);
    const p = c.policy('answered');
    await settle(c.ledger, claimRequest(p, at('s-0', '1')));
    await c.ledger.requestVerification(p);
    await settle(c.ledger, claimRequest(p, at('s-0', '2')), { verifiedUpTo: 1 });
    t.false(needsVerification(await c.ledger.get(p)));
    await c.ledger.requestVerification(p);
    await settle(c.ledger, claimRequest(p, at('s-0', '3')));
    const entry = await c.ledger.get(p);
    t.true(needsVerification(entry), 'a completion that names no count answers nothing');
    t.is(entry?.verifiedUpTo, 1);
  });

  test(named('archived eventIds are found by policy, from their epoch on, with their payload hash, until their time to live'), async (t) => {
    const c = setUp(make);
    const p = c.policy('archive');
    const q = c.policy('archive-other');
    await c.ledger.archiveEvents(p, 1, [{ eventId: 'a-1', payloadHash: 'h-1' }, { eventId: 'a-2' }]);
    await c.ledger.archiveEvents(p, 3, [{ eventId: 'a-3', payloadHash: 'h-3' }]);
    await c.ledger.archiveEvents(q, 3, [{ eventId: 'a-9', payloadHash: 'h-9' }]);
    const sorted = (events: { eventId: string }[]) => [...events].sort((a, b) => (a.eventId < b.eventId ? -1 : 1));
    t.deepEqual(sorted(await c.ledger.archivedEvents(p, 1, ['a-1', 'a-2', 'a-3', 'a-9', 'unknown'], undefined)), [
      { eventId: 'a-1', payloadHash: 'h-1' },
      { eventId: 'a-2' },
      { eventId: 'a-3', payloadHash: 'h-3' },
    ]);
    t.deepEqual(await c.ledger.archivedEvents(p, 2, ['a-1', 'a-3'], undefined), [{ eventId: 'a-3', payloadHash: 'h-3' }], 'a re-apply replay forgets older epochs');
    t.deepEqual(await c.ledger.archivedEvents(p, 1, ['a-1', 'a-1', 'a-1'], undefined), [{ eventId: 'a-1', payloadHash: 'h-1' }], 'an eventId asked twice is found once');
    t.deepEqual(await c.ledger.archivedEvents(p, 0, [], undefined), []);
    await c.ledger.archiveEvents(p, 4, [{ eventId: 'a-1', payloadHash: 'h-1' }]);
    t.deepEqual(await c.ledger.archivedEvents(p, 4, ['a-1'], undefined), [{ eventId: 'a-1', payloadHash: 'h-1' }], 'archived again: under the later epoch');
    t.is(await c.ledger.get(p), undefined, 'archived events are no entry of the policy');
    c.advance(7 * DAY);
    t.is((await c.ledger.archivedEvents(p, 1, ['a-3'], undefined)).length, 1, 'kept within the time to live');
    c.advance(2 * DAY);
    t.deepEqual(await c.ledger.archivedEvents(p, 1, ['a-2', 'a-3'], undefined), [], 'past the time to live, as if gone');
  });

  const adoption = (policy: string, document: object, fields: Partial<AdoptionRequest> = {}): AdoptionRequest => ({
    policy,
    epoch: 0,
    desired: { path: '/stream-managed/', document: document as AdoptionRequest['desired']['document'], tags: { team: 'reports' } },
    docHash: `hash-of-${JSON.stringify(document)}`,
    by: 'arn:aws:iam::123456789012:user/operator',
    ...fields,
  });

  test(named('an adoption of a policy the ledger never saw records it present, its document the last applied, revision and versions unknown'), async (t) => {
    const c = setUp(make);
    const p = c.policy('adopt-new');
    const result = await c.ledger.adopt(adoption(p, { v: 1 }, { epoch: 2 }));
    t.deepEqual(result, { recorded: true, previous: undefined });
    const entry = await c.ledger.get(p);
    t.is(entry?.state, 'present');
    t.is(entry?.docHash, 'hash-of-{"v":1}');
    t.deepEqual(entry?.desired, { path: '/stream-managed/', document: { v: 1 }, tags: { team: 'reports' } });
    t.is(entry?.epoch, 2, 'a new entry starts in the given epoch');
    t.is(entry?.revision, undefined);
    t.is(entry?.iamVersions, undefined, 'no version ids: the next step reads IAM before it writes');
    t.is(entry?.position, undefined);
    t.deepEqual(entry?.events, []);
    t.is(entry?.claim, undefined);
    t.is(entry?.adopted?.by, 'arn:aws:iam::123456789012:user/operator');
    t.is(entry?.adopted?.at, new Date(c.now()).toISOString());
  });

  test(named('an adopted entry claims the first event of any revision; that revision is known from then on'), async (t) => {
    const c = setUp(make);
    const p = c.policy('adopt-revision');
    await c.ledger.adopt(adoption(p, { v: 1 }));
    const first = await won(c.ledger, claimRequest(p, at('s-0', '10'), { eventId: 'ad-1', revision: 0 }));
    t.is(first.previous?.state, 'present', 'the claim hands the adopted state to the step');
    t.is(first.previous?.docHash, 'hash-of-{"v":1}');
    await c.ledger.complete(completion(p, first.token, at('s-0', '10'), { events: [{ eventId: 'ad-1', payloadHash: 'hash' }], revision: 0, outcome: 'updated' }));
    t.is((await c.ledger.get(p))?.adopted, undefined, "an event took effect: the state is the processor's now");
    t.is(await refusal(c.ledger, claimRequest(p, at('s-0', '11'), { eventId: 'ad-2', revision: 0 })), 'stale-revision');
    t.is(await refusal(c.ledger, claimRequest(p, at('s-0', '12'), { eventId: 'ad-3', revision: 1 })), 'won');
  });

  test(named('an adoption keeps what the stream settled: an entry of refused events keeps its epoch, position and eventIds'), async (t) => {
    const c = setUp(make);
    const p = c.policy('adopt-settled');
    // A batch whose events were all refused (not-owned): position moved, nothing applied.
    const { token } = await won(c.ledger, claimRequest(p, at('s-0', '50'), { eventId: 'refused-1', revision: 40, epoch: 3 }));
    await c.ledger.complete(completion(p, token, at('s-0', '50'), { epoch: 3, state: 'unknown', outcome: 'rejected', events: [{ eventId: 'older', payloadHash: 'h' }] }));
    const result = await c.ledger.adopt(adoption(p, { v: 1 }, { epoch: 1 }));
    t.true(result.recorded);
    t.is(result.recorded ? result.previous?.state : undefined, 'unknown');
    const entry = await c.ledger.get(p);
    t.is(entry?.state, 'present');
    t.is(entry?.epoch, 3, 'an entry that exists keeps its epoch');
    t.is(entry?.position?.sequenceNumber, '50');
    t.deepEqual(entry?.events, [{ eventId: 'older', payloadHash: 'h' }]);
    t.is(await refusal(c.ledger, claimRequest(p, at('s-0', '50'), { eventId: 'refused-1', epoch: 3 })), 'duplicate-sequence', 'a redelivery stays a duplicate');
    // A batch refused after the adoption (the tag not there yet) keeps the adoption.
    const refused = await won(c.ledger, claimRequest(p, at('s-0', '51'), { eventId: 'refused-2', epoch: 3 }));
    await c.ledger.complete(completion(p, refused.token, at('s-0', '51'), { epoch: 3, state: 'present', outcome: 'rejected', docHash: 'hash-of-{"v":1}' }));
    t.truthy((await c.ledger.get(p))?.adopted);
    t.is(await refusal(c.ledger, claimRequest(p, at('s-0', '52'), { eventId: 'next', revision: 1, epoch: 3 })), 'won');
  });

  test(named('an adoption never overwrites applied state, nor an entry under a claim; run again before any event took effect, it records the document again'), async (t) => {
    const c = setUp(make);
    const applied = c.policy('adopt-applied');
    await settle(c.ledger, claimRequest(applied, at('s-0', '1'), { revision: 7 }), { docHash: 'processor', desired: { path: '/stream-managed/', document: { v: 0 } as never }, iamVersions: ['v1'] });
    const before = await c.ledger.get(applied);
    const refused = await c.ledger.adopt(adoption(applied, { v: 1 }));
    t.false(refused.recorded);
    t.is(refused.recorded ? undefined : refused.because, 'state-applied');
    t.deepEqual(await c.ledger.get(applied), before, 'nothing written');

    const claimed = c.policy('adopt-claimed');
    await won(c.ledger, claimRequest(claimed, at('s-0', '1')));
    const inFlight = await c.ledger.adopt(adoption(claimed, { v: 1 }));
    t.is(inFlight.recorded ? undefined : inFlight.because, 'claim-in-flight');
    c.advance(TTL + 1);
    const expired = await c.ledger.adopt(adoption(claimed, { v: 1 }));
    t.is(expired.recorded ? undefined : expired.because, 'claim-in-flight', 'an expired claim too: its step may be unfinished');
    t.is((await c.ledger.get(claimed))?.state, undefined);

    const rerun = c.policy('adopt-rerun');
    t.true((await c.ledger.adopt(adoption(rerun, { v: 1 }))).recorded);
    const again = await c.ledger.adopt(adoption(rerun, { v: 1 }));
    t.true(again.recorded, 'the same adoption again');
    t.truthy(again.recorded ? again.previous?.adopted : undefined);
    t.true((await c.ledger.adopt(adoption(rerun, { v: 2 }))).recorded, 'edited out of band before the tag: adopted as it is now');
    t.is((await c.ledger.get(rerun))?.docHash, 'hash-of-{"v":2}');
    const { token } = await won(c.ledger, claimRequest(rerun, at('s-0', '1')));
    await c.ledger.complete(completion(rerun, token, at('s-0', '1'), { outcome: 'updated', docHash: 'applied' }));
    const afterEvent = await c.ledger.adopt(adoption(rerun, { v: 3 }));
    t.is(afterEvent.recorded ? undefined : afterEvent.because, 'state-applied', "once an event took effect, the state is the processor's");

    const gone = c.policy('adopt-deleted');
    await settle(c.ledger, claimRequest(gone, at('s-0', '1'), { revision: 4 }), { state: 'deleted', outcome: 'deleted', desired: { path: '/stream-managed/' } });
    t.true((await c.ledger.adopt(adoption(gone, { v: 3 }))).recorded, 'a policy the processor deleted, made again by hand');
    t.is((await c.ledger.get(gone))?.revision, undefined);
  });

  test(named('a release forgets the IAM state, keeps position and eventIds, is refused under a claim, and does nothing twice or without an entry'), async (t) => {
    const c = setUp(make);
    const p = c.policy('release');
    const request = claimRequest(p, at('s-0', '20'), { eventId: 'rel-1', revision: 5 });
    await settle(c.ledger, request, { docHash: 'd', desired: { path: '/stream-managed/', document: { v: 1 } as never }, iamVersions: ['v1'] });
    const released = await c.ledger.release(p);
    t.true(released.forgotten);
    t.is(released.forgotten ? released.previous?.state : undefined, 'present');
    const entry = await c.ledger.get(p);
    t.is(entry?.state, 'unknown');
    for (const field of ['desired', 'docHash', 'iamVersions', 'revision', 'adopted'] as const) t.is(entry?.[field], undefined, field);
    t.is(entry?.position?.sequenceNumber, '20');
    t.deepEqual(
      entry?.events.map((event) => event.eventId),
      ['rel-1'],
    );
    t.is(await refusal(c.ledger, request), 'duplicate-sequence', 'what was settled stays settled');
    t.is(await refusal(c.ledger, { ...request, record: at('s-0', '21') }), 'duplicate-event-id');

    const twice = await c.ledger.release(p);
    t.true(twice.forgotten);
    t.is(twice.forgotten ? twice.previous?.state : undefined, 'unknown');

    t.deepEqual(await c.ledger.release(c.policy('release-none')), { forgotten: true, previous: undefined });
    t.is(await c.ledger.get(c.policy('release-none')), undefined, 'no entry is made');

    const claimed = c.policy('release-claimed');
    await settle(c.ledger, claimRequest(claimed, at('s-0', '1')), { docHash: 'd' });
    await won(c.ledger, claimRequest(claimed, at('s-0', '2'), { eventId: 'rel-2' }));
    const refused = await c.ledger.release(claimed);
    t.false(refused.forgotten);
    t.is((await c.ledger.get(claimed))?.state, 'present', 'nothing forgotten under a claim');
  });
}
