// Helpers for reliability runs that act on whole workers: freeze a worker
// (the daemon's java process and its record-processor children) with SIGSTOP
// and thaw it with SIGCONT or kill it frozen with SIGKILL, find which KCL worker a daemon is, which ledger
// claims its children hold, and who holds the shard leases.
import { ScanCommand } from '@aws-sdk/client-dynamodb';
import type { AttributeValue, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { existsSync, readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { readLeases } from '../../src/ops/lease-table.js';
import type { Lease } from '../../src/ops/lease-table.js';
import type { TestDaemon } from '../../tools/harness/daemon.js';
import { allProcesses, procStat, recordProcessorsOf } from '../../tools/harness/processes.js';

/**
 * The processes of a worker: the daemon runs in its own process group
 * (src/daemon/daemon.ts), and the children it starts stay in it; children are
 * also found by parent, should one ever leave the group.
 */
export function workerProcesses(daemon: TestDaemon): number[] {
  const members = allProcesses()
    .filter((stat) => stat.pgrp === daemon.pid)
    .map((stat) => stat.pid);
  return [...new Set([daemon.pid, ...members, ...recordProcessorsOf(daemon.pid)])];
}

function signal(pids: number[], name: NodeJS.Signals): void {
  for (const pid of pids) {
    try {
      process.kill(pid, name);
    } catch {
      /* gone already */
    }
  }
}

/**
 * Freezes the whole worker: SIGSTOP to its process group and to each of its
 * processes. Resolves with the frozen processes once every one of them is
 * stopped (state T), so that nothing of the worker runs while the test waits.
 */
export async function freezeWorker(daemon: TestDaemon): Promise<number[]> {
  try {
    process.kill(-daemon.pid, 'SIGSTOP');
  } catch {
    /* no group: the processes one by one below */
  }
  const pids = workerProcesses(daemon);
  signal(pids, 'SIGSTOP');
  const deadline = Date.now() + 5_000;
  for (;;) {
    const running = pids.map(procStat).filter((stat) => stat !== undefined && stat.state !== 'T' && stat.state !== 't' && stat.state !== 'Z');
    if (running.length === 0) return pids;
    if (Date.now() > deadline) throw new Error(`processes ${running.map((stat) => `${stat!.pid}:${stat!.state}`).join(', ')} did not stop`);
    await sleep(20);
  }
}

/** Thaws a frozen worker: SIGCONT to its group and to each of its processes. */
export function thawWorker(daemon: TestDaemon, pids: number[] = []): void {
  try {
    process.kill(-daemon.pid, 'SIGCONT');
  } catch {
    /* gone already */
  }
  signal([...new Set([...pids, ...workerProcesses(daemon)])], 'SIGCONT');
}

/**
 * kill -9 a frozen worker instead of thawing it: SIGKILL to its process group
 * and to each of its processes (a stopped process dies of SIGKILL too), so it
 * never wakes. Its writes already on their way (held in a proxy) may still land.
 */
export async function killFrozenWorker(daemon: TestDaemon, pids: number[]): Promise<void> {
  try {
    process.kill(-daemon.pid, 'SIGKILL');
  } catch {
    /* gone already */
  }
  signal([...new Set([...pids, ...workerProcesses(daemon)])], 'SIGKILL');
  await daemon.exited;
}

/** The KCL worker id a daemon logged at start ("Using workerId: ..."), once it has. */
export async function workerIdOf(daemon: TestDaemon, timeoutMs = 60_000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (existsSync(daemon.logFile)) {
      const match = /Using workerId: (\S+)/.exec(readFileSync(daemon.logFile, 'utf8'));
      if (match) return match[1]!;
    }
    if (Date.now() > deadline) throw new Error(`${daemon.logFile} names no workerId after ${timeoutMs} ms`);
    await sleep(200);
  }
}

export interface HeldClaim {
  policy: string;
  owner: string;
  expiresAt: number;
}

/** Live ledger claims held by the given processes (a claim owner is host/pid/shard/nonce). */
export async function claimsHeldBy(dynamodb: DynamoDBClient, ledgerTable: string, pids: number[], now = Date.now()): Promise<HeldClaim[]> {
  const wanted = new Set(pids.map(String));
  const held: HeldClaim[] = [];
  let start: Record<string, AttributeValue> | undefined;
  do {
    const page = await dynamodb.send(new ScanCommand({ TableName: ledgerTable, ConsistentRead: true, ...(start ? { ExclusiveStartKey: start } : {}) }));
    for (const item of page.Items ?? []) {
      const owner = item.claimOwner?.S;
      const expiresAt = Number(item.claimExpires?.N ?? 0);
      if (owner && expiresAt > now && wanted.has(owner.split('/')[1] ?? '')) held.push({ policy: item.policy?.S ?? '', owner, expiresAt });
    }
    start = page.LastEvaluatedKey;
  } while (start);
  return held;
}

/** The shard leases by owner (KCL worker id); leases without an owner under ''. */
export async function leasesByOwner(dynamodb: DynamoDBClient, leaseTable: string): Promise<Map<string, Lease[]>> {
  const byOwner = new Map<string, Lease[]>();
  for (const lease of await readLeases(dynamodb, leaseTable)) {
    const owner = lease.owner ?? '';
    byOwner.set(owner, [...(byOwner.get(owner) ?? []), lease]);
  }
  return byOwner;
}
