// How an error from outside the processor's own code reads: the AWS SDK's
// errors (throttling, 5xx, network, credentials) and the runtime's. One
// classification for every AWS service; what an error means for IAM in
// particular (a rejection reason) is iam/classify-iam-error.ts.
//
// A failure of the caller's own credentials (none found, expired, unknown,
// badly signed, or not allowed) says nothing about the event: it is
// retriable, so the shard waits for the credentials or the role to be fixed
// instead of dead-lettering every valid event meanwhile.
import { ProcessorError } from './errors.js';

const TRANSIENT_CODES = new Set([
  'Throttling',
  'ThrottlingException',
  'TooManyRequestsException',
  'RequestLimitExceeded',
  'ServiceFailure',
  'ServiceFailureException',
  'ServiceUnavailable',
  'ServiceUnavailableException',
  'InternalFailure',
  'InternalError',
  'ConcurrentModification',
  'ConcurrentModificationException',
  'RequestTimeout',
  'RequestTimeoutException',
  'TimeoutError',
  'PriorRequestNotComplete',
  // DynamoDB
  'ProvisionedThroughputExceededException',
  'TransactionConflictException',
  // any service behind KMS
  'KMSThrottlingException',
]);

/**
 * Why DynamoDB cancels a transaction when trying it again may pass: another
 * transaction in progress on one of its items, or throttling. (`None`: the
 * item was not the cause.) A failed condition or a validation error is an
 * answer, not a fault.
 */
const TRANSIENT_CANCELLATIONS = new Set(['TransactionConflict', 'ThrottlingError', 'ProvisionedThroughputExceeded', 'RequestLimitExceeded']);

/** A TransactWriteItems cancelled only for conflicts or throttling (its reasons say which). */
export function isTransientCancellation(error: unknown): boolean {
  if (errorCode(error) !== 'TransactionCanceledException') return false;
  const codes = ((error as { CancellationReasons?: { Code?: string }[] }).CancellationReasons ?? []).map((reason) => reason.Code ?? 'None').filter((code) => code !== 'None');
  return codes.length > 0 && codes.every((code) => TRANSIENT_CANCELLATIONS.has(code));
}

/** The caller's credentials or permissions failed, whatever the event. */
const CREDENTIAL_CODES = new Set([
  // the SDK could not get credentials at all
  'CredentialsProviderError',
  'TokenProviderError',
  'ProviderError',
  // expired, unknown or badly signed
  'ExpiredToken',
  'ExpiredTokenException',
  'InvalidClientTokenId',
  'UnrecognizedClientException',
  'InvalidAccessKeyId',
  'SignatureDoesNotMatch',
  'InvalidSignatureException',
  'IncompleteSignature',
  'IncompleteSignatureException',
  'MissingAuthenticationToken',
  'MissingAuthenticationTokenException',
  'RequestExpired',
  'AuthFailure',
  // the caller's role may not do this (a deployment fault, not the event's)
  'AccessDenied',
  'AccessDeniedException',
]);

const NETWORK_CODES = new Set(['ECONNRESET', 'ECONNREFUSED', 'ETIMEDOUT', 'EPIPE', 'EAI_AGAIN', 'ENOTFOUND', 'ECONNABORTED', 'UND_ERR_SOCKET']);

interface SdkError {
  name?: string;
  code?: string;
  message?: string;
  $metadata?: { httpStatusCode?: number };
  $retryable?: unknown;
}

export function errorCode(error: unknown): string {
  const e = error as SdkError;
  return e?.name && e.name !== 'Error' ? e.name : (e?.code ?? 'Error');
}

/** The caller's own credentials or permissions failed (see CREDENTIAL_CODES). */
export function isCredentialError(error: unknown): boolean {
  return CREDENTIAL_CODES.has(errorCode(error));
}

/**
 * The caller's role may not make this call. Retriable for a worker (the shard
 * waits for the role to be fixed), but a read that is refused once is refused
 * again: a tool that reads many things (the drift audit) reports it per thing
 * instead of waiting.
 */
export function isAccessDenied(error: unknown): boolean {
  const code = errorCode(error);
  return code === 'AccessDenied' || code === 'AccessDeniedException';
}

export function isRetriable(error: unknown): boolean {
  if (error instanceof ProcessorError) return error.retriable;
  const e = error as SdkError;
  const status = e?.$metadata?.httpStatusCode;
  return (
    TRANSIENT_CODES.has(errorCode(error)) ||
    isTransientCancellation(error) ||
    isCredentialError(error) ||
    (e?.code !== undefined && NETWORK_CODES.has(e.code)) ||
    (status !== undefined && status >= 500) ||
    e?.$retryable !== undefined ||
    (status === undefined && /socket|network|timed? ?out|ECONN/i.test(e?.message ?? ''))
  );
}

/** Errors that come from the code itself, not from the world outside it: waiting will not help. */
export function isProgrammingError(error: unknown): boolean {
  return error instanceof TypeError || error instanceof ReferenceError || error instanceof RangeError || error instanceof SyntaxError;
}
