// Peak memory of the daemon's record-processor children, read from /proc
// while they run: VmHWM is the kernel's high-water mark of a process's
// resident set, so sampling it now and then still sees the true peak, as long
// as a sample lands before the process exits.
import { readFileSync } from 'node:fs';
import { childProcessesOf } from '../../tools/harness/processes.js';

export interface ChildMemory {
  pid: number;
  command: string;
  /** Peak resident set (VmHWM), bytes. */
  peakRssBytes: number;
}

function memoryOf(pid: number): ChildMemory | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const hwm = /^VmHWM:\s+(\d+) kB/m.exec(status);
    const command = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean).join(' ');
    if (!hwm) return undefined;
    return { pid, command, peakRssBytes: Number(hwm[1]) * 1024 };
  } catch {
    return undefined;
  }
}

/** Samples the peak RSS of every node child of `parent` until stopped. */
export class ChildMemorySampler {
  private readonly seen = new Map<number, ChildMemory>();
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly parent: number,
    intervalMs = 250,
  ) {
    this.timer = setInterval(() => this.sample(), intervalMs);
    this.timer.unref();
    this.sample();
  }

  sample(): void {
    for (const pid of childProcessesOf(this.parent)) {
      const memory = memoryOf(pid);
      if (!memory || !/\bnode\b/.test(memory.command.split(' ')[0] ?? '')) continue;
      const known = this.seen.get(pid);
      if (!known || memory.peakRssBytes > known.peakRssBytes) this.seen.set(pid, memory);
    }
  }

  /** What has been seen so far (samples once more first). */
  known(): ChildMemory[] {
    this.sample();
    return [...this.seen.values()];
  }

  stop(): ChildMemory[] {
    this.sample();
    clearInterval(this.timer);
    return [...this.seen.values()];
  }
}
