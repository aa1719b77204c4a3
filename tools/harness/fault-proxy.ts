// A loopback HTTP proxy that sits between the record processor and an
// emulator and fails a share of the calls the way AWS does: throttling, 5xx,
// connection resets (before the call reaches the emulator, and after: the
// effect happened but the answer is lost), and slow answers. Only calls made
// by the JavaScript SDK (the record processor) are faulted; the daemon's own
// Java calls to its lease table pass untouched, so the test is about the
// processor, not about KCL lease churn.
//
// With `latencyMs` every call from the processor waits that long before it is
// forwarded: the benchmark uses it (rate 0) to stand in for the network round
// trip to AWS, which the emulators on loopback do not have.
//
// With `rateLimit` the proxy enforces a service's rate limit: a token bucket
// per account (token-bucket.ts; the account is the call's access key), and a
// call that finds it empty is refused the way the service refuses it (IAM:
// HTTP 400, `Throttling`, its XML error body; DynamoDB: ThrottlingException)
// without reaching the emulator. The benchmark's `--iam-rate` uses it. It
// applies after the latency (the limit is the server's) and before random faults.
//
// With `clockSkewMs` (or `skewClock()` while it runs) the answers to the
// processor carry a Date header that far from this host's clock, as AWS's
// answers do when the processor's host clock is off: the SDK measures its
// clock offset from that header (`systemClockOffset`).
//
// `inject()` scripts a fault for the next call of one operation (an IAM Action
// or a DynamoDB target), or for the n-th from now, so a test can lose exactly
// the answer it means to.
// With `transactions` (protocol dynamodb) a write that meets a transaction in
// progress on one of its items is refused as DynamoDB refuses it
// (TransactionCanceledException with `TransactionConflict`, or
// TransactionConflictException), which DynamoDB Local has not been seen to do
// (dynamodb-transactions.ts).
// With `realisticIam` (protocol iam) the proxy forwards to a realistic-IAM
// layer in front of the emulator (reads lag writes, DeletePolicy conflicts;
// see realistic-iam.ts), so faults and IAM's own semantics combine.
import { createServer, request } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { seededRandom } from '../../src/ops/load.js';
import { TransactionsInProgress } from './dynamodb-transactions.js';
import type { TransactionOptions } from './dynamodb-transactions.js';
import { startRealisticIam } from './realistic-iam.js';
import type { RealisticIam, RealisticIamOptions } from './realistic-iam.js';
import { AccountBuckets, accountOf } from './token-bucket.js';

export type FaultKind = 'throttle' | 'server-error' | 'reset-before' | 'reset-after' | 'slow';
export type Protocol = 'dynamodb' | 'iam';

export interface FaultProxy {
  endpoint: string;
  /** Faults injected so far, by kind. */
  injected: Record<FaultKind, number>;
  /** Calls forwarded from the processor (faulted or not). */
  calls: number;
  /** Calls from the processor received and not answered yet (held, forwarded, or waiting for the emulator). */
  inFlight: number;
  /** Calls refused by the rate limit (`rateLimit`), all accounts. */
  rateLimited: number;
  /**
   * The next `times` calls of `operation` (IAM Action, DynamoDB operation) get
   * `kind`, after `skip` calls of it that pass untouched (to lose, say, the
   * answer of a step's second UpdateItem and not its first).
   */
  inject(kind: FaultKind, operation: string, times?: number, skip?: number): void;
  /** Drops the scripted faults not used yet. */
  clearInjected(): void;
  /** From now on every call made as `account` fails (503 ServiceUnavailable) while `failing`. */
  failAccount(account: string, failing: boolean): void;
  /** Calls failed by failAccount, per account. */
  failedCalls(account: string): number;
  /** Calls let through and refused by the rate limit, per account (`rateLimit`). */
  accountCounts(): Map<string, { allowed: number; refused: number }>;
  /** AssumeRole calls forwarded (IAM protocol, STS through the same proxy), per account of the role named. */
  assumeRoles(): Map<string, number>;
  /** From now on, the answers to the processor say the time is `ms` from this host's (positive: the service's clock is ahead). */
  skewClock(ms: number): void;
  /** The realistic-IAM layer behind the proxy, when asked for. */
  realisticIam?: RealisticIam;
  /** DynamoDB's transactions in progress, when asked for (`transactions`): what they refused. */
  transactions?: TransactionsInProgress;
  close(): Promise<void>;
}

const KINDS: FaultKind[] = ['throttle', 'server-error', 'reset-before', 'reset-after', 'slow'];

function errorBody(protocol: Protocol, kind: 'throttle' | 'server-error', message = 'injected'): { status: number; type: string; body: string } {
  if (protocol === 'dynamodb') {
    return kind === 'throttle'
      ? {
          status: 400,
          type: 'application/x-amz-json-1.0',
          body: JSON.stringify({ __type: 'com.amazonaws.dynamodb.v20120810#ThrottlingException', message: 'Rate of requests exceeds the allowed throughput.' }),
        }
      : { status: 500, type: 'application/x-amz-json-1.0', body: JSON.stringify({ __type: 'com.amazonaws.dynamodb.v20120810#InternalServerError', message: 'Internal server error' }) };
  }
  const [status, type, code] = kind === 'throttle' ? [400, 'Sender', 'Throttling'] : [503, 'Receiver', 'ServiceUnavailable'];
  return {
    status,
    type: 'text/xml',
    body: `<ErrorResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/"><Error><Type>${type}</Type><Code>${code}</Code><Message>${message}</Message></Error><RequestId>fault-proxy</RequestId></ErrorResponse>`,
  };
}

/** The operation a call names: `Action=` of an IAM form body, or the DynamoDB target header. */
function operationOf(protocol: Protocol, req: IncomingMessage, body: Buffer): string {
  if (protocol === 'dynamodb')
    return (
      String(req.headers['x-amz-target'] ?? '')
        .split('.')
        .pop() ?? ''
    );
  return new URLSearchParams(body.toString('utf8')).get('Action') ?? '';
}

export interface FaultProxyOptions {
  target: string;
  protocol: Protocol;
  rate: number;
  seed?: number;
  /** How long a slow call is held before it is forwarded: fixed, or drawn per call from [min, max]. Default 1,500. */
  slowMs?: number | [number, number];
  latencyMs?: number;
  /** The kinds random faults are drawn from (default: all). Scripted faults are not limited by it. */
  kinds?: FaultKind[];
  /** IAM only: put a realistic-IAM layer between the proxy and the emulator. */
  realisticIam?: Omit<RealisticIamOptions, 'target'>;
  /** A rate limit per account (token bucket): calls past it are refused as throttled. Default burst: one second's worth. `perAccount`: other rates for some accounts. */
  rateLimit?: { ratePerSecond: number; burst?: number; perAccount?: Record<string, number> };
  /** DynamoDB only: writes that meet a transaction in progress are refused as the service refuses them. */
  transactions?: TransactionOptions;
  /** The Date header of every answer to the processor, this far from this host's clock (ms). Default 0: untouched. */
  clockSkewMs?: number;
}

export async function startFaultProxy(options: FaultProxyOptions): Promise<FaultProxy> {
  const realisticIam = options.realisticIam && options.protocol === 'iam' ? await startRealisticIam({ ...options.realisticIam, target: options.target }) : undefined;
  const target = new URL(realisticIam?.endpoint ?? options.target);
  const scripted: { kind: FaultKind; operation: string; times: number; skip: number }[] = [];
  const random = seededRandom(options.seed ?? 1);
  const injected = Object.fromEntries(KINDS.map((kind) => [kind, 0])) as Record<FaultKind, number>;
  const state = { calls: 0, inFlight: 0, rateLimited: 0, clockSkewMs: options.clockSkewMs ?? 0 };
  const transactions = options.transactions && options.protocol === 'dynamodb' ? new TransactionsInProgress(options.transactions) : undefined;
  const buckets = options.rateLimit ? new AccountBuckets(options.rateLimit, options.rateLimit.perAccount) : undefined;
  /** Access key id -> the account of the role STS issued it for. */
  const keyAccounts = new Map<string, string>();
  const failing = new Set<string>();
  const failed = new Map<string, number>();
  const assumed = new Map<string, number>();
  const callerAccount = (req: IncomingMessage) => {
    const key = accountOf(req.headers.authorization);
    return keyAccounts.get(key) ?? key;
  };
  const kinds = options.kinds?.length ? options.kinds : KINDS;
  const slowDelay = (): number => {
    const slow = options.slowMs ?? 1_500;
    return typeof slow === 'number' ? slow : slow[0] + random() * (slow[1] - slow[0]);
  };

  /** The answer's headers, with the skewed Date for the processor's calls. */
  function answerHeaders(req: IncomingMessage, headers: IncomingMessage['headers']): IncomingMessage['headers'] {
    if (state.clockSkewMs === 0 || !fromProcessor(req)) return headers;
    return { ...headers, date: new Date(Date.now() + state.clockSkewMs).toUTCString() };
  }

  function forward(req: IncomingMessage, body: Buffer, res: ServerResponse, afterwards?: () => void): void {
    const upstream = request({ host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers }, (answer) => {
      if (afterwards) {
        answer.resume();
        answer.on('end', afterwards);
        return;
      }
      res.writeHead(answer.statusCode ?? 502, answerHeaders(req, answer.headers));
      answer.pipe(res);
    });
    upstream.on('error', () => res.destroy());
    upstream.end(body);
  }

  const fromProcessor = (req: IncomingMessage) => /aws-sdk-js/i.test(String(req.headers['user-agent'] ?? ''));

  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      if (!fromProcessor(req)) return forward(req, body, res);
      state.calls++;
      state.inFlight++;
      // Emitted once the answer is sent or the connection is gone (a reset).
      res.once('close', () => state.inFlight--);
      if (options.latencyMs) {
        void sleep(options.latencyMs).then(() => handle(req, body, res));
        return;
      }
      handle(req, body, res);
    });
  });

  /** A scripted fault for this call, if one waits for its operation. */
  function scriptedFor(req: IncomingMessage, body: Buffer): FaultKind | undefined {
    if (scripted.length === 0) return undefined;
    const operation = operationOf(options.protocol, req, body);
    const index = scripted.findIndex((entry) => entry.operation === operation);
    if (index < 0) return undefined;
    const entry = scripted[index]!;
    if (entry.skip > 0) {
      entry.skip--;
      return undefined;
    }
    if (--entry.times <= 0) scripted.splice(index, 1);
    return entry.kind;
  }

  /** Forwards a call untouched; an AssumeRole's key is learned on its way back; a write that meets a transaction in progress is refused. */
  function pass(req: IncomingMessage, body: Buffer, res: ServerResponse): void {
    if (options.protocol === 'iam' && operationOf('iam', req, body) === 'AssumeRole') {
      learnAssumedKey(req, body, res);
      return;
    }
    if (!transactions) {
      forward(req, body, res);
      return;
    }
    const admitted = transactions.admit(req, body);
    if ('refuse' in admitted) {
      res.writeHead(admitted.refuse.status, { 'content-type': admitted.refuse.type, 'x-amzn-requestid': 'fault-proxy' });
      res.end(admitted.refuse.body);
      return;
    }
    // In progress from now until its answer has gone back (or the connection is gone).
    res.once('close', admitted.done);
    if (transactions.holdMs > 0) void sleep(transactions.holdMs).then(() => forward(req, body, res));
    else forward(req, body, res);
  }

  /** Forwards an AssumeRole and learns whose account the key in its answer acts in. */
  function learnAssumedKey(req: IncomingMessage, body: Buffer, res: ServerResponse): void {
    const roleAccount = /^arn:[\w-]+:iam::(\d{12}):/.exec(new URLSearchParams(body.toString('utf8')).get('RoleArn') ?? '')?.[1];
    if (roleAccount) assumed.set(roleAccount, (assumed.get(roleAccount) ?? 0) + 1);
    const upstream = request({ host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers }, (answer) => {
      const chunks: Buffer[] = [];
      answer.on('data', (chunk: Buffer) => chunks.push(chunk));
      answer.on('end', () => {
        const text = Buffer.concat(chunks);
        const key = /<AccessKeyId>([^<]+)<\/AccessKeyId>/.exec(text.toString('utf8'))?.[1];
        if (key && roleAccount) keyAccounts.set(key, roleAccount);
        res.writeHead(answer.statusCode ?? 502, answerHeaders(req, answer.headers));
        res.end(text);
      });
    });
    upstream.on('error', () => res.destroy());
    upstream.end(body);
  }

  function handle(req: IncomingMessage, body: Buffer, res: ServerResponse): void {
    if (failing.has(callerAccount(req))) {
      failed.set(callerAccount(req), (failed.get(callerAccount(req)) ?? 0) + 1);
      const { status, type, body: errorText } = errorBody(options.protocol, 'server-error', 'injected outage');
      res.writeHead(status, { 'content-type': type, 'x-amzn-requestid': 'fault-proxy' });
      res.end(errorText);
      return;
    }
    if (buckets && !buckets.tryTake(callerAccount(req))) {
      state.rateLimited++;
      const { status, type, body: errorText } = errorBody(options.protocol, 'throttle', 'Rate exceeded');
      res.writeHead(status, { 'content-type': type, 'x-amzn-requestid': 'fault-proxy' });
      res.end(errorText);
      return;
    }
    const planned = scriptedFor(req, body);
    if (!planned && random() >= options.rate) {
      pass(req, body, res);
      return;
    }
    const kind = planned ?? kinds[Math.floor(random() * kinds.length)]!;
    injected[kind]++;
    switch (kind) {
      case 'throttle':
      case 'server-error': {
        const { status, type, body: errorText } = errorBody(options.protocol, kind);
        res.writeHead(status, { 'content-type': type, 'x-amzn-requestid': 'fault-proxy' });
        res.end(errorText);
        return;
      }
      case 'reset-before':
        req.socket.destroy();
        return;
      case 'reset-after':
        // The emulator applies the call; the processor never hears the answer.
        forward(req, body, res, () => req.socket.destroy());
        return;
      case 'slow':
        void sleep(slowDelay()).then(() => pass(req, body, res));
        return;
    }
  }

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    injected,
    get calls() {
      return state.calls;
    },
    get inFlight() {
      return state.inFlight;
    },
    get rateLimited() {
      return state.rateLimited;
    },
    skewClock(ms) {
      state.clockSkewMs = ms;
    },
    inject(kind, operation, times = 1, skip = 0) {
      scripted.push({ kind, operation, times, skip });
    },
    clearInjected() {
      scripted.splice(0);
    },
    failAccount(account, on) {
      if (on) failing.add(account);
      else failing.delete(account);
    },
    failedCalls: (account) => failed.get(account) ?? 0,
    accountCounts: () => new Map(buckets?.counts ?? []),
    assumeRoles: () => new Map(assumed),
    ...(realisticIam ? { realisticIam } : {}),
    ...(transactions ? { transactions } : {}),
    close: async () => {
      await new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      });
      await realisticIam?.close();
    },
  };
}
