// The accounts a worker writes to, and the IAM step for each. Events without
// `account`, or naming the worker's own, go through the own account's
// reconciler on the worker's own credentials (today's path, unchanged). An
// event for a target account goes through that account's reconciler: its own
// IAM client signed with the target role's assumed credentials (built in
// aws/clients.ts), its own rate limiter and its own circuit breaker, so that
// one account's throttling or outage never slows another's calls. Each is
// built on the first event for its account and kept for the process.
import { GetCallerIdentityCommand } from '@aws-sdk/client-sts';
import type { STSClient } from '@aws-sdk/client-sts';
import { createTargetAccountClients, destroyTargetAccountClients, roleSessionName } from '../aws/clients.js';
import type { ClientOptions, TargetAccountClients } from '../aws/clients.js';
import type { Config } from '../config/config.js';
import type { AccountGate } from '../contract/account-gate.js';
import type { PolicyEvent } from '../contract/event.js';
import type { AssumeRoleError } from '../faults/errors.js';
import { RejectedEventError, TransientError } from '../faults/errors.js';
import { IamReconciler } from '../iam/reconciler.js';
import { partitionOf } from '../iam/policies.js';
import type { Logger } from '../log/logger.js';
import type { Metrics } from '../metrics/metrics.js';
import { METRIC } from '../metrics/metrics.js';
import type { Applier, ApplyHint } from '../pipeline/types.js';
import { reconcilerApplier } from './applier.js';

/** How recent a throttle of a target account's IAM (or a call its gate held) must be for its records to count as slow for want of rate. */
const RATE_BOUND_LATELY_MS = 60_000;

export interface AccountTargetsOptions {
  config: Config;
  logger: Logger;
  metrics: Metrics;
  /** The worker's own STS client: who the worker is. */
  sts: STSClient;
  /** The own account's IAM step. */
  own: Applier;
  /** What the target accounts' clients are built with (observers, an explicit environment). */
  clientOptions?: ClientOptions;
  /** How often the failures to assume one account's role are logged at most (each is counted); default 30 s. */
  logEveryMs?: number;
  /** The target reconcilers' read-lag window (ReconcilerOptions.visibilityWindowMs); default the configuration's. */
  visibilityWindowMs?: number;
}

interface Target {
  clients: TargetAccountClients;
  applier: Applier;
}

export class AccountTargets {
  private identity: Promise<{ account: string; partition: string }> | undefined;
  private readonly targets = new Map<string, Target>();
  /** When each account's AssumeRole failure was last logged, and the failures since. */
  private readonly failureLog = new Map<string, { at: number; since: number }>();

  constructor(private readonly options: AccountTargetsOptions) {}

  /** The worker's own account and partition (STS GetCallerIdentity, once). */
  ownIdentity(): Promise<{ account: string; partition: string }> {
    this.identity ??= this.options.sts.send(new GetCallerIdentityCommand({})).then((identity) => {
      if (!identity.Account) throw new TransientError('no-account', 'STS returned no account');
      return { account: identity.Account, partition: partitionOf(identity.Arn) };
    });
    this.identity.catch(() => (this.identity = undefined));
    return this.identity;
  }

  /** A target account's clients (built on first use, kept until destroy). */
  clientsOf(account: string, partition: string, sessionName: string): TargetAccountClients {
    return this.target(account, partition, sessionName).clients;
  }

  /** The accounts an event may name, once the own account is known. */
  gate(own: string): AccountGate {
    return { own, targets: this.options.config.targetAccounts };
  }

  /** The IAM step for a shard's records: by the account each event names. */
  applierFor(shardId: string): Applier {
    return {
      apply: async (event: PolicyEvent, hint?: ApplyHint) => {
        if (event.account === undefined) return this.options.own.apply(event, hint);
        const me = await this.ownIdentity();
        if (event.account === me.account) return this.options.own.apply(event, hint);
        // The pipeline refuses such events before the ledger; a ledger entry of an account since removed from the list is refused here.
        if (!this.options.config.targetAccounts.includes(event.account)) {
          throw new RejectedEventError('account-not-allowed', `account ${event.account} is not in IPS_TARGET_ACCOUNTS`);
        }
        return this.target(event.account, me.partition, roleSessionName(this.options.config.workerId, shardId)).applier.apply(event, hint);
      },
    };
  }

  /**
   * Reaches every target account before the shard's first record: builds its
   * clients and has them assume its role (the SDK caches the credentials and
   * refreshes them), so that a shard's first batch, after a start or a lease
   * taken over, does not wait for an AssumeRole per account. A role that
   * cannot be assumed is told now (assumeRoleFailed: a metric and a log line
   * naming the account and the role ARN) and holds nothing: its records meet
   * the same error, transient, in their own time.
   */
  async prepare(shardId: string): Promise<void> {
    const me = await this.ownIdentity();
    const sessionName = roleSessionName(this.options.config.workerId, shardId);
    const accounts = this.options.config.targetAccounts.filter((account) => account !== me.account);
    await Promise.all(
      accounts.map((account) =>
        this.target(account, me.partition, sessionName)
          .clients.iam.config.credentials()
          .catch(() => undefined),
      ),
    );
  }

  /**
   * Whether the account was rate-bound for this process within the last
   * minute (its IAM throttled a call, or the account's shared gate held one
   * for a token: TargetAccountClients.lastRateBoundAt): its records are then
   * slow for want of rate, not for a fault (park/parking.ts, SlowAccount).
   */
  rateBoundLately(account: string, now = Date.now()): boolean {
    const at = this.targets.get(account)?.clients.lastRateBoundAt();
    return at !== undefined && now - at < RATE_BOUND_LATELY_MS;
  }

  /** Calls per second the host's gate for the account allows now (TargetAccountClients.allowedRate); undefined: not known. */
  allowedRate(account: string): number | undefined {
    return this.targets.get(account)?.clients.allowedRate();
  }

  /** Destroys the target accounts' clients (and leaves their rate limiters). */
  destroy(): void {
    for (const { clients } of this.targets.values()) destroyTargetAccountClients(clients);
    this.targets.clear();
  }

  private target(account: string, partition: string, sessionName: string): Target {
    let target = this.targets.get(account);
    if (!target) {
      const { config, logger, metrics } = this.options;
      const clients = createTargetAccountClients(config, { account, partition, sessionName, onAssumeRoleFailure: (failure) => this.assumeRoleFailed(failure) }, this.options.clientOptions);
      const visibility = this.options.visibilityWindowMs !== undefined ? { visibilityWindowMs: this.options.visibilityWindowMs } : {};
      const reconciler = new IamReconciler({ iam: clients.iam, sts: clients.sts, config, metrics, logger: logger.child({ account }), account, ...visibility });
      target = { clients, applier: reconcilerApplier(reconciler) };
      this.targets.set(account, target);
      logger.info({ account, roleArn: clients.roleArn }, 'target account reached through its role');
    }
    return target;
  }

  /** Every failure is counted; the log names the account and the role ARN, at most once per interval per account. */
  private assumeRoleFailed(failure: AssumeRoleError): void {
    this.options.metrics.increment(METRIC.assumeRoleFailures, { account: failure.account, code: failure.code });
    const now = Date.now();
    const seen = this.failureLog.get(failure.account);
    if (seen && now - seen.at < (this.options.logEveryMs ?? 30_000)) {
      seen.since++;
      return;
    }
    this.failureLog.set(failure.account, { at: now, since: 0 });
    this.options.logger.error(
      { account: failure.account, roleArn: failure.roleArn, code: failure.code, failuresSinceLastLog: seen?.since ?? 0, err: failure },
      `cannot assume ${failure.roleArn}: account ${failure.account}'s records wait until its role trusts this worker`,
    );
  }
}
