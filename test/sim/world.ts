// One seed of the simulation: a stream of policy events on two shards, N
// workers that take shard leases and run the real pipeline core
// (settlePolicyBatch, verifyPolicy, the claim keeper) and the real reconciler
// against a ledger with DynamoDB's conditional-write semantics (MemoryLedger,
// held to the DynamoDB ledger's contract suite) and a simulated IAM. A seeded
// scheduler picks the interleaving and the faults; at the end the invariant
// checker of the end-to-end suites judges what IAM holds and what the
// workers said of each record.
//
// Faults: kills at any await (a killed process's requests in flight still
// land; it restarts as a new process with a new owner and an empty cache),
// pauses past the claim's and the lease's time to live (the process wakes a
// zombie), IAM throttling, IAM and ledger answers lost after their effect,
// IAM read lag of 0-2 s, and a replay of the whole stream from the start,
// either dropped as duplicates or re-applied under a new epoch.
import { IamReconciler } from '../../src/iam/reconciler.js';
import { reconcilerApplier } from '../../src/intake/applier.js';
import { settlePolicyBatch } from '../../src/pipeline/policy-batch.js';
import { verifyPolicy } from '../../src/pipeline/converge.js';
import type { PolicyBatchContext } from '../../src/pipeline/policy-batch.js';
import type { Settlement, StreamRecord, ValidRecord } from '../../src/pipeline/types.js';
import { decodeRecord } from '../../src/contract/decode.js';
import { payloadHash } from '../../src/contract/payload-hash.js';
import { hashKeyOf } from '../../src/contract/hash-key.js';
import { loadConfig } from '../../src/config/config.js';
import { DedupCache } from '../../src/ledger/dedup-cache.js';
import type { Ledger } from '../../src/ledger/ledger.js';
import { Metrics } from '../../src/metrics/metrics.js';
import { createLogger } from '../../src/log/logger.js';
import { isRetriable } from '../../src/faults/classify.js';
import { TransientError } from '../../src/faults/errors.js';
import type { ShardInfo } from '../../src/stream/shard-tree.js';
import { checkInvariants } from '../../tools/oracle/invariants.js';
import type { SentRecord } from '../../tools/oracle/invariants.js';
import type { OutcomeLine } from '../../tools/oracle/outcome-log.js';
import type { ExpectedPolicy } from '../../tools/oracle/expected-state.js';
import { MemoryDeadLetters, MemoryLedger } from '../support/fakes.js';
import { Scheduler, withVirtualTime } from './scheduler.js';
import type { Proc } from './scheduler.js';
import { SIM_ACCOUNT, SimIam } from './sim-iam.js';

const config = loadConfig({});
const CLAIM_TTL_MS = 10_000;
const LATE_WRITE_MS = 3_000;
const LEASE_MS = 8_000;
const BATCH = 4;
const POLICIES = ['alpha', 'beta', 'gamma'];
const PREFIX = config.managedPathPrefix;
const HALF = 2n ** 127n;
const SHARDS: ShardInfo[] = [
  { shardId: 'shardId-000000000000', parents: [], closed: false, startingHashKey: 0n, endingHashKey: HALF - 1n },
  { shardId: 'shardId-000000000001', parents: [], closed: false, startingHashKey: HALF, endingHashKey: 2n ** 128n - 1n },
];
/** Past this many steps a seed that has not finished is a violation (the stream stopped moving). */
const MAX_STEPS = 60_000;
/** Attempts of one ledger request, as the SDK's standard retry mode makes them. */
const SDK_ATTEMPTS = 3;

/**
 * How often the world's faults strike. `zombies` makes the ingredients of a
 * zombie's late write common (pauses past the claim's time to live, ledger
 * answers lost and sent again, requests landing late, IAM answers lost), for
 * budgets aimed at the takeover protocol; `default` is the budget of npm test.
 */
export type SimProfile = 'default' | 'zombies';

const PROFILES: Record<SimProfile, { pause: number; ledgerLostAnswer: number; iamLostAnswer: number; lateLanding: number }> = {
  default: { pause: 0.004, ledgerLostAnswer: 0.03, iamLostAnswer: 0.05, lateLanding: 0.05 },
  zombies: { pause: 0.02, ledgerLostAnswer: 0.15, iamLostAnswer: 0.15, lateLanding: 0.3 },
};

export interface SimOptions {
  seed: number;
  workers?: number;
  trace?: boolean;
  profile?: SimProfile;
}

export interface SimResult {
  seed: number;
  violations: string[];
  trace: string[];
  steps: number;
  events: number;
  faults: Record<string, number>;
}

interface Lease {
  owner: string | undefined;
  expiresAt: number;
  /** Records before this index are checkpointed. */
  checkpoint: number;
}

interface Worker {
  proc: Proc;
  ledger: Ledger;
  cache: DedupCache;
  applier: ReturnType<typeof reconcilerApplier>;
  generation: number;
}

export async function runSeed(options: SimOptions): Promise<SimResult> {
  const profile = PROFILES[options.profile ?? 'default'];
  const scheduler = new Scheduler(options.seed, options.trace ?? false, profile.lateLanding);
  return withVirtualTime(scheduler, () => new World(scheduler, options.workers ?? 1 + scheduler.int(3), profile).run());
}

class World {
  private readonly memory: MemoryLedger;
  private readonly iam: SimIam;
  private readonly deadLetters = new MemoryDeadLetters();
  private readonly metrics = new Metrics();
  private readonly logger = createLogger('silent');
  private readonly sent: SentRecord[] = [];
  private readonly records = new Map<string, StreamRecord[]>();
  private readonly leases = new Map<string, Lease>();
  private outcomes: OutcomeLine[] = [];
  private readonly violations: string[] = [];
  private readonly faults: Record<string, number> = {};
  private readonly workers: Worker[] = [];
  private ledgerLostAnswer: number;
  private done = false;

  constructor(
    private readonly scheduler: Scheduler,
    private readonly workerCount: number,
    private readonly profile: (typeof PROFILES)[SimProfile],
  ) {
    this.memory = new MemoryLedger(CLAIM_TTL_MS, () => scheduler.now, LATE_WRITE_MS);
    const calm = scheduler.chance(0.15);
    this.iam = new SimIam(scheduler, { throttle: calm ? 0 : 0.05, lostAnswer: calm ? 0 : profile.iamLostAnswer, lagMs: scheduler.chance(0.2) ? 0 : 2_000 });
    this.ledgerLostAnswer = calm ? 0 : profile.ledgerLostAnswer;
    this.produce();
  }

  async run(): Promise<SimResult> {
    for (const { record, put } of this.sent) this.scheduler.log(`stream ${put.shardId.slice(-1)}#${put.sequenceNumber} ${record.data.toString()}`);
    for (let i = 0; i < this.workerCount; i++) this.workers.push(this.start(i, 0));
    for (const worker of [...this.workers]) void this.workerLoop(worker);
    await this.until(() => this.finished(), true);
    this.iam.settle();
    const firstPass = await this.check('first pass');
    // A replay from the start: dropped as duplicates, or re-applied under a new epoch.
    if (this.violations.length === 0 && this.scheduler.chance(0.3)) {
      const reapply = this.scheduler.chance(0.5);
      this.count(reapply ? 'replay-reapply' : 'replay');
      this.scheduler.log(`operator: replay${reapply ? ' --reapply' : ''}`);
      if (reapply) await this.memory.advanceEpoch();
      for (const lease of this.leases.values()) Object.assign(lease, { owner: undefined, expiresAt: 0, checkpoint: 0 });
      const live = this.outcomes;
      this.outcomes = [];
      await this.until(() => this.finished(), false);
      this.iam.settle();
      if (!reapply) this.checkReplayVerdicts(live);
      // Re-applied events meet what the first pass left in IAM (the replay's epoch forgets eventIds
      // and revisions); a plain replay's events are duplicates, so IAM keeps the first fold.
      await this.check('replay', reapply ? firstPass : undefined);
    }
    this.done = true;
    return { seed: this.scheduler.seed, violations: this.violations, trace: this.scheduler.trace, steps: this.scheduler.steps, events: this.sent.length, faults: this.faults };
  }

  /**
   * A plain replay gives each record the verdict it had live, or `duplicate`
   * (docs/operations.md, "replay"): whichever layer meets an event (cache,
   * batch, ledger) judges it alike, so a replay opens no new dead letter.
   */
  private checkReplayVerdicts(live: OutcomeLine[]): void {
    const verdict = (line: OutcomeLine) => `${line.outcome}${line.reason ? `:${line.reason}` : ''}`;
    const key = (line: OutcomeLine) => `${line.shard}#${line.sequenceNumber}`;
    const before = new Map<string, Set<string>>();
    for (const line of live) before.set(key(line), (before.get(key(line)) ?? new Set()).add(verdict(line)));
    for (const line of this.outcomes) {
      const was = before.get(key(line));
      if (line.outcome !== 'duplicate' && was !== undefined && !was.has(verdict(line))) this.violations.push(`replay: ${key(line)} was ${[...was].join(' or ')} live, ${verdict(line)} replayed`);
    }
  }

  private finished(): boolean {
    return (
      SHARDS.every((shard) => this.leases.get(shard.shardId)!.checkpoint >= this.records.get(shard.shardId)!.length) && this.workers.every((worker) => worker.proc.killed || !this.busy.has(worker))
    );
  }

  private readonly busy = new Set<Worker>();

  /** Runs the world until `stop`; with faults, kills and pauses are drawn along the way. */
  private async until(stop: () => boolean, faults: boolean): Promise<void> {
    const limit = this.scheduler.steps + MAX_STEPS;
    while (!stop()) {
      if (this.scheduler.steps > limit) {
        this.violations.push(`no progress after ${MAX_STEPS} steps: checkpoints ${SHARDS.map((s) => `${this.leases.get(s.shardId)!.checkpoint}/${this.records.get(s.shardId)!.length}`).join(' ')}`);
        return;
      }
      if (faults && this.scheduler.steps < 4_000) this.injectFaults();
      if (!(await this.scheduler.step())) {
        this.violations.push('deadlock: nothing left to run, the stream not finished');
        return;
      }
    }
  }

  private injectFaults(): void {
    const { scheduler } = this;
    const live = this.workers.filter((worker) => !worker.proc.killed);
    if (live.length === 0) return;
    const worker = live[scheduler.int(live.length)]!;
    // Two separate draws: a kill, else a pause (each call of chance() draws anew).
    const kill = scheduler.chance(0.004);
    if (kill) {
      // Killed at whatever await it stands; restarted as a new process a little later.
      worker.proc.killed = true;
      this.count('kill');
      scheduler.log(`${worker.proc.id} killed`);
      const index = this.workers.indexOf(worker);
      const restartIn = 500 + scheduler.int(5_000);
      scheduler.setTimer(
        () => {
          if (this.done) return;
          const next = this.start(index, worker.generation + 1);
          this.workers[index] = next;
          void this.workerLoop(next);
        },
        restartIn,
        undefined,
      );
    } else if (scheduler.chance(this.profile.pause) && worker.proc.pausedUntil <= scheduler.now) {
      // Frozen (GC, SIGSTOP), often past the claim's and the lease's time to live.
      const ms = 1_000 + scheduler.int(3 * CLAIM_TTL_MS);
      worker.proc.pausedUntil = scheduler.now + ms;
      this.count('pause');
      scheduler.log(`${worker.proc.id} paused ${ms}ms`);
    }
  }

  private count(fault: string): void {
    this.faults[fault] = (this.faults[fault] ?? 0) + 1;
  }

  private start(index: number, generation: number): Worker {
    const proc: Proc = { id: `w${index}.${generation}`, killed: false, pausedUntil: 0 };
    const reconciler = new IamReconciler({
      iam: this.iam.client(proc) as never,
      sts: this.iam.client(proc) as never,
      config,
      metrics: this.metrics,
      logger: this.logger,
      now: () => this.scheduler.now,
      sleep: (ms) => this.scheduler.sleep(proc, ms),
    });
    return { proc, ledger: this.ledgerFor(proc), cache: new DedupCache(1_000), applier: reconcilerApplier(reconciler), generation };
  }

  /** The ledger as one process reaches it: each call sent, landing and answered at the scheduler's points; an answer may be lost after the effect. */
  private ledgerFor(proc: Proc): Ledger {
    const memory = this.memory;
    const scheduler = this.scheduler;
    const world = this;
    return new Proxy(memory, {
      get(target, key) {
        const value = Reflect.get(target, key, target);
        if (typeof value !== 'function') return value;
        return async (...args: unknown[]) => {
          // The SDK sends a request again when its answer is lost (a connection reset): the same
          // request, so the ledger must recognise its own earlier effect (a claim's, a completion's).
          for (let attempt = 1; ; attempt++) {
            await scheduler.point(proc, `send ledger.${String(key)}`);
            await scheduler.landing(`land ledger.${String(key)}`);
            let result: unknown;
            let failure: unknown;
            try {
              result = await value.apply(target, args);
            } catch (error) {
              failure = error;
            }
            const mutating = key !== 'get' && key !== 'archivedEvents' && key !== 'currentEpoch';
            if (mutating && scheduler.chance(world.ledgerLostAnswer)) {
              scheduler.log(`${proc.id} ledger answer lost: ${String(key)}`);
              await scheduler.point(proc, `lost ledger.${String(key)}`);
              if (attempt < SDK_ATTEMPTS && scheduler.chance(0.5)) continue;
              throw new TransientError('ECONNRESET', `the connection dropped: the answer to ${String(key)} was lost`);
            }
            await scheduler.point(proc, `answer ledger.${String(key)}`);
            if (failure) throw failure;
            return result;
          }
        };
      },
    }) as Ledger;
  }

  /** A worker: takes a free or expired shard lease, processes a batch, checkpoints if it still holds the lease. */
  private async workerLoop(worker: Worker): Promise<void> {
    const { scheduler } = this;
    while (!this.done) {
      await scheduler.sleep(worker.proc, 100 + scheduler.int(400));
      const shard = this.pickShard(worker);
      if (!shard) continue;
      this.busy.add(worker);
      try {
        await this.processBatch(worker, shard);
      } finally {
        this.busy.delete(worker);
      }
    }
  }

  private pickShard(worker: Worker): ShardInfo | undefined {
    const { scheduler } = this;
    const mine = SHARDS.filter((shard) => this.leases.get(shard.shardId)!.owner === worker.proc.id && this.leases.get(shard.shardId)!.expiresAt > scheduler.now);
    const free = SHARDS.filter((shard) => {
      const lease = this.leases.get(shard.shardId)!;
      return lease.owner === undefined || lease.expiresAt <= scheduler.now;
    });
    const choices = [...mine, ...free];
    const shard = choices[scheduler.int(choices.length)];
    if (!shard) return undefined;
    const lease = this.leases.get(shard.shardId)!;
    if (lease.owner !== worker.proc.id) scheduler.log(`${worker.proc.id} takes the lease of ${shard.shardId}${lease.owner ? ` from ${lease.owner}` : ''}`);
    Object.assign(lease, { owner: worker.proc.id, expiresAt: scheduler.now + LEASE_MS });
    return shard;
  }

  private async processBatch(worker: Worker, shard: ShardInfo): Promise<void> {
    const { scheduler } = this;
    const lease = this.leases.get(shard.shardId)!;
    const from = lease.checkpoint;
    const all = this.records.get(shard.shardId)!;
    if (from >= all.length) return;
    const batch = all.slice(from, from + 1 + scheduler.int(BATCH));
    const epoch = await worker.ledger.currentEpoch([shard.shardId]);
    const context: PolicyBatchContext = {
      ledger: worker.ledger,
      cache: worker.cache,
      applier: worker.applier,
      deadLetters: this.deadLetters,
      metrics: this.metrics,
      owner: `${worker.proc.id}/${shard.shardId}`,
      epoch,
      recentEventIds: 3,
      lineage: [],
      claimTtlMs: CLAIM_TTL_MS,
      lateWriteMs: LATE_WRITE_MS,
    };
    const byPolicy = new Map<string, ValidRecord[]>();
    const settlements: Settlement[] = [];
    for (const record of batch) {
      const decoded = decodeRecord(record.data, record.partitionKey, { managedPathPrefix: PREFIX, hashKeyRange: shard });
      if (!decoded.ok) {
        settlements.push({ record, outcome: 'rejected', reason: decoded.reason });
        continue;
      }
      const valid = { record, event: decoded.event, payloadHash: payloadHash(decoded.event) };
      byPolicy.set(decoded.event.policyName, [...(byPolicy.get(decoded.event.policyName) ?? []), valid]);
    }
    const settled = await Promise.all([...byPolicy].map(([policy, items]) => this.settlePolicy(worker, context, policy, items)));
    settlements.push(...settled.flat());
    for (const settlement of settlements) {
      const { record } = settlement;
      scheduler.log(`${worker.proc.id} outcome ${record.shardId.slice(-1)}#${record.sequenceNumber} ${settlement.outcome}${settlement.reason ? ` (${settlement.reason})` : ''}`);
      this.outcomes.push({
        shard: record.shardId,
        sequenceNumber: record.sequenceNumber,
        subSequenceNumber: 0,
        partitionKey: record.partitionKey,
        outcome: settlement.outcome,
        time: scheduler.now,
        ...(settlement.eventId ? { eventId: settlement.eventId } : {}),
        ...(settlement.reason ? { reason: settlement.reason } : {}),
      });
    }
    // The checkpoint holds only while the lease does (the KCL refuses a checkpoint on a lost lease).
    await scheduler.point(worker.proc, 'checkpoint');
    if (lease.owner === worker.proc.id && lease.expiresAt > scheduler.now && lease.checkpoint === from) {
      lease.checkpoint = from + batch.length;
      lease.expiresAt = scheduler.now + LEASE_MS;
      scheduler.log(`${worker.proc.id} checkpoints ${shard.shardId} at ${lease.checkpoint}`);
    } else {
      scheduler.log(`${worker.proc.id} lost the lease of ${shard.shardId}: no checkpoint`);
    }
  }

  /** As the shard pipeline does: the policy's batch until it settles, then the re-verification it owes. */
  private async settlePolicy(worker: Worker, context: PolicyBatchContext, policy: string, items: ValidRecord[]): Promise<Settlement[]> {
    const result = await this.retried(worker, () => settlePolicyBatch(context, items));
    if (result.verificationOwed) await this.retried(worker, () => verifyPolicy(context, policy));
    return result.settlements;
  }

  private async retried<T>(worker: Worker, step: () => Promise<T>): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await step();
      } catch (error) {
        if (!isRetriable(error)) {
          this.violations.push(`a step failed with an error that is not retriable: ${(error as Error).stack ?? String(error)}`);
          throw error;
        }
        this.scheduler.log(`${worker.proc.id} transient: ${(error as Error).message.slice(0, 160)}`);
        await this.scheduler.sleep(worker.proc, Math.round(Math.min(2_000, 100 * 2 ** Math.min(attempt, 5)) * (0.5 + this.scheduler.random() / 2)));
      }
    }
  }

  private async check(phase: string, reappliedOver?: Map<string, ExpectedPolicy>): Promise<Map<string, ExpectedPolicy>> {
    const report = await checkInvariants({
      ...(reappliedOver ? { reappliedOver } : {}),
      sent: this.sent,
      shards: SHARDS,
      outcomes: this.outcomes,
      iam: this.iam.direct() as never,
      accountId: SIM_ACCOUNT,
      managedPathPrefix: PREFIX,
      appName: config.appName,
    });
    this.violations.push(...report.violations.map((violation) => `${phase}: ${violation}`));
    return report.expected;
  }

  /** The stream: events of three policies, with producer retries, revisions (some out of order), paths named and documents repeated. */
  private produce(): void {
    const { scheduler } = this;
    for (const shard of SHARDS) {
      this.records.set(shard.shardId, []);
      this.leases.set(shard.shardId, { owner: undefined, expiresAt: 0, checkpoint: 0 });
    }
    const count = 4 + scheduler.int(14);
    const revisions = new Map<string, number>();
    const previous: { partitionKey: string; data: Buffer }[] = [];
    for (let i = 0; i < count; i++) {
      let wire: { partitionKey: string; data: Buffer };
      if (previous.length > 0 && scheduler.chance(0.1))
        wire = previous[scheduler.int(previous.length)]!; // a producer retry
      else if (previous.length > 0 && scheduler.chance(0.03)) {
        // A producer that reuses an eventId for another payload (event-id-conflict once the first is known).
        const reused = previous[scheduler.int(previous.length)]!;
        const event = JSON.parse(reused.data.toString()) as Record<string, unknown>;
        event.type = 'policy.upserted';
        event.document = { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: 's3:PutObject', Resource: `arn:aws:s3:::reused-${i}/*` }] };
        wire = { partitionKey: reused.partitionKey, data: Buffer.from(JSON.stringify(event)) };
      } else {
        const name = POLICIES[scheduler.int(POLICIES.length)]!;
        const event: Record<string, unknown> = {
          specVersion: '1',
          eventId: `e${i}`,
          type: scheduler.chance(0.25) ? 'policy.deleted' : 'policy.upserted',
          policy: { name, ...(scheduler.chance(0.1) ? { path: `${PREFIX}other/` } : {}) },
        };
        if (scheduler.chance(0.4)) {
          const revision = (revisions.get(name) ?? 0) + (scheduler.chance(0.2) ? -1 : 1);
          revisions.set(name, Math.max(revisions.get(name) ?? 0, revision));
          event.revision = Math.max(0, revision);
        }
        if (event.type === 'policy.upserted') {
          event.document = { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: 's3:GetObject', Resource: `arn:aws:s3:::bucket-${scheduler.int(3)}/*` }] };
          event.tags = scheduler.chance(0.5) ? { team: scheduler.chance(0.5) ? 'a' : 'b' } : {};
        }
        wire = { partitionKey: name, data: Buffer.from(JSON.stringify(event)) };
        previous.push(wire);
      }
      const home = SHARDS.find((s) => s.startingHashKey <= hashKeyOf(wire.partitionKey) && hashKeyOf(wire.partitionKey) <= s.endingHashKey)!;
      // Now and then an explicit hash key routes a record onto a shard that does not own its partition key.
      const shard = scheduler.chance(0.04) ? SHARDS.find((s) => s !== home)! : home;
      const list = this.records.get(shard.shardId)!;
      const sequenceNumber = String(49_000_000 + i);
      list.push({ shardId: shard.shardId, sequenceNumber, subSequenceNumber: 0, partitionKey: wire.partitionKey, data: wire.data, index: list.length, receivedAt: 0 });
      this.sent.push({ record: wire, put: { partitionKey: wire.partitionKey, shardId: shard.shardId, sequenceNumber } });
    }
  }
}
