// What IAM's errors mean for an event. A retriable one (faults/classify.ts)
// becomes a TransientError and never turns into `rejected`; any other rejects
// the event with the IAM error code as its reason (`iam:<code>`).
import { errorCode, isRetriable } from '../faults/classify.js';
import { IamFaultError, ProcessorError, RejectedEventError, TransientError } from '../faults/errors.js';
import type { AwsFaultCode } from '../faults/errors.js';

/** IAM's error code, however the SDK spells it (`DeleteConflict` or `DeleteConflictException`). */
export function hasErrorCode(error: unknown, code: string): boolean {
  const actual = errorCode(error);
  return actual === code || actual === `${code}Exception`;
}

/**
 * Which of IAM's limits a LimitExceeded names, by its message: the 5 versions
 * of a managed policy ("A managed policy can have up to 5 versions..."), the
 * document's size ("Cannot exceed quota for PolicySize: 6144"), or another
 * quota of the account ("Cannot exceed quota for PoliciesPerAccount: 1500").
 * Only the first is made room for; the others are permanent for the event.
 */
export function iamLimitOf(error: unknown): 'versions' | 'size' | 'quota' | 'other' | undefined {
  if (!hasErrorCode(error, 'LimitExceeded')) return undefined;
  const message = String((error as { message?: unknown })?.message ?? '');
  if (/PolicySize/i.test(message)) return 'size';
  if (/version/i.test(message)) return 'versions';
  if (/quota/i.test(message)) return 'quota';
  return 'other'; // a limit IAM did not name: `iam:LimitExceeded`, and no version is deleted for it
}

/**
 * A fault of IAM itself (throttling, 5xx, network, credentials), as the circuit
 * breaker counts them. A TransientError of the step's own making (read lag, a
 * conflict to look at again) is IAM answering, not IAM failing.
 */
export function isIamFault(error: unknown): boolean {
  return !(error instanceof TransientError) && isRetriable(error);
}

/** The error as the pipeline must see it: TransientError, RejectedEventError, or as is. */
export function classifyIamError(error: unknown, operation: string): Error {
  if (error instanceof ProcessorError) return error;
  const code = errorCode(error);
  const message = `${operation}: ${(error as { message?: string })?.message ?? String(error)}`.slice(0, 500);
  if (isRetriable(error)) return new IamFaultError(code as AwsFaultCode, message, { cause: error }); // the SDK's own code
  const limit = iamLimitOf(error);
  if (limit === 'size') return new RejectedEventError('document-too-large', message);
  if (limit === 'quota') return new RejectedEventError('account-quota-exceeded', message);
  return new RejectedEventError(`iam:${code}`, message);
}
