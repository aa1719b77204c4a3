// One target account failing outright for part of a chaos run: every IAM call
// made as the account (its role's assumed keys, which the fault proxies learn
// from the AssumeRole answers passing through them) gets a 503 from `begin`
// to `end`, and for `minimumMs` at least, so that its records are parked
// (IPS_PARK_AFTER_MS) even by workers that were killed or frozen and came
// back meanwhile. The parked records are redriven once it is back.
import { setTimeout as sleep } from 'node:timers/promises';
import type { FaultProxy } from './fault-proxy.js';

export interface AccountOutage {
  readonly account: string;
  begin(): void;
  /** Ends the outage, once it has lasted `minimumMs`; resolves with how long it lasted. */
  end(): Promise<number>;
  /** IAM calls the proxies failed for the account. */
  failedCalls(): number;
}

export function accountOutage(proxies: () => FaultProxy[], account: string, minimumMs: number): AccountOutage {
  let since: number | undefined;
  return {
    account,
    begin() {
      since = Date.now();
      for (const proxy of proxies()) proxy.failAccount(account, true);
    },
    async end() {
      if (since === undefined) return 0;
      await sleep(Math.max(0, since + minimumMs - Date.now()));
      for (const proxy of proxies()) proxy.failAccount(account, false);
      const lasted = Date.now() - since;
      since = undefined;
      return lasted;
    },
    failedCalls: () => proxies().reduce((n, proxy) => n + proxy.failedCalls(account), 0),
  };
}

/** The waves an outage spans in a run of `waves`: the middle third (one wave at least), then the wave it ends at. */
export function outageWaves(waves: number, first = 0): { from: number; backAt: number } {
  const from = Math.max(first, Math.floor(waves / 3));
  return { from, backAt: Math.max(from + 1, Math.floor((2 * waves) / 3)) };
}
