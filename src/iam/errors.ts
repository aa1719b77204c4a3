// Which IAM errors pass and which are final. A transient one is retried and
// never turns into `rejected`; a permanent one rejects the event with the IAM
// error code as its reason.
//
// A failure of the caller's own credentials (none found, expired, unknown,
// badly signed, or not allowed) says nothing about the event: it is transient,
// so the shard waits for the credentials or the role to be fixed instead of
// dead-lettering every valid event meanwhile.
import { RejectedEventError, TransientError } from '../contract/errors.js';

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
]);

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

/** IAM's error code, however the SDK spells it (`DeleteConflict` or `DeleteConflictException`). */
export function hasErrorCode(error: unknown, code: string): boolean {
  const actual = errorCode(error);
  return actual === code || actual === `${code}Exception`;
}

/** The caller's own credentials or permissions failed (see CREDENTIAL_CODES). */
export function isCredentialError(error: unknown): boolean {
  return CREDENTIAL_CODES.has(errorCode(error));
}

export function isTransient(error: unknown): boolean {
  if (error instanceof TransientError) return true;
  const e = error as SdkError;
  const status = e?.$metadata?.httpStatusCode;
  return (
    TRANSIENT_CODES.has(errorCode(error)) ||
    isCredentialError(error) ||
    (e?.code !== undefined && NETWORK_CODES.has(e.code)) ||
    (status !== undefined && status >= 500) ||
    e?.$retryable !== undefined ||
    (status === undefined && !(error instanceof RejectedEventError) && /socket|network|timed? ?out|ECONN/i.test(e?.message ?? ''))
  );
}

/**
 * A fault of IAM itself (throttling, 5xx, network, credentials), as the circuit
 * breaker counts them. A TransientError of the step's own making (read lag, a
 * conflict to look at again) is IAM answering, not IAM failing.
 */
export function isIamFault(error: unknown): boolean {
  return !(error instanceof TransientError) && isTransient(error);
}

/** The error as the pipeline must see it: TransientError, RejectedEventError, or as is. */
export function classifyIamError(error: unknown, operation: string): Error {
  if (error instanceof TransientError || error instanceof RejectedEventError) return error;
  const code = errorCode(error);
  const message = `${operation}: ${(error as SdkError)?.message ?? String(error)}`.slice(0, 500);
  if (isTransient(error)) return new TransientError(code, message, { cause: error });
  return new RejectedEventError(`iam:${code}`, message);
}
