// What `npm start` tells a newcomer while the daemon starts: how long the
// first leases take and why, derived from the daemon's rendered properties,
// and the daemon's start-up steps as its log shows them.
//
// A fresh daemon on the local stack goes through (KCL 2.x Scheduler and
// DynamoDBLeaseCoordinator):
//   1. the JVM starts and creates the lease table (DynamoDB Local in memory,
//      so the table is new on every npm start);
//   2. on an empty lease table, a new worker waits a random 1-30 s, checking
//      every 3 s, for another worker to list the shards and create the leases
//      (Scheduler's MIN/MAX_WAIT_TIME_FOR_LEASE_TABLE_CHECK_MILLIS: fixed in
//      the KCL, no property changes it), then lists them itself;
//   3. the lease taker runs at once when the coordinator starts, then every
//      2 x (failoverTimeMillis + 25 ms); new leases have no owner, so the first
//      run takes them all;
//   4. a record processor starts per lease and the first read returns after
//      at most idleTimeBetweenReadsInMillis.

/** KCL's lease epsilon (LeaseManagementConfig.epsilonMillis, default). */
const LEASE_EPSILON_MS = 25;
/** Scheduler: a worker on an empty lease table waits this long at most for another to create the leases. */
const EMPTY_TABLE_WAIT_MS = { min: 1_000, max: 30_000, every: 3_000 };

function property(properties: string, name: string, fallback: number): number {
  const match = new RegExp(`^${name}\\s*=\\s*(\\d+)\\s*$`, 'm').exec(properties);
  return match ? Number(match[1]) : fallback;
}

const s = (ms: number) => `${Math.round(ms / 100) / 10} s`;

export interface StartupEstimate {
  /** The lease taker's interval: 2 x (failoverTimeMillis + epsilon). */
  takerIntervalMs: number;
  /** Earliest and latest first leases after the daemon's lease table exists. */
  afterTableMs: { min: number; max: number };
  lines: string[];
}

/** How long a fresh daemon takes to its first leases, from its rendered properties file. */
export function startupEstimate(properties: string): StartupEstimate {
  const failoverMs = property(properties, 'failoverTimeMillis', 10_000);
  const idleMs = property(properties, 'idleTimeBetweenReadsInMillis', 1_000);
  const takerIntervalMs = 2 * (failoverMs + LEASE_EPSILON_MS);
  // The empty-table wait ends at the first check past its random deadline.
  const afterTableMs = { min: EMPTY_TABLE_WAIT_MS.min, max: EMPTY_TABLE_WAIT_MS.max + EMPTY_TABLE_WAIT_MS.every + idleMs };
  return {
    takerIntervalMs,
    afterTableMs,
    lines: [
      'The daemon takes its first leases once it has:',
      '  - started its JVM and created the lease table (shown below when done);',
      `  - waited, as any new worker on an empty lease table does, a random ${s(EMPTY_TABLE_WAIT_MS.min)} to ${s(EMPTY_TABLE_WAIT_MS.max)} (checked every ${s(EMPTY_TABLE_WAIT_MS.every)}) for another worker to create the leases, then created them itself (fixed in the KCL);`,
      `  - run its lease taker, at once and then every 2 x (failoverTimeMillis ${failoverMs} + ${LEASE_EPSILON_MS}) ms = ${s(takerIntervalMs)}; new leases have no owner, so its first run takes them all;`,
      `  - started a record processor per lease, which reads every ${s(idleMs)} (idleTimeBetweenReadsInMillis).`,
      `So the first outcomes come ${s(afterTableMs.min)} to ${s(afterTableMs.max)} after the lease table exists.`,
      "An outcome's latency counts from when its event reached the stream: the first ones include this start-up.",
    ],
  };
}

/** The daemon's start-up steps, as its log (logback, kcl/logback.xml) names them. */
const MILESTONES: { pattern: RegExp; say: (match: RegExpExecArray) => string }[] = [
  { pattern: /Created new lease table/, say: () => 'lease table created' },
  { pattern: /Newly created leases (\d+)/, say: (m) => `shards listed, ${m[1]} lease(s) created` },
  { pattern: /successfully took (\d+) leases/, say: (m) => `took ${m[1]} lease(s); record processors starting` },
];

/** The start-up steps in a piece of the daemon's log, in order, each once. */
export function startupSteps(log: string, seen: Set<string>): string[] {
  const found: string[] = [];
  for (const { pattern, say } of MILESTONES) {
    if (seen.has(pattern.source)) continue;
    const match = pattern.exec(log);
    if (!match) continue;
    seen.add(pattern.source);
    found.push(say(match));
  }
  return found;
}
