// Applies parked records again once their account is back (docs/design.md,
// "Parking"). Each record processor runs one for its shard: it takes the
// parks whose records came from its shard or the shard's ancestors (a park
// left by a closed parent is its children's), so a park is redriven while
// any processor of its lineage runs. A round tries each such park once, in
// policy order; an account whose park fails for IAM's sake is not tried
// again in that round (one probe per account, not one per policy). The
// records are settled as the pipeline settles a batch, with ledger claims,
// so a record parked and also applied elsewhere (a replay, a zombie) takes
// effect once: the ledger answers the second `duplicate`.
import { setTimeout as sleep } from 'node:timers/promises';
import { isRetriable } from '../faults/classify.js';
import type { Logger } from '../log/logger.js';
import { METRIC } from '../metrics/metrics.js';
import type { Metrics } from '../metrics/metrics.js';
import type { Settlement } from '../pipeline/types.js';
import type { ParkStore, ParkSummary, ParkedRecord } from './park-store.js';

/** The `account` label of the worker's own account's parks (as `ips status` names it). */
const OWN = 'own';

export interface RedriverOptions {
  store: ParkStore;
  /** Settles a policy's parked records, its parked re-verification first (ShardPipeline.redrive); says whether one is still owed. */
  redrive(policy: string, records: ParkedRecord[], verify: boolean): Promise<{ settlements: Settlement[]; verificationOwed: boolean }>;
  /** The shard and its ancestors: parks holding records of these are this redriver's. */
  shards: string[];
  everyMs: number;
  metrics: Metrics;
  logger: Logger;
}

export interface RedriveRound {
  /** Records applied (settled) this round. */
  redriven: number;
  /** Records still parked in this redriver's parks, by account (`own` for the worker's own). */
  parked: Map<string, number>;
}

/**
 * Applies one park, its parked re-verification first and then its records
 * (ShardPipeline.redrive), and releases what that settled; a re-verification
 * the records' step still owes stays parked. A transient fault goes to the
 * caller with the park as it was.
 */
export async function redrivePark(
  store: ParkStore,
  redrive: RedriverOptions['redrive'],
  park: ParkSummary,
): Promise<{ records: ParkedRecord[]; settlements: Settlement[]; verificationOwed: boolean }> {
  const records = await store.records(park.policy);
  const { settlements, verificationOwed } = records.length > 0 || park.verify ? await redrive(park.policy, records, park.verify) : { settlements: [], verificationOwed: false };
  await store.release(
    park.policy,
    records.map((record) => record.id),
    verificationOwed ? 'owed' : park.verify ? 'answered' : undefined,
  );
  return { records, settlements, verificationOwed };
}

export class Redriver {
  /** Accounts this redriver reported parked records for: a drained one is reported 0, not left at its last count. */
  private readonly reported = new Set<string>();

  constructor(private readonly options: RedriverOptions) {}

  /** Rounds every `everyMs` until `signal` aborts. A failed round is logged and the next one runs. */
  async run(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      try {
        await sleep(this.options.everyMs, undefined, { signal });
      } catch {
        return; // stopped
      }
      try {
        await this.round();
      } catch (error) {
        this.options.logger.warn({ err: error }, 'redrive round failed; the next one tries again');
      }
    }
  }

  async round(): Promise<RedriveRound> {
    const { store, logger } = this.options;
    const unavailable = new Set<string>();
    const parked = new Map<string, number>();
    let redriven = 0;
    for (const policy of [...(await store.parkedPolicies())].sort()) {
      const park = await store.summary(policy);
      if (!park?.shards.some((shard) => this.options.shards.includes(shard))) continue;
      const account = park.account ?? OWN;
      if (unavailable.has(account)) {
        parked.set(account, (parked.get(account) ?? 0) + park.records);
        continue;
      }
      try {
        const { records } = await redrivePark(store, this.options.redrive, park);
        redriven += records.length;
        if (records.length > 0) logger.info({ policy, account: park.account, records: records.length, parkedForMs: Date.now() - park.since }, 'parked records applied');
      } catch (error) {
        if (!isRetriable(error)) throw error;
        unavailable.add(account);
        parked.set(account, (parked.get(account) ?? 0) + park.records);
        logger.info(
          { policy, account: park.account, records: park.records, verification: park.verify, reason: (error as { reason?: string }).reason, err: (error as Error).message },
          'parked records wait: the account is still unavailable',
        );
      }
    }
    this.report(parked);
    return { redriven, parked };
  }

  private report(parked: Map<string, number>): void {
    for (const name of new Set([...this.reported, ...parked.keys()])) {
      const count = parked.get(name) ?? 0;
      this.options.metrics.gauge(METRIC.parkedRecords, count, { account: name });
      this.reported.add(name);
    }
  }
}
