// The ownership cases every reliability run includes: a policy someone else
// owns under the managed path (never to be touched), and a managed policy
// attached to a role (never to be deleted). Created before the load; the
// events that test them go last in the stream.
import { AttachRolePolicyCommand, CreatePolicyCommand, CreateRoleCommand, GetPolicyCommand } from '@aws-sdk/client-iam';
import type { IAMClient } from '@aws-sdk/client-iam';
import { policyArn } from '../../src/iam/policies.js';
import { LOCAL_ACCOUNT_ID } from '../local/stack.js';
import { policyDocument } from '../../src/ops/load.js';
import { eventRecord } from '../../src/ops/producer.js';
import { deletedEvent, upsertedEvent } from '../../src/contract/wire-event.js';
import type { OutgoingRecord } from '../../src/ops/producer.js';

export interface OwnershipFixtures {
  /** For the invariant checker: the attached policy must be retained. */
  attached: Set<string>;
  /** For the invariant checker: the foreign policy, with its original default version. */
  foreign: Map<string, { arn: string; defaultVersionId: string }>;
  /** Events for both, to put after the load: delete the attached one, upsert and delete the foreign one. */
  closingEvents: OutgoingRecord[];
}

/**
 * `settle` puts records and waits for their outcomes: the attached policy is
 * created through the stream (so it is owned), then attached to a role.
 */
export async function ownershipFixtures(options: { iam: IAMClient; managedPathPrefix: string; prefix: string; settle: (records: OutgoingRecord[]) => Promise<void> }): Promise<OwnershipFixtures> {
  const { iam, managedPathPrefix, prefix } = options;
  const foreignName = `${prefix}-foreign`;
  const attachedName = `${prefix}-attached`;
  const foreignArn = policyArn({ account: LOCAL_ACCOUNT_ID }, managedPathPrefix, foreignName);
  await iam.send(new CreatePolicyCommand({ PolicyName: foreignName, Path: managedPathPrefix, PolicyDocument: JSON.stringify(policyDocument('theirs', 1)) }));
  const foreignVersion = (await iam.send(new GetPolicyCommand({ PolicyArn: foreignArn }))).Policy?.DefaultVersionId ?? 'v1';

  await options.settle([eventRecord(upsertedEvent({ eventId: `${attachedName}-1`, name: attachedName, document: policyDocument(attachedName, 1) }))]);
  const role = `${prefix}-role`;
  const trust = { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Principal: { Service: 'ec2.amazonaws.com' }, Action: 'sts:AssumeRole' }] };
  await iam.send(new CreateRoleCommand({ RoleName: role, AssumeRolePolicyDocument: JSON.stringify(trust) }));
  await iam.send(new AttachRolePolicyCommand({ RoleName: role, PolicyArn: policyArn({ account: LOCAL_ACCOUNT_ID }, managedPathPrefix, attachedName) }));

  return {
    attached: new Set([attachedName]),
    foreign: new Map([[foreignName, { arn: foreignArn, defaultVersionId: foreignVersion }]]),
    closingEvents: [
      eventRecord(deletedEvent({ eventId: `${attachedName}-del`, name: attachedName })),
      eventRecord(upsertedEvent({ eventId: `${foreignName}-up`, name: foreignName, document: policyDocument('ours', 2) })),
      eventRecord(deletedEvent({ eventId: `${foreignName}-del`, name: foreignName })),
    ],
  };
}
