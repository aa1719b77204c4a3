// Baseline (b): a record processor that does nothing but checkpoint. Each
// record gets an outcome line (outcome `noop`) so the same log reader measures
// it; each batch is checkpointed at its last record. It is the ceiling the
// daemon, the emulated Kinesis and the child protocol allow on this machine.
//
// Run by the MultiLangDaemon as: node --import tsx <root>/bench/baselines/noop.ts
import kcl from 'aws-kcl';
import { baselineProcess, checkpointAt, reportOutcome, toBatchRecords } from './common.js';

const child = baselineProcess('noop-baseline');
let shardId = 'unknown';
let lastProcessed: string | undefined;

kcl({
  initialize(input, done) {
    shardId = input.shardId;
    child.logger.info({ shard: shardId, startingAt: input.sequenceNumber }, 'ready');
    done();
  },
  processRecords(input, done) {
    const records = toBatchRecords(shardId, input.records, Date.now());
    for (const record of records) reportOutcome(child, record, 'noop');
    const last = records.at(-1)?.sequenceNumber;
    if (!last) return done();
    lastProcessed = last;
    void checkpointAt(input.checkpointer, last, child.logger).then(done);
  },
  leaseLost(_input, done) {
    child.logger.warn({ shard: shardId }, 'lease lost');
    done();
  },
  shardEnded(input, done) {
    void checkpointAt(input.checkpointer, null, child.logger).then(done);
  },
  shutdownRequested(input, done) {
    if (!lastProcessed) return done();
    void checkpointAt(input.checkpointer, lastProcessed, child.logger).then(done);
  },
}).run();
