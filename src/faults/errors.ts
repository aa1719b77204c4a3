// The one error model. Every error the processor raises on purpose is a
// ProcessorError with a reason code (what the dead-letter store, the logs, the
// metrics and the tests speak) and a `retriable` flag, which is all a retrier
// reads (faults/retry.ts). Errors from elsewhere (the AWS SDK, the runtime)
// are classified in faults/classify.ts.

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
  'invalid-account', // account is not a string of 12 digits
  'invalid-policy-name',
  'invalid-policy-path',
  'path-not-managed',
  'invalid-revision',
  'invalid-description',
  'invalid-tags',
  'invalid-occurred-at',
  'document-too-large',
  'malformed-document',
  'admin-grant-refused', // the document grants what the guardrail refuses (docs/guardrails.md)
  'unknown-action', // the document names an action no AWS service publishes (IPS_UNKNOWN_ACTIONS=reject)
  'record-too-large',
  'partition-key-mismatch', // the partition key is not the policy name: the stream would not keep the policy's order
  'hash-key-mismatch', // the partition key hashes outside the shard's range (an explicit hash key routed it here): another shard orders the policy
] as const;

export type InputReason = (typeof INPUT_REASONS)[number];

/**
 * Reasons decided when applying an event: ownership, an eventId the ledger
 * already holds for another payload, an upsert naming another path than the
 * existing policy's (IAM cannot move a policy), an account the workers may
 * not write to (the configuration's allow-list, IPS_TARGET_ACCOUNTS), or a
 * permanent IAM error code.
 */
export const APPLY_REASONS = ['not-owned', 'event-id-conflict', 'path-conflict', 'document-too-large', 'account-quota-exceeded', 'account-not-allowed', 'parked-dropped'] as const;
export type ApplyReason = (typeof APPLY_REASONS)[number] | `iam:${string}`;

/** Whether `reason` is a code this model speaks (an `iam:<Code>` reason carries IAM's own error code). */
export function isRejectReason(reason: string): reason is RejectReason {
  return (INPUT_REASONS as readonly string[]).includes(reason) || (APPLY_REASONS as readonly string[]).includes(reason) || /^iam:[A-Za-z]+$/.test(reason);
}

export type RejectReason = InputReason | ApplyReason;

/**
 * Why a step waits and tries again: the processor's own transient reasons
 * (what `transient_retries{reason}` and the logs speak), each a fault or a
 * state that passes.
 */
export const TRANSIENT_REASONS = [
  // the ledger and the claim protocol
  'claimed-elsewhere', // another owner holds the policy's claim
  'claim-lost', // our claim was taken over: the outcome is not ours to record
  'claim-deadline', // the claim could not be renewed before its deadline
  'verification-waits', // a lost claim's write may still land in IAM: re-verification waits for it
  'clock-skew', // this host's clock is further from AWS's than a claim tolerates
  'ledger-batch-unprocessed', // DynamoDB left part of a batch call unprocessed (RETRY.batchUnprocessed)
  'ledger-unexplained', // a claim refused without the item that refused it
  // IAM
  'no-account', // STS answered without the account
  'assume-role-failed', // STS refused the target account's role (trust not set up, ExternalId, throttling): AssumeRoleError
  'iam-not-yet-visible', // read lag: IAM does not show yet what the ledger says is there
  'iam-changed-meanwhile', // the policy went away during the step
  'iam-versions-conflict', // no room for a new version after RETRY.iamLookAgain rounds
  'iam-delete-conflict', // DeletePolicy refused, yet nothing left to delete and no attachment shown
  'circuit-open', // the breaker holds calls while IAM is failing
  'account-slow', // a target account's IAM throttled the policy's step past IPS_PARK_AFTER_MS: it is parked (park/parking.ts)
  // the stream
  'shard-not-listed', // ListShards does not show the shard yet
] as const;

/**
 * An AWS SDK or runtime fault passed through under its own code (Throttling,
 * ServiceFailure, ECONNRESET; faults/classify.ts, errorCode): the SDK names
 * it. The processor's own reasons are lower-case, so the two cannot meet.
 */
export type AwsFaultCode = Capitalize<string>;

export type TransientReason = (typeof TRANSIENT_REASONS)[number] | AwsFaultCode;

/** Base of every error the processor raises on purpose. */
export abstract class ProcessorError extends Error {
  /** Whether waiting and trying again can help. */
  abstract readonly retriable: boolean;
  constructor(
    readonly reason: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`${reason}: ${message}`, options);
  }
}

/** Bad input: the record can never be applied; it goes to the dead-letter store. */
export class InvalidEventError extends ProcessorError {
  override name = 'InvalidEventError';
  readonly retriable = false;
  constructor(
    override readonly reason: InputReason,
    readonly detail: string,
  ) {
    super(reason, detail);
  }
}

/** A permanent refusal while applying: not owned, or IAM said no for good. */
export class RejectedEventError extends ProcessorError {
  override name = 'RejectedEventError';
  readonly retriable = false;
  constructor(
    override readonly reason: ApplyReason,
    readonly detail: string,
  ) {
    super(reason, detail);
  }
}

/**
 * A fault that may pass (throttling, 5xx, timeouts, a claim held elsewhere,
 * IAM not showing a change yet). Never becomes `rejected`: the record stays
 * unsettled and is retried.
 */
export class TransientError extends ProcessorError {
  override name = 'TransientError';
  readonly retriable = true;
  constructor(
    override readonly reason: TransientReason,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(reason, message, options);
  }
}

/**
 * A fault of IAM itself that an IAM step met (throttling, 5xx, the network,
 * the caller's credentials), under the SDK's own code as its reason: the
 * account's IAM cannot be used now. Parking counts it with the open breaker
 * (park/parking.ts): the breaker's trial calls fail with it.
 */
export class IamFaultError extends TransientError {
  override name = 'IamFaultError';
}

/**
 * STS AssumeRole of a target account's role failed: the account's IAM cannot
 * be reached. Names the account and the role ARN, and STS's error code
 * (AccessDenied: the role's trust policy does not name the worker, or wants
 * another ExternalId). Transient: the policy's records wait and are tried
 * again once the role can be assumed; every failure is counted
 * (`assume_role_failures{account,code}`) and logged with the role ARN.
 */
export class AssumeRoleError extends TransientError {
  override name = 'AssumeRoleError';
  constructor(
    readonly account: string,
    readonly roleArn: string,
    readonly code: string,
    cause: unknown,
  ) {
    const why = cause instanceof Error ? cause.message.slice(0, 300) : String(cause);
    super('assume-role-failed', `cannot assume ${roleArn} to reach account ${account}: ${code}: ${why}`, { cause });
  }
}

/** The claim was taken over by another owner: this worker must not record the outcome. */
export class ClaimLostError extends ProcessorError {
  override name = 'ClaimLostError';
  readonly retriable = true;
  constructor(message: string) {
    super('claim-lost', message);
  }
}

/** The processor is stopping (the daemon is gone or the lease was lost): nothing more to try. */
export class StoppedError extends ProcessorError {
  override name = 'StoppedError';
  readonly retriable = false;
  constructor(message = 'processor stopping') {
    super('stopping', message);
  }
}
