// Memory of a record-processor child with a full duplicate cache.
//
//   node --optimize-for-size --expose-gc bench/cache-rss.mjs [entries]
//
// (after npm run build; prints one JSON object; npm run bench passes the
// node flags of executableName in properties/local.properties)
//
// Plain JavaScript against dist/, started with plain node like the child the
// daemon starts (no tsx loader, whose own memory would be counted). It loads
// the child's whole module graph (src/intake/main.ts imports these), builds
// its AWS clients, fills a DedupCache of IPS_DEDUP_CACHE_SIZE (default
// 100,000) to capacity in both of its maps (policies and eventIds) with
// realistically sized keys, then runs 1,000-record batches through a
// ShardPipeline using that cache (in-memory ledger and IAM: no emulator is
// needed, and only memory is measured here). Reports RSS at each step and the
// peak (VmHWM).
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';

const root = new URL('../', import.meta.url);
const load = (path) => import(new URL(path, root).href);

const rssOf = () => {
  globalThis.gc?.();
  return process.memoryUsage().rss;
};
const peak = () => Number(/^VmHWM:\s+(\d+) kB/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1] ?? 0) * 1024;

const steps = { start: rssOf() };

await import('aws-kcl');
const { createAwsClients } = await load('dist/aws/clients.js');
const { loadConfig } = await load('dist/config/config.js');
const { buildProcessParts } = await load('dist/intake/process-parts.js');
const { PolicyRecordProcessor } = await load('dist/intake/record-processor.js');
await load('dist/intake/start-shard.js');
const { createLogger } = await load('dist/log/logger.js');
const { Metrics } = await load('dist/metrics/metrics.js');
const { createShardPipeline } = await load('dist/pipeline/create.js');
const { payloadHash } = await load('dist/contract/payload-hash.js');

const entries = Number(process.argv[2] ?? process.env.IPS_DEDUP_CACHE_SIZE ?? 100_000);
const config = loadConfig({ ...process.env, IPS_DEDUP_CACHE_SIZE: String(entries), AWS_REGION: 'us-east-1' });
const logger = createLogger('silent');
const metrics = new Metrics();
const clients = createAwsClients(config, { observers: [metrics.awsCallCounter()], env: { AWS_REGION: 'us-east-1', AWS_ACCESS_KEY_ID: 'x', AWS_SECRET_ACCESS_KEY: 'x' } });
// Built as the child builds them; only the cache is used below (nothing here calls AWS).
const parts = buildProcessParts(config, clients, logger, metrics);
new PolicyRecordProcessor({ logger, startShard: async () => ({}) });
steps.modulesLoaded = rssOf();

// Fill both maps of the cache to capacity: `entries` policies, each with one
// applied eventId (a UUID), a 56-digit Kinesis sequence number as its
// high-water mark and a revision. Names, eventIds and sequence numbers are
// flat strings, as JSON.parse gives them to the child from the daemon's
// message (a string built by concatenation, as randomUUID() or a template
// literal return it, can take several times the memory).
const heapUsed = () => {
  globalThis.gc?.();
  return process.memoryUsage().heapUsed;
};
// Measured from here: what filling the cache adds. (lru-cache allocates its
// index arrays, about 1.6 MB per 100,000 entries, when the cache is built;
// that is in the modulesLoaded step.)
const heapBefore = heapUsed();
const cache = parts.cache;
let sequence = 49680464252519823727834655071869294981423994413795770370n;
for (let start = 0; start < entries; start += 1_000) {
  const chunk = [];
  for (let i = start; i < Math.min(entries, start + 1_000); i++) {
    sequence += 1208925819614629174706176n;
    const eventId = randomUUID();
    chunk.push({ name: `team-${i % 997}-service-${i}-policy`, eventId, hash: payloadHash({ eventId }), sequenceNumber: String(sequence) });
  }
  for (const { name, eventId, hash, sequenceNumber } of JSON.parse(JSON.stringify(chunk))) {
    cache.learn(0, name, { shardId: 'shardId-000000000000', sequenceNumber, subSequenceNumber: 0 }, [{ eventId, payloadHash: hash }]);
  }
}
const cacheHeapBytes = heapUsed() - heapBefore;
steps.cacheFilled = rssOf();

// Batches through a pipeline that uses the full cache.
class MemoryLedger {
  entries = new Map();
  async currentEpoch() {
    return 0;
  }
  async claim(request) {
    const token = randomUUID();
    const previous = this.entries.get(request.policy);
    this.entries.set(request.policy, { ...(previous ?? { policy: request.policy, epoch: 0, events: [] }), claim: { owner: request.owner, token } });
    return { won: true, token, expiresAt: Date.now() + config.claimTtlMs, previous, takenOver: false };
  }
  async complete(request) {
    this.entries.set(request.policy, { policy: request.policy, epoch: 0, position: request.position, events: request.events });
  }
  // eventIds that leave an entry's window: this bench keeps none (only the cache's memory is measured).
  async archiveEvents() {}
  async archivedEvents() {
    return [];
  }
}
// The child's own composition root, with an in-memory ledger and IAM step.
const pipeline = createShardPipeline(
  {
    config,
    logger,
    metrics,
    cache,
    ledger: new MemoryLedger(),
    applier: { apply: async (event) => (event.type === 'policy.upserted' ? 'updated' : 'deleted') },
    deadLetters: { store: async () => {} },
  },
  { shardId: 'shardId-000000000000', lineage: [], epoch: 0, owner: 'memory-bench' },
);
const document = (i) => ({
  Version: '2012-10-17',
  Statement: [{ Sid: `S${i}`, Effect: 'Allow', Action: ['s3:GetObject', 's3:ListBucket'], Resource: [`arn:aws:s3:::bucket-${i}`, `arn:aws:s3:::bucket-${i}/*`] }],
});
for (let batch = 0; batch < 20; batch++) {
  const now = Date.now();
  const records = Array.from({ length: 1_000 }, (_, index) => {
    const name = `batch-policy-${(batch * 1_000 + index) % 256}`;
    sequence += 1208925819614629174706176n;
    const event = { specVersion: '1', eventId: randomUUID(), type: 'policy.upserted', policy: { name }, document: document(batch * 1_000 + index) };
    return {
      shardId: 'shardId-000000000000',
      sequenceNumber: String(sequence),
      subSequenceNumber: 0,
      partitionKey: name,
      data: Buffer.from(JSON.stringify(event)),
      index,
      arrivedAt: now,
      receivedAt: now,
    };
  });
  await pipeline.processBatch(records);
}
steps.afterBatches = rssOf();

process.stdout.write(
  `${JSON.stringify({
    entries,
    cacheSize: cache.size,
    rssBytes: steps,
    cacheBytes: steps.cacheFilled - steps.modulesLoaded,
    cacheHeapBytes,
    cacheHeapBytesPerPolicy: Math.round(cacheHeapBytes / entries),
    peakRssBytes: peak(),
    node: process.version,
  })}\n`,
);
process.exit(0);
