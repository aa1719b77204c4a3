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
    deadLetters: { open: 0, redriven: 0, openByReason: {}, openByAccount: {} },
    parked: { records: 0, policies: 0, byAccount: {} },
    accounts: [{ account: 'own', allowed: true, ledgerEntries: 7, openDeadLetters: 0, parkedRecords: 0 }],
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
  const shardTable = text
    .split('\n')
    .filter((line) => line.startsWith('SHARD ') || line.startsWith('shardId-'))
    .slice(0, 5);
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

test('with target accounts, status shows each account: allowed or not, the policies the ledger has seen, its open dead letters, its parked records', (t) => {
  const text = renderStatus(
    {
      ...report(['TRIM_HORIZON']),
      parked: { records: 3, policies: 1, byAccount: { '111111111111': 3 } },
      accounts: [
        { account: 'own', allowed: true, ledgerEntries: 5, openDeadLetters: 0, parkedRecords: 0 },
        { account: '111111111111', allowed: true, ledgerEntries: 2, openDeadLetters: 0, parkedRecords: 3 },
        { account: '333333333333', allowed: false, ledgerEntries: 0, openDeadLetters: 1, parkedRecords: 0 },
      ],
    },
    { deadLetterTable: 'iam-policy-stream-dead-letters' },
  );
  const rows = text.split('\n').filter((line) => /^(own|111111111111|333333333333)\s/.test(line));
  t.is(rows.length, 3, text);
  t.regex(rows[1]!, /^111111111111\s+yes\s+2\s+0\s+3$/);
  t.regex(rows[2]!, /^333333333333\s+no\s+0\s+1\s+0$/);
  t.regex(text, /Parked records: 3 in 1 policy, waiting for their account/);
});
