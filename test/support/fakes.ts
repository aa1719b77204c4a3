// In-memory fakes of the ledger, IAM and the dead-letter store, with the same
// semantics as the real ones, for unit tests of the pipeline. The ledger's are
// pinned by the contract suite both ledgers pass (test/contract/ledger-contract.ts).
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { PolicyEvent } from '../../src/contract/event.js';
import type { IamOutcome } from '../../src/contract/outcome.js';
import type { DeadLetter, DeadLetterSink } from '../../src/deadletter/dead-letter-store.js';
import type { AdoptionRequest, AdoptionResult, ClaimRequest, ClaimResult, CompletionRequest, LateWrites, Ledger, LedgerEntry, ReleaseResult, RememberedEvent } from '../../src/ledger/ledger.js';
import { adoptionRefusal, archiveHolds, expiredElsewhere, explainRefusal, lateWritesEnd, needsVerification, settledVerdict } from '../../src/ledger/ledger.js';
import type { LedgerPosition } from '../../src/ledger/position.js';

type ArchivedEvent = RememberedEvent & { epoch: number; settledBy?: LedgerPosition };
import { recordId } from '../../src/contract/record-id.js';
import type { Applier } from '../../src/pipeline/types.js';
import { ClaimLostError, RejectedEventError } from '../../src/faults/errors.js';

export class MemoryLedger implements Ledger {
  readonly entries = new Map<string, LedgerEntry>();
  /** The token of each policy's last completion (DynamoDbLedger's completedToken). */
  private readonly completedTokens = new Map<string, string>();
  calls = 0;
  /** The ledger-wide epoch. */
  epoch = 0;
  /** Epochs of single shards (a re-apply replay of those shards), as DynamoDbLedger keeps them. */
  readonly shardEpochs = new Map<string, number>();
  /** Every epoch drawn so far, whatever its scope: a new one is above them all. */
  private epochCounter = 0;
  constructor(
    private readonly claimTtlMs = 60_000,
    private readonly now: () => number = Date.now,
    /** IPS_LATE_WRITE_MS: a takeover's mark waits this long after the taken-over claim's expiry. */
    private readonly lateWriteMs = 15_000,
    /** How long an archived eventId is found (Config.eventIdTtlDays). */
    private readonly eventIdTtlDays = 8,
  ) {}

  async currentEpoch(shards: string[] = []): Promise<number> {
    this.calls++;
    return Math.max(this.epoch, ...shards.map((shard) => this.shardEpochs.get(shard) ?? 0));
  }

  /** A new epoch for the whole ledger, or only for the given shards (DynamoDbLedger.advanceEpoch). */
  async advanceEpoch(shards?: string[]): Promise<number> {
    this.calls++;
    const next = Math.max(this.epochCounter, this.epoch, ...this.shardEpochs.values()) + 1;
    this.epochCounter = next;
    if (shards === undefined) this.epoch = next;
    else for (const shard of shards) this.shardEpochs.set(shard, next);
    return next;
  }

  async get(policy: string): Promise<LedgerEntry | undefined> {
    const entry = this.entries.get(policy);
    return entry && structuredClone(entry);
  }

  async claim(request: ClaimRequest): Promise<ClaimResult> {
    this.calls++;
    const now = this.now();
    const entry = this.entries.get(request.policy);
    // Another owner's expired claim, with nothing else in the way: ended with its mark (DynamoDbLedger.takeOver).
    const takenOver = entry !== undefined && settledVerdict(entry, request) === undefined && expiredElsewhere(entry, request.owner, now);
    if (takenOver) this.takeOver(entry);
    const claimFree = !entry?.claim || entry.claim.owner === request.owner;
    if (entry && !(claimFree && settledVerdict(entry, request) === undefined)) return { won: false, because: explainRefusal(entry, request, now), entry: structuredClone(entry) };
    const previous = entry ? structuredClone(entry) : undefined;
    const token = randomUUID();
    // A claim alone moves no epoch: only a completion writes one.
    const next: LedgerEntry = entry ?? { policy: request.policy, epoch: 0, events: [] };
    next.claim = { owner: request.owner, token, expiresAt: now + this.claimTtlMs, sequence: request.record.sequenceNumber };
    this.entries.set(request.policy, next);
    return { won: true, token, expiresAt: now + this.claimTtlMs, previous, takenOver };
  }

  private takeOver(entry: LedgerEntry & { claim: NonNullable<LedgerEntry['claim']> }): void {
    entry.verifyRequested = (entry.verifyRequested ?? 0) + 1;
    entry.verifyAfter = lateWritesEnd(entry, entry.claim, this.lateWriteMs);
    delete (entry as LedgerEntry).claim;
  }

  async renew(policy: string, token: string): Promise<number> {
    this.calls++;
    const entry = this.entries.get(policy);
    if (!entry?.claim || entry.claim.token !== token) throw new ClaimLostError(`claim on ${policy} lost`);
    entry.claim.expiresAt = this.now() + this.claimTtlMs;
    return entry.claim.expiresAt;
  }

  async requestVerification(policy: string, lateWrites?: LateWrites): Promise<void> {
    this.calls++;
    const notBefore = lateWrites && (lateWrites.from ?? this.now()) + lateWrites.ms;
    const entry = this.entries.get(policy) ?? { policy, epoch: 0, events: [] };
    entry.verifyRequested = (entry.verifyRequested ?? 0) + 1;
    if (notBefore !== undefined) entry.verifyAfter = Math.max(entry.verifyAfter ?? 0, notBefore);
    this.entries.set(policy, entry);
  }

  async claimVerification(policy: string, owner: string): Promise<ClaimResult> {
    this.calls++;
    const now = this.now();
    const entry = this.entries.get(policy);
    if (!entry) return { won: false, because: 'duplicate-sequence', entry: { policy, epoch: 0, events: [] } };
    const takenOver = needsVerification(entry) && expiredElsewhere(entry, owner, now);
    if (takenOver) this.takeOver(entry);
    if (entry.claim && entry.claim.owner !== owner && entry.claim.expiresAt >= now) return { won: false, because: 'claimed-elsewhere', entry: structuredClone(entry) };
    if (!needsVerification(entry)) return { won: false, because: 'duplicate-sequence', entry: structuredClone(entry) };
    if ((entry.verifyAfter ?? 0) > now) return { won: false, because: 'verification-waits', entry: structuredClone(entry) };
    const previous = structuredClone(entry);
    const token = randomUUID();
    entry.claim = { owner, token, expiresAt: now + this.claimTtlMs, sequence: 'verification' };
    return { won: true, token, expiresAt: entry.claim.expiresAt, previous, takenOver };
  }

  /** Archived events by policy, then eventId (DynamoDbLedger: one item each, with a time to live in epoch seconds). */
  readonly archive = new Map<string, Map<string, ArchivedEvent & { expiresAt: number }>>();

  async archiveEvents(policy: string, epoch: number, events: RememberedEvent[], settledBy?: LedgerPosition): Promise<void> {
    this.calls++;
    const expiresAt = Math.floor(this.now() / 1000) + Math.round(this.eventIdTtlDays * 86_400);
    const archived = this.archive.get(policy) ?? new Map<string, ArchivedEvent & { expiresAt: number }>();
    for (const event of events) archived.set(event.eventId, { ...event, epoch, expiresAt, ...(settledBy ? { settledBy: structuredClone(settledBy) } : {}) });
    this.archive.set(policy, archived);
  }

  async archivedEvents(policy: string, epoch: number, eventIds: string[], position: LedgerPosition | undefined): Promise<RememberedEvent[]> {
    this.calls++;
    const archived = this.archive.get(policy);
    const now = Math.floor(this.now() / 1000);
    return [...new Set(eventIds)].flatMap((eventId) => {
      const event = archived?.get(eventId);
      return event && event.epoch >= epoch && event.expiresAt >= now && archiveHolds(position, event.settledBy)
        ? [{ eventId: event.eventId, ...(event.payloadHash !== undefined ? { payloadHash: event.payloadHash } : {}) }]
        : [];
    });
  }

  async completeVerification(policy: string, token: string, verifiedUpTo: number): Promise<void> {
    this.calls++;
    const entry = this.entries.get(policy);
    // Our own completion already applied (its answer lost, the call retried) is done, as DynamoDbLedger tells from completedToken.
    if (this.completedTokens.get(policy) === token) return;
    if (!entry?.claim || entry.claim.token !== token) throw new ClaimLostError(`verification claim on ${policy} lost`);
    this.completedTokens.set(policy, token);
    delete entry.claim;
    entry.verifiedUpTo = verifiedUpTo;
    entry.updatedAt = new Date(this.now()).toISOString();
    delete entry.iamVersions;
  }

  /** As DynamoDbLedger.releaseClaim: the claim given up without completing anything; false when it was no longer ours. */
  async releaseClaim(policy: string, token: string): Promise<boolean> {
    this.calls++;
    const entry = this.entries.get(policy);
    if (!entry?.claim || entry.claim.token !== token) return false;
    delete entry.claim;
    return true;
  }

  async adopt(request: AdoptionRequest): Promise<AdoptionResult> {
    this.calls++;
    const entry = this.entries.get(request.policy);
    const refusal = adoptionRefusal(entry);
    if (refusal) return { recorded: false, because: refusal, entry: structuredClone(entry!) };
    const previous = entry && structuredClone(entry);
    const at = new Date(this.now()).toISOString();
    const next: LedgerEntry = entry ?? { policy: request.policy, epoch: request.epoch, events: [] };
    next.state = 'present';
    next.docHash = request.docHash;
    next.desired = structuredClone(request.desired);
    next.adopted = { at, by: request.by };
    next.updatedAt = at;
    delete next.revision;
    delete next.iamVersions;
    this.entries.set(request.policy, next);
    return { recorded: true, previous };
  }

  async release(policy: string): Promise<ReleaseResult> {
    this.calls++;
    const entry = this.entries.get(policy);
    if (!entry) return { forgotten: true, previous: undefined };
    if (entry.claim) return { forgotten: false, because: 'claim-in-flight', entry: structuredClone(entry) };
    const previous = structuredClone(entry);
    entry.state = 'unknown';
    entry.updatedAt = new Date(this.now()).toISOString();
    for (const key of ['desired', 'docHash', 'iamVersions', 'revision', 'adopted'] as const) delete entry[key];
    return { forgotten: true, previous };
  }

  async complete(request: CompletionRequest): Promise<void> {
    this.calls++;
    const entry = this.entries.get(request.policy);
    if (this.completedTokens.get(request.policy) === request.token) return;
    if (!entry?.claim || entry.claim.token !== request.token) throw new ClaimLostError(`claim on ${request.policy} lost`);
    this.completedTokens.set(request.policy, request.token);
    delete entry.claim;
    entry.epoch = request.epoch;
    entry.position = structuredClone(request.position);
    if (request.revision !== undefined) entry.revision = request.revision;
    else delete entry.revision;
    entry.events = structuredClone(request.events);
    entry.state = request.state;
    entry.lastOutcome = request.outcome;
    entry.updatedAt = new Date(this.now()).toISOString();
    if (request.docHash !== undefined) entry.docHash = request.docHash;
    if (request.desired !== undefined) entry.desired = structuredClone(request.desired);
    if (request.verifiedUpTo !== undefined) entry.verifiedUpTo = request.verifiedUpTo;
    if (request.iamVersions !== undefined) entry.iamVersions = [...request.iamVersions];
    else delete entry.iamVersions;
    if (request.outcome !== 'rejected') delete entry.adopted;
  }
}

/**
 * A fake IAM: policies by name (unique per account, as in IAM), each under its
 * path; a call that names another path than the policy's does not find it.
 * Every write recorded in order.
 */
export class FakeIam implements Applier {
  readonly policies = new Map<string, { document: unknown; versions: number; path: string }>();
  readonly writes: { policy: string; action: string; eventId: string }[] = [];
  readonly calls: { policy: string; eventId: string; started: number; ended: number }[] = [];
  inFlight = 0;
  maxInFlight = 0;
  /** Policies attached to a user, group or role: a delete keeps them (`retained-in-use`). */
  readonly attached = new Set<string>();
  constructor(private readonly delayMs: (event: PolicyEvent) => number = () => 0) {}

  async apply(event: PolicyEvent): Promise<IamOutcome> {
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    const started = performance.now();
    try {
      const delay = this.delayMs(event);
      if (delay > 0) await sleep(delay);
      const current = this.policies.get(event.policyName);
      if (event.type === 'policy.deleted') {
        if (!current || current.path !== event.policyPath) return 'absent'; // no policy at that ARN
        if (this.attached.has(event.policyName)) return 'retained-in-use';
        this.policies.delete(event.policyName);
        this.writes.push({ policy: event.policyName, action: 'delete', eventId: event.eventId });
        return 'deleted';
      }
      if (current && current.path !== event.policyPath) throw new RejectedEventError('iam:EntityAlreadyExists', `${event.policyName} exists under ${current.path}`);
      if (!current) {
        this.policies.set(event.policyName, { document: event.document, versions: 1, path: event.policyPath });
        this.writes.push({ policy: event.policyName, action: 'create', eventId: event.eventId });
        return 'created';
      }
      if (JSON.stringify(current.document) === JSON.stringify(event.document)) return 'unchanged';
      current.document = event.document;
      current.versions++;
      this.writes.push({ policy: event.policyName, action: 'update', eventId: event.eventId });
      return 'updated';
    } finally {
      this.inFlight--;
      this.calls.push({ policy: event.policyName, eventId: event.eventId, started, ended: performance.now() });
    }
  }
}

export class MemoryDeadLetters implements DeadLetterSink {
  readonly letters = new Map<string, DeadLetter>();
  async store(letter: DeadLetter): Promise<void> {
    this.letters.set(recordId(letter.record), letter);
  }
}
