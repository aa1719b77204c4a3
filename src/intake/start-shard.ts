// Starts one shard's pipeline in the record-processor child: reads the
// shard's place in the stream (its lineage and its hash key range) and the
// ledger epoch, names the claim owner, and builds the pipeline through the
// composition root (pipeline/create.ts). The claim owner names the worker,
// the shard and this process, so a claim left by a crashed child is
// recognised as someone else's once it expires.
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { createShardPipeline } from '../pipeline/create.js';
import type { PipelineParts } from '../pipeline/create.js';
import type { ShardPipeline } from '../pipeline/shard-pipeline.js';
import type { Settlement } from '../pipeline/types.js';
import { retryUntilSettled } from '../faults/retry.js';
import { settle } from '../faults/retry-policies.js';
import { TransientError } from '../faults/errors.js';
import { placeOf } from '../stream/shard-tree.js';
import type { ShardInfo, ShardPlace } from '../stream/shard-tree.js';
import type { AccountTargets } from './account-targets.js';
import { Redriver } from '../park/redriver.js';

export interface ProcessParts extends PipelineParts {
  /**
   * The stream's shards (stream/shard-tree.ts): a shard's ancestors order a
   * policy's records in the ledger, and its hash key range says which records
   * are its to apply.
   */
  listShards(): Promise<ShardInfo[]>;
  /**
   * The accounts events may name and the IAM step for each (account-targets.ts).
   * Absent: every event acts through `applier`, and none is refused for its account.
   */
  accounts?: AccountTargets;
  /** Whether each event's IAM step goes through its account's reconciler (accounts.applierFor); false: `applier` serves every account (a shadow's planning step). Default true. */
  routesByAccount?: boolean;
}

export function claimOwner(shardId: string): string {
  return `${hostname()}/${process.pid}/${shardId}/${randomUUID().slice(0, 8)}`;
}

/**
 * Reads what a shard's pipeline needs to know (lineage, hash key range,
 * epoch), retrying until it can, and builds it. A shard the listing does not
 * show yet is waited for: without its range no record could be told to be
 * its own.
 */
export async function startShardPipeline(parts: ProcessParts, shardId: string, onSettled: (settlement: Settlement) => void, signal: AbortSignal): Promise<ShardPipeline> {
  const { config, logger, metrics } = parts;
  const log = logger.child({ shard: shardId });
  const retry = { ...settle(config), logger: log, metrics, signal };
  const { lineage, hashKeyRange } = await retryUntilSettled(() => readPlace(parts, shardId), { ...retry, what: { step: 'read-shard' } });
  const epoch = await retryUntilSettled(() => parts.ledger.currentEpoch([shardId, ...lineage]), { ...retry, what: { step: 'read-epoch' } });
  const owner = claimOwner(shardId);
  // Which accounts events may name: the worker's own (read once from STS) and the configured targets.
  const accounts = parts.accounts;
  const own = accounts ? await retryUntilSettled(() => accounts.ownIdentity(), { ...retry, what: { step: 'read-own-account' } }) : undefined;
  log.info(
    {
      epoch,
      owner,
      lineage,
      hashKeyRange: { starting: String(hashKeyRange.startingHashKey), ending: String(hashKeyRange.endingHashKey) },
      ...(own ? { account: own.account, targetAccounts: parts.config.targetAccounts } : {}),
    },
    'shard pipeline ready',
  );
  // The target accounts' roles are assumed now, not by the first batch's records (they wait for the same call if it is still out).
  if (accounts && parts.routesByAccount !== false) void accounts.prepare(shardId).catch(() => undefined);
  const shardParts = accounts && parts.routesByAccount !== false ? { ...parts, applier: accounts.applierFor(shardId) } : parts;
  const pipeline = createShardPipeline(shardParts, { shardId, lineage, hashKeyRange, epoch, owner, ...(accounts && own ? { accounts: accounts.gate(own.account) } : {}) }, { signal, onSettled });
  // The parks of this shard's policies (and of its closed ancestors') are tried again while the shard is this process's.
  if (parts.parks && config.parkAfterMs > 0 && config.mode === 'live') {
    const redriver = new Redriver({
      store: parts.parks,
      redrive: (policy, records, verify) => pipeline.redrive(policy, records, verify),
      shards: [shardId, ...lineage],
      everyMs: config.redriveEveryMs,
      metrics,
      logger: log,
    });
    void redriver.run(signal);
  }
  return pipeline;
}

async function readPlace(parts: ProcessParts, shardId: string): Promise<ShardPlace> {
  const place = placeOf(await parts.listShards(), shardId);
  if (!place) throw new TransientError('shard-not-listed', `${shardId} is not in the stream's shard listing yet`);
  return place;
}
