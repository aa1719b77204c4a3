// The parts a record-processor child builds once and shares across the shards
// it is given: the ledger, the duplicate cache, the IAM reconciler and the
// dead-letter store. One builder, so the child, the benchmarks and the
// memory measurement wire the same thing.
import type { AwsClients, ClientOptions } from '../aws/clients.js';
import type { Config } from '../config/config.js';
import { DynamoDbDeadLetterStore } from '../deadletter/dead-letter-store.js';
import { IamReconciler } from '../iam/reconciler.js';
import { DedupCache } from '../ledger/dedup-cache.js';
import { ledgerFromConfig } from '../ledger/dynamodb-ledger.js';
import type { Logger } from '../log/logger.js';
import type { Metrics } from '../metrics/metrics.js';
import { listShards } from '../stream/shard-tree.js';
import { DynamoDbParkStore } from '../park/park-store.js';
import { planningApplier } from '../shadow/planning-applier.js';
import { roleSessionName } from '../aws/clients.js';
import { documentGuardFromConfig } from '../policy/document-guard.js';
import { reconcilerApplier } from './applier.js';
import { AccountTargets } from './account-targets.js';
import { AccountOutages, outagesRememberedMs } from '../park/parking.js';
import type { ProcessParts } from './start-shard.js';

/** `clientOptions`: what the target accounts' clients are built with, as the process's own were (observers, an explicit environment). */
export function buildProcessParts(config: Config, clients: AwsClients, logger: Logger, metrics: Metrics, clientOptions: ClientOptions = {}): ProcessParts {
  // Built now so that an IPS_DENIED_ACTIONS pattern naming no action stops the process at start, not at its first shard.
  documentGuardFromConfig(config);
  const live = config.mode === 'live';
  // A shadow's step plans against IAM (reads only), in every account, through the same roles.
  let targets: AccountTargets | undefined;
  const applier = live
    ? reconcilerApplier(new IamReconciler({ iam: clients.iam, sts: clients.sts, config, metrics, logger }))
    : planningApplier(
        {
          iam: clients.iam,
          managedPathPrefix: config.managedPathPrefix,
          caller: () => targets!.ownIdentity(),
          iamOf: (account, partition) => targets!.clientsOf(account, partition, roleSessionName(config.workerId, 'shadow')).iam,
        },
        { managedPathPrefix: config.managedPathPrefix, appName: config.appName },
      );
  targets = new AccountTargets({ config, logger, metrics, sts: clients.sts, own: applier, clientOptions });
  return {
    config,
    logger,
    metrics,
    ledger: ledgerFromConfig(clients.dynamodb, config, {}, { metrics, logger }),
    cache: new DedupCache(config.dedupCacheSize),
    applier,
    accounts: targets,
    routesByAccount: live,
    deadLetters: new DynamoDbDeadLetterStore(clients.dynamodb, config.deadLetterTable, Date.now, metrics),
    parks: new DynamoDbParkStore(clients.dynamodb, config.ledgerTable),
    rateBoundLately: (account) => targets.rateBoundLately(account),
    allowedRate: (account) => targets.allowedRate(account),
    outages: new AccountOutages(Date.now, outagesRememberedMs(config.redriveEveryMs)),
    listShards: () => listShards(clients.kinesis, config.streamName),
  };
}
