// The processes on this machine, read from /proc: which ones a process
// started, which are a daemon's record-processor children, and which belong
// to a process group. Reliability runs kill, stop and sample them; the
// benchmark reads their memory.
import { readdirSync, readFileSync } from 'node:fs';

export interface ProcStat {
  pid: number;
  /** R, S, T (stopped), Z, ... */
  state: string;
  ppid: number;
  pgrp: number;
}

export function procStat(pid: number): ProcStat | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // pid (comm) state ppid pgrp ...: comm may contain spaces and parentheses.
    const [state, ppid, pgrp] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { pid, state: state!, ppid: Number(ppid), pgrp: Number(pgrp) };
  } catch {
    return undefined; // gone meanwhile
  }
}

export function allProcesses(): ProcStat[] {
  return readdirSync('/proc')
    .filter((entry) => /^\d+$/.test(entry))
    .map((entry) => procStat(Number(entry)))
    .filter((stat): stat is ProcStat => stat !== undefined);
}

export function commandLineOf(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean).join(' ');
  } catch {
    return '';
  }
}

/** Processes whose parent is `parent`. */
export function childProcessesOf(parent: number): number[] {
  return allProcesses()
    .filter((stat) => stat.ppid === parent)
    .map((stat) => stat.pid);
}

/** A daemon's record-processor children (node dist/intake/main.js), one per shard lease. */
export function recordProcessorsOf(daemonPid: number): number[] {
  return childProcessesOf(daemonPid).filter((pid) => commandLineOf(pid).includes('intake/main.js'));
}
