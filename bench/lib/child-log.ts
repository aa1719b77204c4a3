// Reads what the record-processor children wrote to the daemon's log (the
// daemon passes their stderr through): the `"msg":"metrics"` line each child
// logs when the daemon closes its stdin, and start-up lines.
import { existsSync, readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { readLogLines } from '../../tools/oracle/outcome-log.js';

export interface MetricsLine {
  pid: number;
  time: number;
  metrics: Record<string, number>;
  rssBytes?: number;
}

const jsonLines = (logFile: string, marker: string) => readLogLines<Record<string, unknown>>(logFile, marker);

/** The last metrics line of each child process in the log. */
export function lastMetricsPerChild(logFile: string): MetricsLine[] {
  const byPid = new Map<number, MetricsLine>();
  for (const line of jsonLines(logFile, '"msg":"metrics"')) {
    if (typeof line.pid !== 'number' || typeof line.metrics !== 'object') continue;
    byPid.set(line.pid, line as unknown as MetricsLine);
  }
  return [...byPid.values()];
}

/**
 * aws_calls{operation=..,outcome=..,service=..} counters summed over children,
 * by service and by operation, and by operation for the calls that succeeded.
 */
export function awsCalls(lines: MetricsLine[]): { byService: Record<string, number>; byOperation: Record<string, number>; succeededByOperation: Record<string, number> } {
  const byService: Record<string, number> = {};
  const byOperation: Record<string, number> = {};
  const succeededByOperation: Record<string, number> = {};
  for (const line of lines) {
    for (const [key, value] of Object.entries(line.metrics)) {
      const match = /^aws_calls\{(.*)\}$/.exec(key);
      if (!match) continue;
      const labels = Object.fromEntries(match[1]!.split(',').map((pair) => pair.split('=') as [string, string]));
      const service = labels.service ?? 'unknown';
      byService[service] = (byService[service] ?? 0) + value;
      const operation = `${service}:${labels.operation ?? 'unknown'}`;
      byOperation[operation] = (byOperation[operation] ?? 0) + value;
      if (labels.outcome === 'ok') succeededByOperation[operation] = (succeededByOperation[operation] ?? 0) + value;
    }
  }
  return { byService, byOperation, succeededByOperation };
}

/** Waits until `count` lines matching `pattern` are in the log. */
export async function waitForLines(logFile: string, pattern: RegExp, count: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (existsSync(logFile)) {
      const matches = readFileSync(logFile, 'utf8')
        .split('\n')
        .filter((line) => pattern.test(line)).length;
      if (matches >= count) return true;
    }
    await sleep(200);
  }
  return false;
}
