// The small set of contract events `npm start` sends, chosen to show each
// kind of outcome a newcomer should see.
import type { OutgoingRecord } from '../../src/ops/producer.js';
import { eventRecord } from '../../src/ops/producer.js';
import { deletedEvent, upsertedEvent } from '../../src/contract/wire-event.js';

const readOnly = (bucket: string) => ({
  Version: '2012-10-17',
  Statement: [{ Effect: 'Allow', Action: ['s3:GetObject', 's3:ListBucket'], Resource: [`arn:aws:s3:::${bucket}`, `arn:aws:s3:::${bucket}/*`] }],
});

function upsert(eventId: string, name: string, revision: number, document: object, extra: { description?: string; tags?: Record<string, string> } = {}) {
  return eventRecord(upsertedEvent({ eventId, name, revision, document, ...extra }));
}

export interface DemoRecord {
  record: OutgoingRecord;
  /** What a newcomer should expect to see for it. */
  expect: string;
}

/**
 * Two waves: the second is sent once the first has settled, so its events
 * meet existing policies instead of being coalesced into one batch with them.
 */
export function demoWaves(): DemoRecord[][] {
  return [
    [
      { record: upsert('demo-1', 'demo-reports-read', 1, readOnly('reports'), { description: 'Read the reports bucket', tags: { team: 'analytics' } }), expect: 'created' },
      { record: upsert('demo-2', 'demo-logs-read', 1, readOnly('logs')), expect: 'created' },
      { record: upsert('demo-3', 'demo-scratch', 1, readOnly('scratch')), expect: 'created' },
      { record: { partitionKey: 'demo-garbage', data: Buffer.from('{"specVersion":"1", this is not json') }, expect: 'rejected (invalid-json, dead-lettered)' },
      // One policy in two other accounts (tools/local/target-roles.ts): each account's copy, with its own document, reached through its role.
      {
        record: eventRecord(upsertedEvent({ eventId: 'demo-9', account: '111111111111', name: 'demo-baseline', revision: 1, document: readOnly('baseline-111111111111') })),
        expect: 'created (in account 111111111111)',
      },
      {
        record: eventRecord(upsertedEvent({ eventId: 'demo-10', account: '222222222222', name: 'demo-baseline', revision: 1, document: readOnly('baseline-222222222222') })),
        expect: 'created (in account 222222222222)',
      },
      {
        record: eventRecord(upsertedEvent({ eventId: 'demo-11', account: '333333333333', name: 'demo-baseline', revision: 1, document: readOnly('baseline-333333333333') })),
        expect: 'rejected (account-not-allowed, dead-lettered)',
      },
      {
        record: upsert('demo-7', 'demo-admin', 1, { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: '*', Resource: '*' }] }),
        expect: 'rejected (admin-grant-refused, dead-lettered)',
      },
    ],
    [
      { record: upsert('demo-2', 'demo-logs-read', 1, readOnly('logs')), expect: 'duplicate (a producer retry: same eventId)' },
      { record: upsert('demo-4', 'demo-reports-read', 2, readOnly('reports-v2')), expect: 'updated' },
      { record: upsert('demo-5', 'demo-reports-read', 1, readOnly('reports-old')), expect: 'stale (revision 1 after revision 2)' },
      {
        record: upsert('demo-8', 'demo-logs-read', 2, {
          Statement: [{ Resource: ['arn:aws:s3:::logs/*', 'arn:aws:s3:::logs'], Action: ['s3:ListBucket', 's3:GetObject'], Effect: 'Allow' }],
          Version: '2012-10-17',
        }),
        expect: 'unchanged (same document, keys reordered)',
      },
      {
        record: eventRecord(deletedEvent({ eventId: 'demo-6', name: 'demo-scratch', revision: 2 })),
        expect: 'deleted',
      },
    ],
  ];
}
