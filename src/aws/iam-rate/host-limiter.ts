// One IAM rate gate shared by the processes of a host over a Unix socket. The
// first process to bind the socket holds the gate (token-gate.ts), the others
// follow it: they ask it for a token per attempt and tell it what IAM
// answered. The socket lies in the user's private folder and a follower
// presents the secret kept there (private-dir.ts); the holder hangs up on any
// other peer.
//
// The holder is one process, so it must never be a single point of failure:
//   - a follower owed a token hears from the holder at least every beat (a
//     token, or a keep-alive while its tokens wait their turn at the learned
//     rate). After `waitMs` of silence (the holder stopped: SIGSTOP, a long
//     pause, a host under swap), the follower leaves it: what it waits for
//     goes through its own gate, the same adaptive limit learned from this
//     process's own throttles, and it tries to re-join after `rejoinMs`;
//   - a holder that is gone (its socket closed, the file stale) is replaced by
//     the next process to bind the socket; meanwhile calls are gated locally.
//
// This module is the election and the follower's side; gate-holder.ts is the
// holder's, wire.ts the protocol between them.
import { createHash } from 'node:crypto';
import { createConnection } from 'node:net';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MIN_RATE } from './cubic-rate.js';
import { GateHolder } from './gate-holder.js';
import { openPrivateDir, PrivateDirRefused, privateDirPath } from './private-dir.js';
import { TokenGate } from './token-gate.js';
import type { RateLimiter } from './token-gate.js';
import { BYTE, RateReader } from './wire.js';

/**
 * How long a follower owed a token waits without a word from the holder:
 * two and a half tokens of the gate at its slowest (one every 1 / MIN_RATE =
 * 2 s), 5 s. A holder that runs sends each follower it owes a keep-alive
 * every quarter of that, so only a holder that stopped running is silent so
 * long; a wait at the learned rate, however long, is never taken for one.
 */
export const DEFAULT_HOLDER_WAIT_MS = Math.round((2.5 * 1000) / MIN_RATE);

/** What the limiter tells its owner (a log line and a metric each). */
export type LimiterEvent = { kind: 'fallback'; reason: 'holder-silent' | 'private-dir-refused'; detail?: string } | { kind: 'rejoined' } | { kind: 'peer-refused' };

export interface HostLimiterOptions {
  /** How long a follower waits without a word from the holder before it gates its calls itself. */
  waitMs?: number;
  /** After leaving a holder (or refusing the private folder), how long until the next try to join. Default: 6 × waitMs. */
  rejoinMs?: number;
  onEvent?: (event: LimiterEvent) => void;
}

type Followed = 'following' | 'silent' | 'absent';

export class HostLimiter implements RateLimiter {
  private holder: GateHolder | undefined; // while this process holds the socket
  private socket: Socket | undefined; // while this process follows a holder
  /** Tokens owed to this process by the holder, in the order asked; `onHeld` hears that the holder holds them at the learned rate. */
  private readonly pending: { resolve: () => void; onHeld?: (() => void) | undefined }[] = [];
  private lastHeard = 0;
  private watchdog: NodeJS.Timeout | undefined;
  private readonly local = new TokenGate();
  /** The rate the holder's gate allows, as it last told this follower; undefined until told. */
  private toldRate: number | undefined;
  private electing: Promise<void> | undefined;
  /** Until then, the local gate serves (after an election that found neither a holder nor the socket free, or a fallback). */
  private nextElection = 0;
  /** Why calls are gated locally, once a fallback was told; cleared (and told) on re-joining. */
  private fallenBack: string | undefined;
  private secret: Buffer | undefined;
  private closed = false;
  readonly path: string;
  /** The user's private folder the socket and the secret lie in. */
  readonly dir: string;
  private readonly waitMs: number;
  private readonly rejoinMs: number;

  /** `parent`: the folder the private folder is made in (the temporary folder). Nothing is made before the first call. */
  constructor(
    key: string,
    parent = tmpdir(),
    private readonly options: HostLimiterOptions = {},
  ) {
    this.dir = privateDirPath(parent);
    this.path = join(this.dir, `ips-iam-${createHash('sha256').update(key).digest('hex').slice(0, 16)}.sock`);
    this.waitMs = options.waitMs ?? DEFAULT_HOLDER_WAIT_MS;
    this.rejoinMs = options.rejoinMs ?? 6 * this.waitMs;
  }

  /** Whether this process holds the shared gate (for logs and tests). */
  get holding(): boolean {
    return this.holder !== undefined;
  }

  /** Whether this process follows another's gate. */
  get following(): boolean {
    return this.socket !== undefined;
  }

  /**
   * Calls per second the gate this process uses allows now: the one it holds,
   * the holder's as last told (every beat), or its local one; Infinity while
   * no throttle has set a limit; undefined while a follower was not told.
   */
  get allowedRate(): number | undefined {
    if (this.socket) return this.toldRate;
    return (this.holder?.gate ?? this.local).rate.current() ?? Infinity;
  }

  async acquire(signal?: AbortSignal, onHeld?: () => void): Promise<void> {
    if (!this.holder && !this.socket && Date.now() >= this.nextElection) {
      // After a fallback the call does not wait for the election: the holder may still be stopped.
      if (this.fallenBack) void this.elect();
      else await this.elect();
    }
    const wait = this.holder ? this.holder.gate.acquire(true, onHeld) : this.socket ? this.ask(this.socket, onHeld) : this.local.acquire(true, onHeld);
    if (!signal) return wait;
    if (signal.aborted) throw signal.reason;
    await new Promise<void>((resolve, reject) => {
      const onAbort = () => reject(signal.reason);
      signal.addEventListener('abort', onAbort, { once: true });
      void wait.then(() => {
        signal.removeEventListener('abort', onAbort);
        resolve();
      });
    });
  }

  report(throttled: boolean): void {
    if (this.holder) this.holder.gate.report(throttled);
    else if (this.socket) this.socket.write(throttled ? 't' : 's');
    else this.local.report(throttled);
  }

  /** Leaves the gate: a held socket is closed and its file removed, a followed one closed; what waits goes. */
  close(): void {
    this.closed = true;
    if (this.watchdog) clearTimeout(this.watchdog);
    this.socket?.destroy();
    this.holder?.close();
    this.flushPending();
  }

  private tell(event: LimiterEvent): void {
    this.options.onEvent?.(event);
  }

  private fallBack(reason: 'holder-silent' | 'private-dir-refused', detail?: string): void {
    this.nextElection = Date.now() + this.rejoinMs;
    if (this.fallenBack) return;
    this.fallenBack = reason;
    this.tell({ kind: 'fallback', reason, ...(detail ? { detail } : {}) });
  }

  private joined(): void {
    if (!this.fallenBack) return;
    this.fallenBack = undefined;
    this.tell({ kind: 'rejoined' });
  }

  /** Holds the socket, or follows its holder; neither: gates locally and tries again later. */
  private elect(): Promise<void> {
    this.electing ??= this.tryElect().finally(() => (this.electing = undefined));
    return this.electing;
  }

  private async tryElect(): Promise<void> {
    if (this.closed) return;
    try {
      this.secret ??= openPrivateDir(this.dir);
    } catch (error) {
      return this.fallBack('private-dir-refused', error instanceof PrivateDirRefused ? error.message : String(error));
    }
    let followed = await this.follow();
    if (followed === 'absent' && !(await this.hold())) followed = await this.follow();
    if (this.holder || followed === 'following') return this.joined();
    if (followed === 'silent') return this.fallBack('holder-silent');
    // A stale socket removed, or a race lost: the local gate serves for a moment.
    this.nextElection = Date.now() + 1_000;
  }

  /** A token from the holder; the watchdog leaves the holder if it stays silent. */
  private ask(socket: Socket, onHeld?: () => void): Promise<void> {
    return new Promise<void>((resolve) => {
      if (this.pending.length === 0) this.lastHeard = Date.now();
      this.pending.push({ resolve, onHeld });
      // Referenced while a token is owed (the process must live to get it), not otherwise.
      socket.ref();
      socket.write('a');
      this.armWatchdog();
    });
  }

  private armWatchdog(): void {
    if (this.watchdog) return;
    const arm = (ms: number) => {
      const due = Date.now() + ms;
      this.watchdog = setTimeout(() => check(due), ms);
      this.watchdog.unref();
    };
    const check = (due: number) => {
      this.watchdog = undefined;
      if (!this.socket || this.pending.length === 0) return;
      const now = Date.now();
      // Woken long after it was due: this process did not run either (the whole worker was
      // paused, or starved). The silence it slept through says nothing of the holder: count afresh.
      if (now - due > this.waitMs / 2) this.lastHeard = now;
      const silentFor = now - this.lastHeard;
      if (silentFor >= this.waitMs) return this.leaveHolder();
      arm(this.waitMs - silentFor);
    };
    arm(this.waitMs);
  }

  /** The holder stopped answering: what waits for it goes through the local gate, and the next try to join is later. */
  private leaveHolder(): void {
    const socket = this.socket;
    this.socket = undefined;
    this.toldRate = undefined;
    socket?.destroy();
    this.fallBack('holder-silent');
    for (const { resolve, onHeld } of this.pending.splice(0)) void this.local.acquire(true, onHeld).then(resolve);
  }

  /** Connects, presents the secret and waits for the welcome, at most `waitMs`. */
  private follow(): Promise<Followed> {
    return new Promise((resolve) => {
      const socket = createConnection(this.path);
      const rates = new RateReader((perSecond) => {
        if (this.socket === socket) this.toldRate = perSecond;
      });
      let settled = false;
      const settle = (followed: Followed) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (followed !== 'following') socket.destroy();
        resolve(followed);
      };
      // Connected but not welcomed: the holder's process does not run (the kernel accepts for it).
      const timer = setTimeout(() => settle('silent'), this.waitMs);
      timer.unref();
      socket.on('error', () => settle('absent'));
      socket.once('connect', () => socket.write(Buffer.concat([this.secret!, Buffer.from('\n')])));
      socket.on('data', (data: Buffer) => {
        let from = 0;
        if (!settled) {
          if (data[0] !== BYTE.welcome) return settle('absent');
          from = 1;
          socket.unref();
          this.socket = socket;
          settle('following');
        }
        this.lastHeard = Date.now();
        for (let i = from; i < data.length; i++) {
          if (rates.read(data[i]!)) continue;
          if (data[i] === BYTE.grant) this.pending.shift()?.resolve();
          // Held at the learned rate (a keep-alive says the same of tokens still owed): every token owed waits its turn.
          else if (data[i] === BYTE.held || data[i] === BYTE.keepAlive) for (const { onHeld } of this.pending) onHeld?.();
        }
        if (this.pending.length === 0) socket.unref();
      });
      socket.on('close', () => {
        settle('absent');
        if (this.socket !== socket) return;
        this.socket = undefined;
        this.toldRate = undefined;
        // The holder is gone: what waited goes now (the SDK's retries still back off), the next call elects.
        this.flushPending();
      });
    });
  }

  private async hold(): Promise<boolean> {
    this.holder = await GateHolder.bind(this.path, { secret: this.secret!, waitMs: this.waitMs, onRefused: () => this.tell({ kind: 'peer-refused' }) });
    if (this.holder && this.closed) this.holder.close();
    return this.holder !== undefined;
  }

  private flushPending(): void {
    for (const { resolve } of this.pending.splice(0)) resolve();
  }
}
