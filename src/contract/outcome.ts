// The outcome every record ends with (README: "Outcome of every record").
export const OUTCOMES = ['created', 'updated', 'unchanged', 'deleted', 'retained-in-use', 'absent', 'duplicate', 'stale', 'superseded', 'rejected'] as const;

export type Outcome = (typeof OUTCOMES)[number];

/** Outcomes that come from the IAM step itself. */
export type IamOutcome = Extract<Outcome, 'created' | 'updated' | 'unchanged' | 'deleted' | 'retained-in-use' | 'absent'>;
