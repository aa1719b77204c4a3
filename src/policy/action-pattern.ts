// IAM's wildcard matching, as IAM applies it to the strings of a policy:
// `*` matches any run of characters (`:` and `/` included), `?` any one
// character. Action names are matched without regard to case (IAM reads
// `SNS:Publish` as `sns:Publish`); ARNs are matched as written.

const cache = new Map<string, RegExp>();
const MAX_CACHED = 4_096;

/** The pattern as an anchored regular expression; compiled once per pattern and flags. */
function compile(pattern: string, ignoreCase: boolean): RegExp {
  const key = `${ignoreCase ? 'i' : 's'}${pattern}`;
  let regex = cache.get(key);
  if (!regex) {
    const body = pattern
      .replace(/[.+^${}()|[\]\\]/g, '\\$&')
      .replace(/\*/g, '.*')
      .replace(/\?/g, '.');
    regex = new RegExp(`^${body}$`, ignoreCase ? 'si' : 's');
    if (cache.size >= MAX_CACHED) cache.delete(cache.keys().next().value!);
    cache.set(key, regex);
  }
  return regex;
}

/** Whether an action pattern (`*`, `s3:Get*`, `IAM:PassRole`) covers the action `service:Name`. */
export function actionMatches(pattern: string, action: string): boolean {
  return pattern === '*' || compile(pattern, true).test(action);
}

/** Whether a resource pattern covers the ARN (or the literal `*` of an action that takes no resource). */
export function resourceMatches(pattern: string, arn: string): boolean {
  return pattern === '*' || compile(pattern, false).test(arn);
}

/** Whether the string holds a wildcard. */
export function hasWildcard(pattern: string): boolean {
  return pattern.includes('*') || pattern.includes('?');
}
