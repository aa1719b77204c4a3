// The guard of an IAM step: no IAM call starts once the step's ledger claim
// could have passed to another worker, and a call in flight is cancelled
// (pipeline/claim-keeper.ts keeps the claim and says when to stop). Steps for
// different policies run concurrently through one reconciler; the async
// context tells their calls apart.
import { AsyncLocalStorage } from 'node:async_hooks';
import type { IAMClient } from '@aws-sdk/client-iam';

/** What an IAM step must obey so that it never writes after its claim could have passed to another worker. */
export interface StepGuard {
  signal: AbortSignal;
  /** Throws (a TransientError) when no IAM call may start any more. */
  check(): void;
}

const stepGuards = new AsyncLocalStorage<StepGuard>();

/** Runs a step with its guard: every call `guardedSend` makes within it obeys the guard. */
export function withinGuard<T>(guard: StepGuard, run: () => Promise<T>): Promise<T> {
  return stepGuards.run(guard, run);
}

/** The guard of the step the caller runs in, if any. */
export function currentGuard(): StepGuard | undefined {
  return stepGuards.getStore();
}

/**
 * `iam.send`, through the current step's guard: none starts once it says stop,
 * and its signal cancels one in flight. The guard is asked twice: before the
 * call enters the SDK, and again at dispatch, after signing, for every attempt
 * the SDK makes. A worker paused between the two (a GC pause, a frozen
 * container) wakes up past its deadline with the call not yet sent: the
 * second check stops it there. Only from dispatch on does the request timeout
 * (`IPS_LATE_WRITE_MS`) bound when the call may still land, because the
 * client's timers start at dispatch, and an expired timer fires before any
 * socket event once a paused process runs again.
 */
export function guardedSend(iam: IAMClient): IAMClient['send'] {
  return ((command: Parameters<IAMClient['send']>[0]) => {
    const guard = stepGuards.getStore();
    if (!guard) return iam.send(command as never);
    guard.check();
    command.middlewareStack.add(
      (next) => async (args) => {
        guard.check();
        return next(args);
      },
      { step: 'deserialize', priority: 'low', name: 'claimGuardAtDispatch' },
    );
    return iam.send(command as never, { abortSignal: guard.signal });
  }) as unknown as IAMClient['send'];
}
