// How long the other worker should need to take a frozen (or killed) worker's
// shards over, derived from what the run configures, and what it measured.
//
// A takeover is done when the live worker holds every lease and has given an
// outcome to a record put during the pause on each shard it took over. Three
// clocks start at the freeze and run side by side:
//   - lease take: the KCL's lease taker runs every (failoverTimeMillis + 25 ms)
//     x 2 (DynamoDBLeaseCoordinator: (leaseDuration + epsilon) x 2); a lease is
//     expired once its counter stayed unchanged for failoverTimeMillis since the
//     taker last saw it change: one scan to see the frozen worker's last
//     renewal, the next to take it, so at most two taker intervals;
//   - claim expiry: the frozen worker's ledger claims were renewed at most just
//     before the freeze, so they are free within the claim TTL;
//   - late writes: a policy taken over is re-verified once the old claim's
//     writes can no longer land (its expiry + IPS_LATE_WRITE_MS), and the
//     policy's batch, so the shard's next batch, waits for that verification.
// On top of the latest of these: one retry backoff (the waits are polled with
// backoff) and one IAM step that meets the slowest answer the run injects.
import { readFileSync } from 'node:fs';
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { Config } from '../../src/config/config.js';
import type { DynamoDbLedger } from '../../src/ledger/dynamodb-ledger.js';
import type { SentPosition } from '../../tools/oracle/outcome-log.js';
import { readLogLines, readOutcomes, outcomeRecordId, sentRecordId } from '../../tools/oracle/outcome-log.js';
import type { TestDaemon } from '../../tools/harness/daemon.js';
import { setTimeout as sleep } from 'node:timers/promises';
import { leasesByOwner } from './workers.js';
import type { HeldClaim } from './workers.js';

/** KCL's lease epsilon (LeaseManagementConfig.epsilonMillis, default). */
const LEASE_EPSILON_MS = 25;

export interface TakeoverBound {
  /** failoverTimeMillis of the daemon's rendered properties file. */
  failoverMs: number;
  leaseTakeMs: number;
  claimsFreeMs: number;
  lateWritesPastMs: number;
  /** The retry backoff cap and the slowest injected IAM answer, added once. */
  slackMs: number;
  boundMs: number;
}

/** The configured failover of a running daemon, as its rendered properties file says. */
export function failoverOf(daemon: TestDaemon): number {
  const match = /^failoverTimeMillis\s*=\s*(\d+)\s*$/m.exec(readFileSync(daemon.propertiesPath, 'utf8'));
  if (!match) throw new Error(`${daemon.propertiesPath} sets no failoverTimeMillis`);
  return Number(match[1]);
}

/** The takeover bound for a worker with `config` under `daemon`, when IAM answers may be held up to `slowestIamMs`. */
export function takeoverBound(daemon: TestDaemon, config: Pick<Config, 'claimTtlMs' | 'lateWriteMs' | 'retryBackoffCapMs'>, slowestIamMs: number): TakeoverBound {
  const failoverMs = failoverOf(daemon);
  const leaseTakeMs = 2 * 2 * (failoverMs + LEASE_EPSILON_MS);
  const claimsFreeMs = config.claimTtlMs;
  const lateWritesPastMs = claimsFreeMs + config.lateWriteMs;
  const slackMs = config.retryBackoffCapMs + slowestIamMs;
  return { failoverMs, leaseTakeMs, claimsFreeMs, lateWritesPastMs, slackMs, boundMs: Math.max(leaseTakeMs, lateWritesPastMs) + slackMs };
}

export function describeBound(bound: TakeoverBound): string {
  const s = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
  return `bound ${s(bound.boundMs)} = max(lease take ${s(bound.leaseTakeMs)} [failover ${s(bound.failoverMs)}], claims free ${s(bound.claimsFreeMs)} + late writes = ${s(bound.lateWritesPastMs)}) + retry cap and slowest IAM answer ${s(bound.slackMs)}`;
}

export interface TakeoverWatch {
  dynamodb: DynamoDBClient;
  leaseTable: string;
  /** The live worker's KCL worker id and log. */
  otherId: string;
  otherLog: string;
  /** Shards the frozen worker held, and records put on the stream during the pause. */
  victimShards: Set<string>;
  wavePuts: SentPosition[];
  frozenAt: number;
  /** The pause lasts at least this long (past the claim TTL and the failover, so the frozen worker wakes as a zombie). */
  minimumMs: number;
  /** Past this, no takeover came at all: a liveness failure, not a slow takeover. */
  givingUpMs: number;
}

export interface ShardTakeover {
  handedMs?: number;
  initializedMs?: number;
  firstOutcomeMs?: number;
}

export interface Takeover {
  tookOver: boolean;
  /** Since the freeze: when the live worker first held every lease, and when the last victim shard gave its first outcome to a record of the pause. */
  leasesTakenMs?: number;
  takeoverMs?: number;
  /**
   * Per victim shard, since the freeze: the live worker's daemon handed the
   * shard to a new record processor (its InitializeMessage), the processor
   * started (its first log line), and its first outcome for a record of the pause.
   */
  shards: Map<string, ShardTakeover>;
}

/** Waits, polling the lease table and the live worker's log, until the takeover is done (or `givingUpMs` passed). */
export async function watchTakeover(watch: TakeoverWatch): Promise<Takeover> {
  const { frozenAt } = watch;
  const shards = new Map([...watch.victimShards].map((shard) => [shard, {} as ShardTakeover]));
  const expected = [...watch.victimShards].filter((shard) => watch.wavePuts.some((put) => put.shardId === shard));
  const byRecord = new Map(watch.wavePuts.map((put) => [sentRecordId(put), put.shardId]));
  let leasesTakenMs: number | undefined;
  while (Date.now() - frozenAt < watch.givingUpMs) {
    await sleep(500);
    if (leasesTakenMs === undefined) {
      const owners = await leasesByOwner(watch.dynamodb, watch.leaseTable);
      if ([...owners.keys()].every((owner) => owner === watch.otherId)) leasesTakenMs = Date.now() - frozenAt;
    }
    for (const line of readOutcomes(watch.otherLog)) {
      const shard = byRecord.get(outcomeRecordId(line));
      const seen = shard !== undefined && line.time >= frozenAt ? shards.get(shard) : undefined;
      if (!seen) continue;
      seen.firstOutcomeMs = Math.min(seen.firstOutcomeMs ?? Infinity, line.time - frozenAt);
    }
    const done = leasesTakenMs !== undefined && expected.every((shard) => shards.get(shard)!.firstOutcomeMs !== undefined);
    if (done && Date.now() - frozenAt >= watch.minimumMs) {
      for (const { shard, time } of initializeMessages(watch.otherLog)) {
        const seen = time >= frozenAt ? shards.get(shard) : undefined;
        if (seen && seen.handedMs === undefined) seen.handedMs = time - frozenAt;
      }
      // The processor's first line after the daemon handed it the shard (an earlier one belongs to an earlier lease).
      for (const line of readLogLines<{ shard?: string; time: number }>(watch.otherLog, '"msg":"initialize"')) {
        const seen = line.shard !== undefined ? shards.get(line.shard) : undefined;
        if (seen && seen.initializedMs === undefined && line.time >= frozenAt + (seen.handedMs ?? 0)) seen.initializedMs = line.time - frozenAt;
      }
      const takeoverMs = Math.max(leasesTakenMs!, ...expected.map((shard) => shards.get(shard)!.firstOutcomeMs!));
      return { tookOver: true, leasesTakenMs, takeoverMs, shards };
    }
  }
  return { tookOver: false, ...(leasesTakenMs !== undefined ? { leasesTakenMs } : {}), shards };
}

/**
 * When the daemon wrote each InitializeMessage to a new record processor, from
 * its own log lines (logback, the host's clock in UTC: `2026-12-02 19:35:04,803`).
 */
function initializeMessages(logFile: string): { shard: string; time: number }[] {
  const found: { shard: string; time: number }[] = [];
  const pattern = /^(\d{4}-\d\d-\d\d) (\d\d:\d\d:\d\d),(\d{3}) .*Writing InitializeMessage to child process for shard (\S+)/;
  for (const line of readFileSync(logFile, 'utf8').split('\n')) {
    const match = pattern.exec(line);
    if (match) found.push({ shard: match[4]!, time: Date.parse(`${match[1]}T${match[2]}.${match[3]}Z`) });
  }
  return found;
}

/**
 * Where a takeover's time went, from the live worker's log between the freeze
 * and the takeover: when each victim shard's processor started, and the waits
 * it retried on (a claim still held by the frozen worker; a re-verification
 * waiting for the late writes), with the last time each was seen; and the
 * frozen worker's claims' expiry and the re-verification bounds set on them.
 */
export async function whereTheTimeWent(options: { takeover: Takeover; otherLog: string; frozenAt: number; held: HeldClaim[]; ledger: Pick<DynamoDbLedger, 'get'> }): Promise<string> {
  const { takeover, frozenAt } = options;
  const until = frozenAt + (takeover.takeoverMs ?? Infinity);
  const s = (ms: number | undefined) => (ms === undefined ? '?' : `${(ms / 1000).toFixed(1)} s`);
  const waits = new Map<string, { count: number; lastMs: number }>();
  for (const line of readLogLines<{ shard?: string; reason?: string; time: number }>(options.otherLog, '"msg":"transient fault, retrying"')) {
    if (line.time < frozenAt || line.time > until) continue;
    if (line.shard !== undefined && !takeover.shards.has(line.shard)) continue;
    const reason = line.reason ?? 'unknown';
    const seen = waits.get(reason) ?? { count: 0, lastMs: 0 };
    waits.set(reason, { count: seen.count + 1, lastMs: Math.max(seen.lastMs, line.time - frozenAt) });
  }
  const claimsFree = options.held.length > 0 ? Math.max(...options.held.map((claim) => claim.expiresAt)) - frozenAt : undefined;
  const verifyAfter: number[] = [];
  for (const claim of options.held) {
    const entry = await options.ledger.get(claim.policy);
    if (entry?.verifyAfter !== undefined) verifyAfter.push(entry.verifyAfter - frozenAt);
  }
  const shards = [...takeover.shards].map(
    ([shard, seen]) => `${shard.replace('shardId-', '')}: handed to a new processor ${s(seen.handedMs)}, processor started ${s(seen.initializedMs)}, first outcome ${s(seen.firstOutcomeMs)}`,
  );
  const retried = [...waits].map(([reason, { count, lastMs }]) => `${reason} x${count} until ${s(lastMs)}`);
  return [
    `leases taken ${s(takeover.leasesTakenMs)}`,
    `frozen claims free ${s(claimsFree)}`,
    `late writes past ${verifyAfter.length > 0 ? s(Math.max(...verifyAfter)) : 'none set'}`,
    `shards ${shards.join('; ')}`,
    `waits ${retried.length > 0 ? retried.join(', ') : 'none'}`,
  ].join(' | ');
}
