// The workloads. Every record is a contract event made by src/ops/load.ts
// generateLoad() from a fixed seed, so a run can be repeated exactly.
import { CreatePolicyCommand } from '@aws-sdk/client-iam';
import type { AwsClients } from '../../src/aws/clients.js';
import type { Config } from '../../src/config/config.js';
import { generateLoad, policyDocument } from '../../src/ops/load.js';
import type { OutgoingRecord } from '../../src/ops/producer.js';

export interface Scenario {
  name: string;
  description: string;
  policies: number;
  events: number;
  records: OutgoingRecord[];
  /** Policies that exist before the run (created directly in IAM, owned by the run's application). */
  preexisting?: string[];
  /** A replay of another scenario's stream by a new application sharing its tables. */
  replayOf?: string;
  /** The records are put twice; only the second time is measured (see DaemonRunSpec.primed). */
  primed?: boolean;
  /**
   * Daemon settings for this scenario, the same for every processor (the
   * properties template reads them: IPS_KCL_MAX_RECORDS caps a batch).
   */
  daemonEnv?: Record<string, string>;
}

export function freshScenario(policies: number, events: number, seed: number): Scenario {
  const prefix = `fresh${policies}`;
  return {
    name: `fresh-${policies}`,
    description: `${events} upserts over ${policies} ${policies === 1 ? 'policy' : 'policies'} that do not exist yet; every event a new document`,
    policies,
    events,
    records: generateLoad({ policies, events, seed, prefix }),
  };
}

export function updateScenario(policies: number, events: number, seed: number): Scenario {
  const prefix = `update${policies}`;
  return {
    name: `update-${policies}`,
    description: `${events} upserts over ${policies} policies that already exist; every event a new document (IAM updates, version pruning)`,
    policies,
    events,
    records: generateLoad({ policies, events, seed, prefix }),
    preexisting: Array.from({ length: policies }, (_, i) => `${prefix}-${i}`),
  };
}

/**
 * Many revisions of few policies, delivered in small batches (at most
 * `batchSize` records each, for every processor alike), so that coalescing
 * folds only the events of a policy that share a batch: most events are
 * changes that reach IAM. The policies are created by their first events, so
 * the ledger knows them from then on (the common case of a running system).
 */
export function updateHeavyScenario(policies: number, events: number, seed: number, batchSize: number): Scenario {
  const prefix = `heavy${policies}`;
  return {
    name: 'update-heavy',
    description: `${events} upserts over ${policies} policies in batches of at most ${batchSize} records (coalescing folds only what shares a batch); every event a new document`,
    policies,
    events,
    records: generateLoad({ policies, events, seed, prefix }),
    daemonEnv: { IPS_KCL_MAX_RECORDS: String(batchSize) },
  };
}

/** Upserts and deletes mixed (a quarter deletes) over `policies`, in batches of at most `batchSize` records. */
export function mixedScenario(policies: number, events: number, seed: number, batchSize: number): Scenario {
  const prefix = `mixed${policies}`;
  return {
    name: 'mixed',
    description: `${events} events over ${policies} policies, a quarter of them deletes (deleted, re-created, updated), in batches of at most ${batchSize} records`,
    policies,
    events,
    records: generateLoad({ policies, events, seed, prefix, deleteRatio: 0.25 }),
    daemonEnv: { IPS_KCL_MAX_RECORDS: String(batchSize) },
  };
}

export function reputScenario(policies: number, events: number, seed: number): Scenario {
  const prefix = `reput${policies}`;
  return {
    name: `reput-${policies}`,
    description: `${events} events over ${policies} policies put, processed, then put again by their producer (same eventIds, new records) to the same children: every record a duplicate, warm cache`,
    policies,
    events,
    records: generateLoad({ policies, events, seed, prefix }),
    primed: true,
  };
}

export function replayScenario(of: Scenario): Scenario {
  return {
    name: `replay-${of.policies}`,
    description: `the ${of.name} stream read again from TRIM_HORIZON by a new consumer application sharing the ledger (or idempotency table): every record already applied, cold cache`,
    policies: of.policies,
    events: of.events,
    records: [],
    replayOf: of.name,
  };
}

/** Creates the scenario's pre-existing policies as the processor would have: managed path, managed-by tag. */
export async function createPreexisting(names: string[], clients: AwsClients, config: Config): Promise<void> {
  for (const name of names) {
    await clients.iam.send(
      new CreatePolicyCommand({
        PolicyName: name,
        Path: config.managedPathPrefix,
        PolicyDocument: JSON.stringify(policyDocument(name, 0)),
        Tags: [{ Key: 'managed-by', Value: config.appName }],
      }),
    );
  }
}
