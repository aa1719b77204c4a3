// Which accounts an event may name: the worker's own (where its credentials
// belong: every event without `account` acts there) and the configured
// target accounts (IPS_TARGET_ACCOUNTS). An event naming any other is
// rejected `account-not-allowed` before the ledger or IAM is touched.

export interface AccountGate {
  /** The worker's own account (STS GetCallerIdentity). */
  own: string;
  /** IPS_TARGET_ACCOUNTS. */
  targets: readonly string[];
}

export function allowsAccount(gate: AccountGate, account: string | undefined): boolean {
  return account === undefined || account === gate.own || gate.targets.includes(account);
}

/** Why an event naming an account outside the gate is refused (the `account-not-allowed` detail). */
export function accountRefusal(gate: AccountGate, account: string | undefined): string {
  return `account ${account} is not one the workers may write to (${[gate.own, ...gate.targets].join(', ')}; IPS_TARGET_ACCOUNTS)`;
}
