// Child processes the daemon launcher (and the local stack) start in their
// own process groups, so that stopping one stops everything it started.
import { setTimeout as sleep } from 'node:timers/promises';

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** SIGTERM to the process group, then SIGKILL whatever is left after graceMs (at once when 0). */
export async function killGroup(pid: number, graceMs = 5_000): Promise<void> {
  const signal = (sig: NodeJS.Signals) => {
    try {
      process.kill(-pid, sig);
    } catch {
      /* already gone */
    }
  };
  // No grace: killed at once, so that nothing in the group can report the others' deaths as errors first.
  if (graceMs > 0) signal('SIGTERM');
  const deadline = Date.now() + graceMs;
  while (Date.now() < deadline && isAlive(pid)) await sleep(100);
  signal('SIGKILL');
  while (isAlive(pid)) await sleep(50);
}
