// Ownership: the processor changes only policies under its managed path that
// carry its tag, `managed-by` = the application's name. The tag key is
// reserved in events (contract/decode.ts), put on every policy the reconciler
// creates, required by the task role's IAM conditions, and checked by the
// invariant checker and the drift audit: one definition for all of them.
export const OWNER_TAG = 'managed-by';

/** True when the tags say the application owns the policy. */
export function ownedBy(tags: readonly { Key?: string; Value?: string }[] | undefined, appName: string): boolean {
  return (tags ?? []).some((tag) => tag.Key === OWNER_TAG && tag.Value === appName);
}
