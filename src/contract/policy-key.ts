// A policy's key: what names one IAM policy across the accounts a stream
// serves. It is the record's partition key (so Kinesis keeps the policy's
// order, and one policy sent to many accounts spreads over the shards) and
// the ledger's key (so the same name in two accounts is two policies).
//
//   event names an account   ->  `<account>/<name>`
//   event names no account   ->  `<name>`  (the worker's own account: the
//                                 key every ledger written before accounts
//                                 existed already holds)
//
// IAM names never hold a `/`, so a key splits back without ambiguity.

/** An AWS account id: 12 digits. */
export const ACCOUNT_ID = /^\d{12}$/;

export interface PolicyRef {
  /** The target account; undefined: the worker's own. */
  account?: string | undefined;
  policyName: string;
}

export function policyKey(ref: PolicyRef): string {
  return ref.account === undefined ? ref.policyName : `${ref.account}/${ref.policyName}`;
}

/** The account (when the key names one) and the name a policy key is made of. */
export function splitPolicyKey(key: string): { account?: string; policyName: string } {
  const slash = key.indexOf('/');
  if (slash < 0) return { policyName: key };
  return { account: key.slice(0, slash), policyName: key.slice(slash + 1) };
}
