// The guardian of `npm start`: a small process of its own (own process group,
// so a terminal's Ctrl-C does not reach it) that watches npm start. Should npm
// start end without stopping what it started (kill -9, a wrapper that kills
// it, a crash), the guardian stops the process groups it was given, in order:
// the daemon first (gracefully, as npm start would), then the emulators. When
// npm start stops them itself, the guardian finds nothing left and ends.
// Usage: guardian.ts <owner pid> <daemon grace ms> <pgid>...
import { isAlive, killGroup } from '../../src/daemon/processes.js';
import { setTimeout as sleep } from 'node:timers/promises';

const [owner, graceMs, ...groups] = process.argv.slice(2).map(Number);
if (!owner || graceMs === undefined || groups.length === 0) {
  console.error('usage: guardian.ts <owner pid> <daemon grace ms> <pgid>...');
  process.exit(2);
}

while (isAlive(owner) && groups.some((pid) => isAlive(pid))) await sleep(500);
const [first, ...rest] = groups;
if (first !== undefined && isAlive(first)) await killGroup(first, graceMs);
await Promise.all(rest.map((pid) => killGroup(pid)));
