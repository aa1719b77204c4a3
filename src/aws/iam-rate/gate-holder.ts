// The holder's side of the host limiter (host-limiter.ts): the process that
// bound the socket serves the gate to its followers. A peer is served once it
// presented the secret; any other is hung up on, unanswered and unheard, and
// told of (`onRefused`). Every follower still owed a token hears from the
// holder at least every quarter of `waitMs` (a token or a keep-alive), so a
// follower's silence bound is never reached while the holder runs; every
// follower is told the gate's rate as often (and on joining).
import { unlinkSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import type { Server, Socket } from 'node:net';
import { isSecret, SECRET_LINE_LENGTH } from './private-dir.js';
import { TokenGate } from './token-gate.js';
import { BYTE, rateMessage } from './wire.js';

export interface GateHolderOptions {
  secret: Buffer;
  /** The followers' silence bound: keep-alives go four times as often, and a peer has that long to present the secret. */
  waitMs: number;
  onRefused?: () => void;
}

export class GateHolder {
  readonly gate = new TokenGate();
  private readonly peers = new Set<Socket>(); // every connection, admitted or not
  private readonly owed = new Map<Socket, number>(); // tokens owed to each admitted follower
  private readonly beat: NodeJS.Timeout;
  private closed = false;

  private constructor(
    private readonly server: Server,
    readonly path: string,
    private readonly options: GateHolderOptions,
  ) {
    server.on('connection', (peer: Socket) => this.admit(peer));
    this.beat = setInterval(
      () => {
        const rate = rateMessage(this.gate.rate.current());
        for (const [peer, owed] of this.owed) if (peer.writable) peer.write(owed > 0 ? `k${rate}` : rate);
      },
      Math.max(10, Math.floor(options.waitMs / 4)),
    );
    this.beat.unref();
  }

  /**
   * Binds the socket at `path`: the holder, or undefined when another process
   * holds it, or when a stale socket file (nobody answers on it: its holder
   * died) was found and removed for the next try.
   */
  static bind(path: string, options: GateHolderOptions): Promise<GateHolder | undefined> {
    return new Promise((resolve) => {
      const server = createServer();
      server.once('error', (error: NodeJS.ErrnoException) => {
        if (error.code !== 'EADDRINUSE') return resolve(undefined);
        const probe = createConnection(path);
        probe.once('connect', () => {
          probe.destroy();
          resolve(undefined);
        });
        probe.once('error', () => {
          try {
            unlinkSync(path);
          } catch {
            /* another process removed it first */
          }
          resolve(undefined);
        });
      });
      server.listen(path, () => {
        server.unref();
        server.on('error', () => undefined);
        resolve(new GateHolder(server, path, options));
      });
    });
  }

  /** Closes the socket and every connection, and removes the socket file (it would outlive the process, and the next holder find it stale). */
  close(): void {
    this.closed = true;
    clearInterval(this.beat);
    this.server.close();
    for (const peer of this.peers) peer.destroy();
    try {
      unlinkSync(this.path);
    } catch {
      /* gone already */
    }
  }

  private admit(peer: Socket): void {
    peer.unref();
    this.peers.add(peer);
    let heard = Buffer.alloc(0);
    let admitted = false;
    const refuse = () => {
      clearTimeout(deadline);
      peer.destroy();
      if (!this.closed) this.options.onRefused?.();
    };
    const deadline = setTimeout(refuse, this.options.waitMs);
    deadline.unref();
    peer.on('error', () => peer.destroy());
    peer.on('close', () => {
      clearTimeout(deadline);
      this.peers.delete(peer);
      this.owed.delete(peer);
    });
    peer.on('data', (data: Buffer) => {
      if (!admitted) {
        heard = Buffer.concat([heard, data]);
        const end = heard.indexOf(BYTE.newline);
        if (end < 0) return void (heard.length >= SECRET_LINE_LENGTH && refuse());
        if (!isSecret(heard.subarray(0, end), this.options.secret)) return refuse();
        admitted = true;
        clearTimeout(deadline);
        this.owed.set(peer, 0);
        peer.write(`o${rateMessage(this.gate.rate.current())}`);
        data = heard.subarray(end + 1);
      }
      this.serve(peer, data);
    });
  }

  private serve(peer: Socket, data: Buffer): void {
    for (let i = 0; i < data.length; i++) {
      const byte = data[i];
      if (byte === BYTE.ask) {
        this.owed.set(peer, (this.owed.get(peer) ?? 0) + 1);
        const held = () => void (peer.writable && peer.write('h'));
        void this.gate.acquire(false, held).then(() => {
          if (!peer.writable) return;
          this.owed.set(peer, (this.owed.get(peer) ?? 1) - 1);
          peer.write('g');
        });
      } else if (byte === BYTE.throttled) this.gate.report(true);
      else if (byte === BYTE.answered) this.gate.report(false);
    }
  }
}
