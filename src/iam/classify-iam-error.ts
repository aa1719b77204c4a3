// What IAM's errors mean for an event. A retriable one (faults/classify.ts)
// becomes a TransientError and never turns into `rejected`; any other rejects
// the event with the IAM error code as its reason (`iam:<code>`).
import { errorCode, isRetriable } from '../faults/classify.js';
import { ProcessorError, RejectedEventError, TransientError } from '../faults/errors.js';

/** IAM's error code, however the SDK spells it (`DeleteConflict` or `DeleteConflictException`). */
export function hasErrorCode(error: unknown, code: string): boolean {
  const actual = errorCode(error);
  return actual === code || actual === `${code}Exception`;
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
  if (isRetriable(error)) return new TransientError(code, message, { cause: error });
  return new RejectedEventError(`iam:${code}`, message);
}
