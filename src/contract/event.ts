// The event contract, version 1 (docs/event-contract.md). One JSON object per
// Kinesis record; the partition key is the policy's key (contract/policy-key.ts):
// `<account>/<name>` when the event names an account, the name otherwise.

export interface PolicyDocument {
  Version?: string;
  Id?: string;
  Statement: unknown;
  [key: string]: unknown;
}

interface EventBase {
  specVersion: '1';
  eventId: string;
  /** The target AWS account (12 digits); undefined: the worker's own account. */
  account?: string;
  policyName: string;
  /** Always set after validation: the event's path or the managed prefix. */
  policyPath: string;
  /**
   * Whether the event named its path. An event that names none means "where
   * the policy is" for a policy the ledger knows, and the prefix for a new one.
   */
  pathGiven?: boolean;
  revision?: number;
  occurredAt?: string;
}

export interface PolicyUpserted extends EventBase {
  type: 'policy.upserted';
  document: PolicyDocument;
  description?: string;
  tags: Record<string, string>;
}

export interface PolicyDeleted extends EventBase {
  type: 'policy.deleted';
}

export type PolicyEvent = PolicyUpserted | PolicyDeleted;
