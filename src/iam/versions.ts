// IAM's policy versions: at most 5 per managed policy, numbered v1, v2, ...
// and never reused. One place for the limit and for the order of versions
// (the reconciler prunes the oldest non-default one; the drift audit counts
// them against the limit).
import type { PolicyVersion } from '@aws-sdk/client-iam';

/** IAM keeps at most this many versions of a managed policy (LimitExceeded on a sixth). */
export const MAX_VERSIONS = 5;

export function versionNumber(id: string | undefined): number {
  return Number(id?.replace(/^v/, '') ?? 0);
}

/** Oldest first: by creation date, then by number. */
function olderFirst(a: PolicyVersion, b: PolicyVersion): number {
  return (a.CreateDate?.getTime() ?? 0) - (b.CreateDate?.getTime() ?? 0) || versionNumber(a.VersionId) - versionNumber(b.VersionId);
}

/** The oldest non-default version. */
export function oldestNonDefault(versions: PolicyVersion[]): string | undefined {
  return versions.filter((version) => !version.IsDefaultVersion).sort(olderFirst)[0]?.VersionId;
}

/** Version ids, oldest first. */
export function byAge(versions: PolicyVersion[]): string[] {
  return [...versions]
    .sort(olderFirst)
    .map((version) => version.VersionId!)
    .filter(Boolean);
}

/**
 * The version ids after `created` was made the default, if `created` is the
 * number IAM gives next after the newest of `known` (IAM numbers a policy's
 * versions v1, v2, ... and never reuses one); undefined otherwise: versions
 * were made that `known` does not show, so it no longer counts them.
 */
export function followedBy(known: string[], created: string | undefined): string[] | undefined {
  if (created === undefined || !/^v\d+$/.test(created)) return undefined;
  const newest = Math.max(0, ...known.map(versionNumber));
  return versionNumber(created) === newest + 1 ? [...known, created] : undefined;
}
