// One client-side rate limit for IAM shared by every record processor of a
// worker (IPS_IAM_RETRY_MODE=shared), instead of one per SDK client (the SDK's
// adaptive mode). IAM's rate limit is per account: the children of a worker
// (one per shard lease) all draw from it, so they back off together.
//
//   - CubicRate learns the rate IAM allows from its throttling, as the SDK's
//     adaptive mode does (CUBIC: down to 70% of the measured rate on a
//     throttle, then back up along a cubic curve), but from the calls and
//     throttles of every child, and with at most one decrease per round trip
//     (a burst of throttles answering one burst of calls is one signal).
//   - TokenGate lets calls through at that rate, first come first served;
//     unlimited until the first throttle.
//   - HostLimiter shares one gate between the processes of a host over a Unix
//     socket: the first process to bind it holds the gate, the others ask it
//     for a token per attempt and tell it what IAM answered. A process that
//     cannot reach a holder (the holder exited, the socket is stale) gates its
//     calls locally until one of them binds the socket again.
//   - limitCalls puts the gate in front of every attempt the SDK makes
//     (inside its retry loop, before signing), so retries wait their turn too.
import { createHash } from 'node:crypto';
import { unlinkSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import type { Server, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** What a rate limiter offers an SDK client: a token before each attempt, and what IAM answered it. */
export interface RateLimiter {
  acquire(signal?: AbortSignal): Promise<void>;
  report(throttled: boolean): void;
}

const BETA = 0.7;
const SCALE = 0.4;
const MIN_RATE = 0.5;

/**
 * The send rate IAM allows, learned from its answers (CUBIC, as in the AWS
 * SDKs' adaptive retry mode). Undefined until the first throttle: no limit.
 */
export class CubicRate {
  private rate: number | undefined;
  private lastMax = 0;
  private lastThrottle = 0;
  private window = 0;
  /** Calls counted per half-second bucket, smoothed: the rate actually sent. */
  private measured = 0;
  private bucketStart = 0;
  private bucketCount = 0;

  constructor(private readonly now: () => number = Date.now) {
    this.bucketStart = now();
  }

  /** Calls per second allowed now; undefined while no throttle was seen. */
  current(): number | undefined {
    if (this.rate === undefined) return undefined;
    // Between throttles the rate climbs back along the cubic curve, then beyond the last maximum.
    const t = (this.now() - this.lastThrottle) / 1000;
    const cubic = SCALE * (t - this.window) ** 3 + this.lastMax;
    // Never more than twice what is actually sent: an idle spell does not open the gate wide.
    return Math.max(MIN_RATE, Math.min(cubic, Math.max(2 * this.measured, this.rate)));
  }

  /** A call was sent. */
  sent(): void {
    const now = this.now();
    this.bucketCount++;
    if (now - this.bucketStart >= 500) {
      const rate = this.bucketCount / ((now - this.bucketStart) / 1000);
      this.measured = 0.8 * rate + 0.2 * this.measured;
      this.bucketStart = now;
      this.bucketCount = 0;
    }
  }

  /**
   * IAM throttled a call. One decrease per round trip: throttles within
   * `coalesceMs` of the last decrease answer the same burst.
   */
  throttled(coalesceMs = 500): void {
    const now = this.now();
    if (this.rate !== undefined && now - this.lastThrottle < coalesceMs) return;
    const base = this.rate === undefined ? Math.max(this.measured, MIN_RATE) : Math.min(this.current() ?? this.measured, Math.max(this.measured, MIN_RATE));
    this.lastMax = base;
    this.window = Math.cbrt((base * (1 - BETA)) / SCALE);
    this.lastThrottle = now;
    this.rate = Math.max(MIN_RATE, base * BETA);
  }
}

/** Lets calls through at the learned rate, in the order they asked. */
export class TokenGate {
  private tokens = 0;
  private last: number;
  private readonly waiting: { resolve: () => void; keepAlive: boolean }[] = [];
  private timer: NodeJS.Timeout | undefined;

  constructor(
    readonly rate: CubicRate = new CubicRate(),
    private readonly now: () => number = Date.now,
  ) {
    this.last = now();
  }

  /**
   * Resolves when the call may go. `keepAlive`: the process must live until
   * then (a caller of its own); false for a token owed to another process.
   */
  acquire(keepAlive = true): Promise<void> {
    return new Promise((resolve) => {
      this.waiting.push({ resolve, keepAlive });
      this.drain();
    });
  }

  /** Calls waiting for a token. */
  get queued(): number {
    return this.waiting.length;
  }

  report(throttled: boolean): void {
    if (throttled) this.rate.throttled();
  }

  private drain(): void {
    const rate = this.rate.current();
    const now = this.now();
    if (rate === undefined) {
      // No throttle seen yet: no limit.
      this.last = now;
      for (const waiter of this.waiting.splice(0)) this.grant(waiter);
      return;
    }
    this.tokens = Math.min(Math.max(1, rate), this.tokens + ((now - this.last) / 1000) * rate);
    this.last = now;
    while (this.waiting.length > 0 && this.tokens >= 1) {
      this.tokens -= 1;
      this.grant(this.waiting.shift()!);
    }
    if (this.waiting.length > 0 && !this.timer) {
      this.timer = setTimeout(() => {
        this.timer = undefined;
        this.drain();
      }, Math.max(1, ((1 - this.tokens) / rate) * 1000));
    }
    // Referenced while a caller of this process waits: a process whose only work is that
    // caller (a CLI run) must not exit before it is served; tokens owed to others do not hold it.
    if (this.timer && !this.waiting.some((waiter) => waiter.keepAlive)) this.timer.unref();
    else this.timer?.ref();
  }

  private grant(waiter: { resolve: () => void }): void {
    this.rate.sent();
    waiter.resolve();
  }
}

/**
 * The gate shared by the processes of one host, over a Unix socket named
 * after `key` (the application, region and IAM endpoint: the processes that
 * share an account's limit). Wire protocol, one byte a message: a follower
 * sends `a` (a token, please), `t` (IAM throttled a call), `s` (IAM answered);
 * the holder sends `g` per token granted, in the order asked.
 */
export class HostLimiter implements RateLimiter {
  private gate: TokenGate | undefined; // while this process holds the socket
  private server: Server | undefined;
  private readonly peers = new Set<Socket>();
  private socket: Socket | undefined; // while this process follows a holder
  private readonly pending: (() => void)[] = [];
  private readonly local = new TokenGate();
  private electing: Promise<void> | undefined;
  /** After an election that found neither a holder nor the socket free: the local gate serves until then. */
  private nextElection = 0;
  private closed = false;
  readonly path: string;

  constructor(key: string, dir = tmpdir()) {
    this.path = join(dir, `ips-iam-${createHash('sha256').update(key).digest('hex').slice(0, 16)}.sock`);
  }

  /** Whether this process holds the shared gate (for logs and tests). */
  get holding(): boolean {
    return this.gate !== undefined;
  }

  /** Whether this process follows another's gate. */
  get following(): boolean {
    return this.socket !== undefined;
  }

  /** The rate the gate this process holds (or its local one) allows now; undefined: no limit yet. */
  get allowedRate(): number | undefined {
    return (this.gate ?? this.local).rate.current();
  }

  async acquire(signal?: AbortSignal): Promise<void> {
    if (!this.gate && !this.socket && Date.now() >= this.nextElection) await this.elect();
    const wait = this.gate
      ? this.gate.acquire()
      : this.socket
        ? new Promise<void>((resolve) => {
            this.pending.push(resolve);
            // Referenced while a token is owed (the process must live to get it), not otherwise.
            this.socket!.ref();
            this.socket!.write('a');
          })
        : this.local.acquire();
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
    if (this.gate) this.gate.report(throttled);
    else if (this.socket) this.socket.write(throttled ? 't' : 's');
    else this.local.report(throttled);
  }

  close(): void {
    this.closed = true;
    held.delete(this);
    this.socket?.destroy();
    this.server?.close();
    for (const peer of this.peers) peer.destroy();
    this.flushPending();
  }

  /** Holds the socket, or follows its holder; neither: gates locally and tries again at the next call. */
  private elect(): Promise<void> {
    this.electing ??= this.tryElect().finally(() => (this.electing = undefined));
    return this.electing;
  }

  private async tryElect(): Promise<void> {
    if (this.closed) return;
    if ((await this.follow()) || (await this.hold()) || (await this.follow())) return;
    // A stale socket removed, or a race lost: the local gate serves for a moment.
    this.nextElection = Date.now() + 1_000;
  }

  private follow(): Promise<boolean> {
    return new Promise((resolve) => {
      const socket = createConnection(this.path);
      let connected = false;
      socket.on('error', () => {
        socket.destroy();
        if (!connected) resolve(false);
      });
      socket.once('connect', () => {
        connected = true;
        socket.unref();
        this.socket = socket;
        socket.on('data', (data: Buffer) => {
          for (let i = 0; i < data.length; i++) if (data[i] === 0x67 /* g */) this.pending.shift()?.();
          if (this.pending.length === 0) socket.unref();
        });
        socket.on('close', () => {
          if (this.socket === socket) this.socket = undefined;
          // The holder is gone: what waited goes now (the SDK's retries still back off), the next call elects.
          this.flushPending();
        });
        resolve(true);
      });
    });
  }

  private hold(): Promise<boolean> {
    return new Promise((resolve) => {
      const gate = new TokenGate();
      const server = createServer((peer) => {
        peer.unref();
        this.peers.add(peer);
        peer.on('close', () => this.peers.delete(peer));
        peer.on('data', (data: Buffer) => {
          for (let i = 0; i < data.length; i++) {
            const byte = data[i];
            if (byte === 0x61 /* a */) void gate.acquire(false).then(() => peer.writable && peer.write('g'));
            else if (byte === 0x74 /* t */) gate.report(true);
            else if (byte === 0x73 /* s */) gate.report(false);
          }
        });
        peer.on('error', () => peer.destroy());
      });
      server.once('error', (error: NodeJS.ErrnoException) => {
        if (error.code !== 'EADDRINUSE') return resolve(false);
        // A socket file nobody answers on (its holder died): remove it, and let the next call elect.
        const probe = createConnection(this.path);
        probe.once('connect', () => {
          probe.destroy();
          resolve(false);
        });
        probe.once('error', () => {
          try {
            unlinkSync(this.path);
          } catch {
            /* another process removed it first */
          }
          resolve(false);
        });
      });
      server.listen(this.path, () => {
        server.unref();
        server.on('error', () => undefined);
        held.set(this, server);
        this.server = server;
        this.gate = gate;
        resolve(true);
      });
    });
  }

  private flushPending(): void {
    for (const resolve of this.pending.splice(0)) resolve();
  }
}

/** Throttling as IAM and the SDK name it (not LimitExceeded: that is IAM's version limit, not its rate). */
export function isThrottle(error: unknown): boolean {
  const e = error as { name?: string; $metadata?: { httpStatusCode?: number } };
  return ['Throttling', 'ThrottlingException', 'TooManyRequestsException', 'RequestLimitExceeded', 'RequestThrottled'].includes(e?.name ?? '') || e?.$metadata?.httpStatusCode === 429;
}

interface MiddlewareClient {
  middlewareStack: { addRelativeTo(middleware: never, options: { relation: 'before' | 'after'; toMiddleware: string; name?: string; override?: boolean }): void };
}

/**
 * Puts `limiter` in front of every attempt of every call of `client`: inside
 * the SDK's retry loop, just before the request is signed (so a wait never
 * ages a signature), so that a retry waits for a token too, and every answer
 * tells the limiter whether IAM throttled.
 */
export function limitCalls(client: MiddlewareClient, limiter: RateLimiter, name: string): void {
  const middleware =
    (next: (args: unknown) => Promise<unknown>, context: Record<string, unknown>) =>
    async (args: unknown) => {
      const signal = (context.__smithy_context as { abortSignal?: AbortSignal } | undefined)?.abortSignal;
      await limiter.acquire(signal);
      try {
        const result = await next(args);
        limiter.report(false);
        return result;
      } catch (error) {
        limiter.report(isThrottle(error));
        throw error;
      }
    };
  client.middlewareStack.addRelativeTo(middleware as never, { relation: 'before', toMiddleware: 'httpSigningMiddleware', name, override: true });
}

const limiters = new Map<string, HostLimiter>();

/** The sockets this process holds: a socket file outlives the process unless removed, and the next holder would find it stale. */
const held = new Map<HostLimiter, Server>();
process.once('exit', () => {
  for (const [limiter, server] of held) {
    server.close();
    try {
      unlinkSync(limiter.path);
    } catch {
      /* gone already */
    }
  }
});

/** The process's limiter for `key` (made once; the processes of a host that share a key share its gate). */
export function hostLimiter(key: string): HostLimiter {
  let limiter = limiters.get(key);
  if (!limiter) limiters.set(key, (limiter = new HostLimiter(key)));
  return limiter;
}
