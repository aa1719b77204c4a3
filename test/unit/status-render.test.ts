// `ips status` on a terminal: the shard table fits a normal terminal even with
// Kinesis' 56-digit sequence numbers as checkpoints, and still tells them apart.
import test from 'ava';
import { renderStatus, shortSequence } from '../../src/ops/commands/status.js';
import type { StatusReport } from '../../src/ops/commands/status.js';

const seq = (tail: string) => `4966${'0'.repeat(52 - tail.length)}${tail}`.padEnd(56, '7');

function report(checkpoints: string[]): StatusReport {
  return {
    at: '2026-12-02T20:00:00.000Z',
    stream: 'iam-policy-events',
    leaseTable: 'iam-policy-stream',
    ledgerEntries: 7,
    managedPolicies: 7,
    managedPathPrefix: '/stream-managed/',
    deadLetters: { open: 0, redriven: 0, openByReason: {} },
    lastMinute: {},
    shards: checkpoints.map((checkpoint, i) => ({
      shard: `shardId-00000000000${i}`,
      state: 'open',
      owner: 'd3d634c8-1e87-4edd-ae9a-196257aad18c',
      checkpoint,
      parents: '-',
      children: '-',
      lagMs: 0,
      pending: false,
    })),
  };
}

test('the shard table stays within 120 columns with 56-digit checkpoints', (t) => {
  const checkpoints = [seq('123456789012345678901234'), seq('123456789012345678909876'), 'TRIM_HORIZON', 'SHARD_END'];
  t.is(checkpoints[0]!.length, 56);
  const text = renderStatus(report(checkpoints), { deadLetterTable: 'iam-policy-stream-dead-letters' });
  const shardTable = text.split('\n').filter((line) => line.startsWith('SHARD ') || line.startsWith('shardId-')).slice(0, 5);
  for (const line of shardTable) t.true(line.length <= 120, `${line.length} columns: ${line}`);
  t.true(text.includes(shortSequence(checkpoints[0]!)));
  t.not(shortSequence(checkpoints[0]!), shortSequence(checkpoints[1]!), 'two checkpoints of one shard epoch stay apart');
  t.true(text.includes('TRIM_HORIZON') && text.includes('SHARD_END'), 'named positions are shown as they are');
});

test('an abbreviated checkpoint keeps its head and tail', (t) => {
  const full = seq('42');
  t.is(shortSequence(full), `${full.slice(0, 6)}…${full.slice(-10)}`);
  t.is(shortSequence('12345'), '12345');
});
