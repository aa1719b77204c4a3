// Runs the real MultiLangDaemon with the compiled record processor against a
// test stack, and waits for outcomes in its log.
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { startDaemon } from '../../src/daemon/daemon.js';
import type { RunningDaemon } from '../../src/daemon/daemon.js';
import { projectRoot } from '../../src/config/paths.js';
import { outcomeRecordId, readOutcomes, sentRecordId } from '../oracle/outcome-log.js';
import type { SentPosition } from '../oracle/outcome-log.js';
import type { OutcomeLine } from '../oracle/outcome-log.js';
import type { TestStack } from './stack.js';

export interface TestDaemon extends RunningDaemon {
  logFile: string;
}

export function startTestDaemon(testStack: TestStack, name = 'worker-1', settings: Record<string, string> = {}): TestDaemon {
  const logFile = join(testStack.stack.dir, 'logs', `${name}.log`);
  const daemon = startDaemon({
    propertiesFile: join(projectRoot(), 'properties', 'local.properties'),
    env: { ...process.env, ...testStack.stack.env, IPS_KCL_FAILOVER_MILLIS: '4000', ...settings },
    workDir: testStack.stack.dir,
    log: logFile,
  });
  return Object.assign(daemon, { logFile });
}

/** Every outcome line of the given logs. */
export function outcomesIn(logFiles: string[]): OutcomeLine[] {
  return logFiles.flatMap((file) => readOutcomes(file));
}

/** Waits until each put record has at least one outcome in the logs; returns the latest per record. */
export async function waitForOutcomes(logFiles: string[], puts: SentPosition[], timeoutMs = 240_000): Promise<Map<string, OutcomeLine>> {
  const wanted = new Set(puts.map(sentRecordId));
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = new Map<string, OutcomeLine>();
    for (const line of outcomesIn(logFiles)) {
      const key = outcomeRecordId(line);
      if (wanted.has(key)) found.set(key, line);
    }
    if (found.size === wanted.size) return found;
    if (Date.now() > deadline) throw new Error(`only ${found.size} of ${wanted.size} records have an outcome after ${timeoutMs} ms`);
    await sleep(500);
  }
}

/**
 * Waits until no put record is left parked: each one whose outcomes in the
 * logs are all `parked` has its redriven outcome too. Returns how many of
 * them were parked at some point.
 */
export async function waitForUnparked(logFiles: string[], puts: SentPosition[], timeoutMs = 240_000): Promise<number> {
  const wanted = new Set(puts.map(sentRecordId));
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const lines = new Map<string, OutcomeLine[]>();
    for (const line of outcomesIn(logFiles)) {
      const key = outcomeRecordId(line);
      if (wanted.has(key)) lines.set(key, [...(lines.get(key) ?? []), line]);
    }
    const parked = [...lines.values()].filter((mine) => mine.some((line) => line.outcome === 'parked'));
    const waiting = parked.filter((mine) => mine.every((line) => line.outcome === 'parked')).length;
    if (waiting === 0) return parked.length;
    if (Date.now() > deadline) throw new Error(`${waiting} records are still parked after ${timeoutMs} ms`);
    await sleep(500);
  }
}
