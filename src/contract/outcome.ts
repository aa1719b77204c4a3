// The outcome every record ends with (README: "Outcome of every record").
export const OUTCOMES = ['created', 'updated', 'unchanged', 'deleted', 'retained-in-use', 'absent', 'duplicate', 'stale', 'superseded', 'rejected', 'parked', 'planned'] as const;

export type Outcome = (typeof OUTCOMES)[number];

/** Outcomes that come from the IAM step itself. */
export type IamOutcome = Extract<Outcome, 'created' | 'updated' | 'unchanged' | 'deleted' | 'retained-in-use' | 'absent'>;

/**
 * What an IAM step did: its outcome, and IAM's version ids of the policy as the
 * step left them, oldest first, the last the default (empty once deleted);
 * undefined when the step cannot tell. The ledger's completion records them
 * for the next step.
 */
export interface IamStep {
  outcome: IamOutcome;
  versions: string[] | undefined;
  /**
   * Where the policy lives after the step, when that is not the event's path:
   * an event that names no path found it under another one. The ledger
   * records this path, so that the policy's next events are placed there.
   */
  path?: string;
}

/** An IAM step's answer: the step, or its outcome alone when it knows nothing of the versions. */
export type AppliedStep = IamOutcome | IamStep;

export function stepOf(applied: AppliedStep): IamStep {
  return typeof applied === 'string' ? { outcome: applied, versions: undefined } : applied;
}
