// The simulation's scheduler: one virtual clock, and every await of the
// simulated world (a ledger call, an IAM call, a sleep) is a point the
// scheduler resolves in an order drawn from the seed. Between two points the
// process's own microtasks run to completion, so a seed replays exactly.
//
// A point is gated when it belongs to a simulated process (a worker sends a
// request, reads an answer, wakes from a sleep): it waits while the process is
// paused and never resolves once the process is killed. A point that is not
// gated is the network and the service (a request that was sent lands whether
// or not its sender still runs), and lands within LANDING_BOUND_MS of its send.
import { seededRandom } from '../../src/ops/load.js';

export interface Proc {
  id: string;
  killed: boolean;
  pausedUntil: number;
}

interface Point {
  proc: Proc | undefined;
  label: string;
  /** Not before this time (a slow network). */
  since: number;
  resolve: () => void;
}

interface Timer {
  id: number;
  at: number;
  every: number | undefined;
  run: () => void;
}

/** A request in flight is slow at times: it lands up to this long after it was sent (below the late-write time the product assumes). */
export const SLOW_LANDING_MS = 2_500;
/** Past its time, a request in flight lands before anything else. */
const OVERDUE_MS = 300;

export class Scheduler {
  now = Date.UTC(2026, 0, 1);
  readonly random: () => number;
  readonly trace: string[] = [];
  steps = 0;
  private points: Point[] = [];
  private timers: Timer[] = [];
  private nextTimer = 1;

  constructor(
    readonly seed: number,
    private readonly keepTrace = false,
    /** How often a request lands late (SLOW_LANDING_MS at most). */
    private readonly lateLanding = 0.05,
  ) {
    this.random = seededRandom(seed);
  }

  log(line: string): void {
    if (this.keepTrace) this.trace.push(`${String(this.now - Date.UTC(2026, 0, 1)).padStart(7)}ms ${line}`);
  }

  chance(p: number): boolean {
    return this.random() < p;
  }

  int(below: number): number {
    return Math.floor(this.random() * below);
  }

  /** Waits until the scheduler picks this point (a process's point: only while it runs). */
  point(proc: Proc | undefined, label: string): Promise<void> {
    return new Promise((resolve) => this.points.push({ proc, label, since: this.now, resolve }));
  }

  /** A request's landing: now or soon, and now and then late (a slow network), never past SLOW_LANDING_MS. */
  landing(label: string): Promise<void> {
    const late = this.chance(this.lateLanding) ? this.int(SLOW_LANDING_MS) : 0;
    return new Promise((resolve) => this.points.push({ proc: undefined, label, since: this.now + late, resolve }));
  }

  /** A process's sleep on the virtual clock. */
  async sleep(proc: Proc | undefined, ms: number): Promise<void> {
    await new Promise<void>((resolve) => this.setTimer(resolve, ms, undefined));
    await this.point(proc, 'wake');
  }

  setTimer(run: () => void, ms: number, every: number | undefined): number {
    const id = this.nextTimer++;
    this.timers.push({ id, at: this.now + Math.max(0, ms), every, run });
    return id;
  }

  clearTimer(id: number): void {
    this.timers = this.timers.filter((timer) => timer.id !== id);
  }

  /**
   * One step: let the world's microtasks settle, then resolve one point (or,
   * when none can go, move the clock to the next timer or the end of a pause).
   * False when nothing is left to do.
   */
  async step(): Promise<boolean> {
    this.fireDue();
    // The world's microtasks run to completion first: every chain reaches its next point.
    await new Promise((resolve) => setImmediate(resolve));
    this.steps++;
    this.points = this.points.filter((point) => !point.proc?.killed);
    const ready = this.points.filter((point) => (point.proc ? point.proc.pausedUntil <= this.now : point.since <= this.now));
    if (ready.length === 0) {
      const next = Math.min(...this.timers.map((timer) => timer.at), ...this.points.map((point) => point.proc?.pausedUntil ?? point.since));
      if (!Number.isFinite(next)) return false;
      this.now = Math.max(this.now, next);
      return true;
    }
    // A request in flight past its landing bound goes first; otherwise any ready point may.
    const overdue = ready.find((point) => !point.proc && this.now - point.since >= OVERDUE_MS);
    const chosen = overdue ?? ready[this.int(ready.length)]!;
    this.points.splice(this.points.indexOf(chosen), 1);
    this.now += this.int(60);
    this.log(`${chosen.proc?.id ?? 'net'} ${chosen.label}`);
    chosen.resolve();
    return true;
  }

  private fireDue(): void {
    for (;;) {
      const due = this.timers.filter((timer) => timer.at <= this.now).sort((a, b) => a.at - b.at || a.id - b.id)[0];
      if (!due) return;
      if (due.every === undefined) this.timers.splice(this.timers.indexOf(due), 1);
      else due.at += due.every;
      due.run();
    }
  }
}

/**
 * Puts the virtual clock in place of Date.now and the timer functions while
 * `run` runs (the claim keeper, the duplicate cache and the ledger read them),
 * and restores them after.
 */
export async function withVirtualTime<T>(scheduler: Scheduler, run: () => Promise<T>): Promise<T> {
  const saved = {
    now: Date.now,
    random: Math.random,
    setTimeout: globalThis.setTimeout,
    setInterval: globalThis.setInterval,
    clearTimeout: globalThis.clearTimeout,
    clearInterval: globalThis.clearInterval,
  };
  const handle = (id: number) => ({ id, unref: () => handle(id), ref: () => handle(id), hasRef: () => false, refresh: () => handle(id), [Symbol.toPrimitive]: () => id });
  const idOf = (timer: unknown) => (typeof timer === 'object' && timer !== null ? (timer as { id: number }).id : Number(timer));
  Date.now = () => scheduler.now;
  // The code under test draws its own jitter (faults/backoff.ts): from a stream of the seed's own, so
  // that a seed replays exactly, and apart from the scheduler's draws.
  Math.random = seededRandom(scheduler.seed ^ 0x5bd1e995);
  globalThis.setTimeout = ((run: () => void, ms = 0) => handle(scheduler.setTimer(run, ms, undefined))) as never;
  globalThis.setInterval = ((run: () => void, ms = 0) => handle(scheduler.setTimer(run, ms, Math.max(1, ms)))) as never;
  globalThis.clearTimeout = ((timer: unknown) => timer !== undefined && scheduler.clearTimer(idOf(timer))) as never;
  globalThis.clearInterval = globalThis.clearTimeout as never;
  try {
    return await run();
  } finally {
    Date.now = saved.now;
    Math.random = saved.random;
    globalThis.setTimeout = saved.setTimeout;
    globalThis.setInterval = saved.setInterval;
    globalThis.clearTimeout = saved.clearTimeout;
    globalThis.clearInterval = saved.clearInterval;
  }
}
