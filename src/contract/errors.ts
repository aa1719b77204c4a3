// Typed errors with reason codes. A reason code is what the dead-letter store,
// the logs, the metrics and the tests speak.

/** Why a record was rejected. Input reasons come from validation; IAM reasons from IAM itself. */
export const INPUT_REASONS = [
  'invalid-encoding', // not UTF-8
  'invalid-json',
  'not-an-object',
  'unknown-spec-version',
  'missing-field',
  'invalid-field', // a field of the wrong type or shape
  'unknown-event-type',
  'invalid-event-id',
  'invalid-policy-name',
  'invalid-policy-path',
  'path-not-managed',
  'invalid-revision',
  'invalid-description',
  'invalid-tags',
  'invalid-occurred-at',
  'document-too-large',
  'malformed-document',
  'admin-grant-refused',
  'record-too-large',
  'partition-key-mismatch', // the partition key is not the policy name: the stream would not keep the policy's order
] as const;

export type InputReason = (typeof INPUT_REASONS)[number];

/**
 * Reasons decided when applying an event: ownership, an eventId the ledger
 * already holds for another payload, an upsert naming another path than the
 * existing policy's (IAM cannot move a policy), or a permanent IAM error code.
 */
export type ApplyReason = 'not-owned' | 'event-id-conflict' | 'path-conflict' | `iam:${string}`;

export type RejectReason = InputReason | ApplyReason;

/** Bad input: the record can never be applied; it goes to the dead-letter store. */
export class InvalidEventError extends Error {
  override name = 'InvalidEventError';
  constructor(
    readonly reason: InputReason,
    readonly detail: string,
  ) {
    super(`${reason}: ${detail}`);
  }
}

/** A permanent refusal while applying: not owned, or IAM said no for good. */
export class RejectedEventError extends Error {
  override name = 'RejectedEventError';
  constructor(
    readonly reason: ApplyReason,
    readonly detail: string,
  ) {
    super(`${reason}: ${detail}`);
  }
}

/**
 * A fault that may pass (throttling, 5xx, timeouts, a claim held elsewhere).
 * Never becomes `rejected`: the record stays unsettled and is retried.
 */
export class TransientError extends Error {
  override name = 'TransientError';
  constructor(
    readonly reason: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`${reason}: ${message}`, options);
  }
}
