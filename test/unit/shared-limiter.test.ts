// The client-side IAM rate limit (aws/iam-rate/): the rate it learns from
// throttling, the gate that holds calls to it, its sharing between the
// processes of a host over a Unix socket in a private folder (a holder that
// stops running and a peer without the secret included), and its place in the
// SDK's middleware (every attempt waits for a token and reports IAM's answer).
// Clocks are fake where time matters; nothing asserts how fast anything runs.
import test from 'ava';
import type { ExecutionContext } from 'ava';
import { spawn } from 'node:child_process';
import { chmodSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, symlinkSync } from 'node:fs';
import { createServer } from 'node:http';
import type { ServerResponse } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { createConnection, createServer as createNetServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { IAMClient, ListPoliciesCommand } from '@aws-sdk/client-iam';
import { CubicRate } from '../../src/aws/iam-rate/cubic-rate.js';
import { HostLimiter } from '../../src/aws/iam-rate/host-limiter.js';
import { THROTTLE_REQUEUES, isThrottle, limitCalls } from '../../src/aws/iam-rate/limit-calls.js';
import { TokenGate } from '../../src/aws/iam-rate/token-gate.js';
import type { RateLimiter } from '../../src/aws/iam-rate/token-gate.js';
import { BYTE, RateReader, rateMessage } from '../../src/aws/iam-rate/wire.js';
import { pino } from 'pino';
import { limiterNews } from '../../src/intake/limiter-news.js';
import { createTargetAccountClients, destroyTargetAccountClients } from '../../src/aws/clients.js';
import { loadConfig } from '../../src/config/config.js';
import { METRIC, Metrics } from '../../src/metrics/metrics.js';

/** IAM's answer to a call past its rate. */
function throttle(res: ServerResponse): void {
  res.writeHead(400, { 'content-type': 'text/xml' });
  res.end(
    '<ErrorResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/"><Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message></Error><RequestId>x</RequestId></ErrorResponse>',
  );
}

/** IAM's answer to ListPolicies: no policy. */
function listPolicies(res: ServerResponse): void {
  res.writeHead(200, { 'content-type': 'text/xml' });
  res.end(
    '<ListPoliciesResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/"><ListPoliciesResult><IsTruncated>false</IsTruncated><Policies/></ListPoliciesResult><ResponseMetadata><RequestId>x</RequestId></ResponseMetadata></ListPoliciesResponse>',
  );
}

/** Sends `perSecond` calls a second for `seconds` on the fake clock, each answered without a throttle. */
function send(rate: CubicRate, clock: { t: number }, perSecond: number, seconds: number): void {
  for (let i = 0; i < perSecond * seconds; i++) {
    clock.t += 1000 / perSecond;
    rate.sent();
    rate.answered();
  }
}

test('no limit until IAM throttles; then 70% of the rate sent, climbing back along the cubic curve', (t) => {
  const clock = { t: 0 };
  const rate = new CubicRate(() => clock.t);
  t.is(rate.current(), undefined);
  send(rate, clock, 40, 3);
  rate.throttled();
  const after = rate.current()!;
  t.true(after > 0.7 * 40 * 0.9 && after < 0.7 * 40 * 1.1, `after the throttle: ${after}`);
  send(rate, clock, 28, 1);
  const later = rate.current()!;
  t.true(later > after, `climbs back: ${later}`);
  send(rate, clock, 28, 2);
  t.true(rate.current()! >= 39, `back near the rate that was throttled after its window (~2.6 s): ${rate.current()}`);
});

test('a burst sent at once before the first throttle: the rate starts at 70% of what IAM accepted in the last second, not at the floor', (t) => {
  // A shard's first batch: every call goes at once (no rate learned yet), before the half-second
  // measure has closed a bucket; IAM accepts 10 of the 40 and throttles the rest.
  const burst = (answersFirst: boolean) => {
    const clock = { t: 0 };
    const rate = new CubicRate(() => clock.t);
    for (let i = 0; i < 40; i++) rate.sent();
    const answers = () => {
      clock.t += 30;
      for (let i = 0; i < 10; i++) rate.answered();
    };
    if (answersFirst) answers();
    clock.t += 5;
    rate.throttled();
    // A throttle is answered at once, an accepted call in IAM's own time: the acceptances may come after it.
    if (!answersFirst) answers();
    return rate.current()!;
  };
  for (const answersFirst of [true, false]) {
    const after = burst(answersFirst);
    t.true(after > 0.7 * 10 * 0.9 && after < 0.7 * 10 * 1.1, `acceptances ${answersFirst ? 'before' : 'after'} the throttle: ${after}`);
  }
});

test('throttles answering one burst are one decrease', (t) => {
  const clock = { t: 0 };
  const rate = new CubicRate(() => clock.t);
  send(rate, clock, 40, 3);
  rate.throttled();
  const once = rate.current()!;
  for (let i = 0; i < 10; i++) {
    clock.t += 10;
    rate.throttled();
  }
  t.true(rate.current()! >= once * 0.99, `ten throttles within 100 ms: ${rate.current()} vs ${once}`);
  clock.t += 600;
  rate.throttled();
  t.true(rate.current()! < once, 'a throttle a round trip later decreases again');
});

test('the rate never drops below half a call a second', (t) => {
  const clock = { t: 0 };
  const rate = new CubicRate(() => clock.t);
  for (let i = 0; i < 50; i++) {
    clock.t += 1_000;
    rate.throttled();
  }
  t.true(rate.current()! >= 0.5);
});

test('the gate lets everything through before a throttle, then one call per token, in order', async (t) => {
  const clock = { t: 0 };
  const now = () => clock.t;
  const gate = new TokenGate(new CubicRate(now), now);
  await Promise.all([gate.acquire(), gate.acquire(), gate.acquire()]);
  send(gate.rate, clock, 10, 2);
  gate.report(true); // rate 7/s
  // What built up since the last call (at most a second's worth) goes at once.
  while (true) {
    let granted = false;
    const next = gate.acquire().then(() => (granted = true));
    await Promise.resolve();
    if (!granted) {
      clock.t += 1_000 / 7 + 1; // one token's worth: the gate's timer lets this one go
      await next;
      break;
    }
  }
  const order: number[] = [];
  const waits = [1, 2, 3].map((i) => gate.acquire().then(() => order.push(i)));
  await Promise.resolve();
  t.is(gate.queued, 3, 'no token yet');
  clock.t += 1_000 / 7 + 1;
  void gate.acquire().then(() => order.push(4)); // a new caller triggers a refill: the first in line goes
  await Promise.resolve();
  t.deepEqual(order, [1]);
  clock.t += 10_000;
  void gate.acquire().then(() => order.push(5));
  await Promise.all(waits);
  t.deepEqual(order.slice(0, 3), [1, 2, 3]);
});

test('processes of a host share one gate: the first holds the socket, the others follow it; a throttle any of them meets slows all', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ips-limiter-'));
  const first = new HostLimiter('app|us-east-1|http://iam', dir);
  const second = new HostLimiter('app|us-east-1|http://iam', dir);
  t.teardown(() => {
    first.close();
    second.close();
  });
  await first.acquire();
  t.true(first.holding);
  await second.acquire();
  t.true(second.following);
  t.is(first.allowedRate, Infinity, 'no throttle yet: no limit');
  for (let i = 0; i < 20; i++) await second.acquire();
  second.report(true);
  // The report travels over the socket to the holder's gate.
  for (let i = 0; i < 50 && first.allowedRate === Infinity; i++) await new Promise((resolve) => setTimeout(resolve, 10));
  t.true(Number.isFinite(first.allowedRate), "the holder learned of the follower's throttle");
  const other = new HostLimiter('another-app|us-east-1|http://iam', dir);
  t.teardown(() => other.close());
  await other.acquire();
  t.true(other.holding, 'another key, another gate');
});

test('a call the gate holds for its turn at the learned rate is told so at once, holder or follower; before any throttle, none is', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ips-limiter-'));
  const holder = new HostLimiter('held|us-east-1|http://iam', dir);
  const follower = new HostLimiter('held|us-east-1|http://iam', dir);
  t.teardown(() => {
    holder.close();
    follower.close();
  });
  const told = { holder: 0, follower: 0 };
  await holder.acquire(undefined, () => told.holder++);
  await follower.acquire(undefined, () => told.follower++);
  t.true(holder.holding && follower.following);
  for (let i = 0; i < 10; i++) await follower.acquire(undefined, () => told.follower++);
  t.deepEqual(told, { holder: 0, follower: 0 }, 'no throttle yet: nothing is held, however many calls');
  follower.report(true);
  for (let i = 0; i < 50 && holder.allowedRate === Infinity; i++) await sleep(10);
  // Now the gate lets a token through at most every 2 s or so: a burst waits its turn.
  const burst = [...Array.from({ length: 3 }, () => follower.acquire(undefined, () => told.follower++)), holder.acquire(undefined, () => told.holder++)];
  await sleep(300);
  t.true(told.follower >= 1, "the follower hears the holder's `h` while its token is owed");
  t.is(told.holder, 1, "the holder's own call is told by its gate");
  await Promise.all(burst);
});

test("a follower knows the rate the holder's gate allows (the host's rate for the account, which the slow-account rule compares): told on joining and on every beat", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ips-limiter-'));
  const holder = new HostLimiter('told|us-east-1|http://iam', dir, { waitMs: 200 });
  const follower = new HostLimiter('told|us-east-1|http://iam', dir, { waitMs: 200 });
  t.teardown(() => {
    holder.close();
    follower.close();
  });
  await holder.acquire();
  await follower.acquire();
  t.true(holder.holding && follower.following);
  for (let i = 0; i < 50 && follower.allowedRate === undefined; i++) await sleep(10);
  t.is(follower.allowedRate, Infinity, 'told on joining: no limit learned yet');
  for (let i = 0; i < 20; i++) await holder.acquire();
  holder.report(true);
  t.true(Number.isFinite(holder.allowedRate));
  // Its own calls never met a throttle: what it knows is the holder's, told on the next beat (every quarter of waitMs).
  for (let i = 0; i < 50 && !Number.isFinite(follower.allowedRate); i++) await sleep(10);
  t.true(Math.abs(follower.allowedRate! - holder.allowedRate!) < 0.5, `the follower knows the host's rate: ${follower.allowedRate} against ${holder.allowedRate}`);
});

test("the holder's rate message is read whole across chunks; its bytes are none of the messages a follower of an earlier version knows", (t) => {
  const told: number[] = [];
  const reader = new RateReader((perSecond) => told.push(perSecond));
  const bytes = Buffer.from(`k${rateMessage(9.876)}g${rateMessage(undefined)}`);
  const others: number[] = [];
  // One byte at a time: the socket may split a message anywhere.
  for (const byte of bytes) if (!reader.read(byte)) others.push(byte);
  t.deepEqual(told, [9.88, Infinity]);
  t.deepEqual(others, [BYTE.keepAlive, BYTE.grant], 'the keep-alive and the grant are read as themselves');
  const known = new Set<number>(Object.values(BYTE).filter((byte) => byte !== BYTE.rate && byte !== BYTE.rateEnd));
  t.false([...Buffer.from(rateMessage(1234.5) + rateMessage(undefined))].some((byte) => known.has(byte)));
  // An `r` not followed by a rate: the byte after it is read as itself.
  t.false(reader.read(BYTE.rate) && reader.read(BYTE.grant));
});

test('when the holder goes, a follower holds the gate itself', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ips-limiter-'));
  const first = new HostLimiter('k', dir);
  const second = new HostLimiter('k', dir);
  t.teardown(() => second.close());
  await first.acquire();
  await second.acquire();
  t.true(second.following);
  first.close();
  for (let i = 0; i < 50 && second.following; i++) await new Promise((resolve) => setTimeout(resolve, 10));
  await second.acquire();
  t.true(second.holding);
});

/** IAM's answer when it failed on its side: the SDK retries it with its own backoff. */
function internalFailure(res: ServerResponse): void {
  res.writeHead(500, { 'content-type': 'text/xml' });
  res.end(
    '<ErrorResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/"><Error><Type>Receiver</Type><Code>ServiceFailure</Code><Message>x</Message></Error><RequestId>x</RequestId></ErrorResponse>',
  );
}

/**
 * An IAM client behind a recording limiter and an upstream that answers each
 * request with `answers[i]` (then ListPolicies): what the limiter heard, and
 * the SDK's attempt header of each request (`attempt=N; max=M`).
 */
async function gatedClient(t: ExecutionContext, answers: ((res: ServerResponse) => void)[], maxAttempts = 3) {
  const attempts: string[] = [];
  const upstream = createServer((req, res) => {
    attempts.push(String(req.headers['amz-sdk-request']));
    (answers[attempts.length - 1] ?? listPolicies)(res);
  });
  await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
  const events: string[] = [];
  const limiter: RateLimiter = {
    acquire: async () => void events.push('acquire'),
    report: (throttled) => void events.push(throttled ? 'throttled' : 'not-throttled'),
  };
  const iam = new IAMClient({
    endpoint: `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`,
    region: 'us-east-1',
    maxAttempts,
    credentials: { accessKeyId: 'x', secretAccessKey: 'x' },
  });
  limitCalls(iam, limiter, 'test-limit');
  t.teardown(async () => {
    iam.destroy();
    await new Promise<void>((resolve) => upstream.close(() => resolve()));
  });
  return { iam, events, attempts };
}

test("an attempt waits for a token and reports whether IAM throttled it; the SDK's retries wait for one too", async (t) => {
  const { iam, events, attempts } = await gatedClient(t, [internalFailure]);
  await iam.send(new ListPoliciesCommand({}));
  t.deepEqual(events, ['acquire', 'not-throttled', 'acquire', 'not-throttled']);
  t.deepEqual(attempts, ['attempt=1; max=3', 'attempt=2; max=3']);
});

test("a throttled attempt goes back to the gate for its next token, not into the SDK's backoff", async (t) => {
  const { iam, events, attempts } = await gatedClient(t, [throttle, throttle, throttle]);
  await iam.send(new ListPoliciesCommand({}));
  t.deepEqual(events, ['acquire', 'throttled', 'acquire', 'throttled', 'acquire', 'throttled', 'acquire', 'not-throttled']);
  // One attempt as the SDK counts them: it neither waited out a backoff nor spent a retry on the throttles.
  t.deepEqual(attempts, Array(4).fill('attempt=1; max=3'));
});

test("a throttle past the requeues a gate gives is the SDK's to retry", async (t) => {
  const { iam, attempts } = await gatedClient(t, Array(THROTTLE_REQUEUES + 1).fill(throttle));
  await iam.send(new ListPoliciesCommand({}));
  t.deepEqual(attempts, [...Array(THROTTLE_REQUEUES + 1).fill('attempt=1; max=3'), 'attempt=2; max=3']);
});

test("throttling is told apart from IAM's version limit", (t) => {
  t.true(isThrottle({ name: 'Throttling' }));
  t.true(isThrottle({ name: 'x', $metadata: { httpStatusCode: 429 } }));
  t.false(isThrottle({ name: 'LimitExceededException' }));
});

test('a process whose only pending work is a token it waits for stays alive until it is granted, holder or follower', async (t) => {
  // A CLI run (ips drift) awaits IAM's answers at top level; an unref'd socket
  // or timer while a token is owed lets Node exit mid-call (code 13).
  const dir = mkdtempSync(join(tmpdir(), 'ips-limiter-'));
  const holder = new HostLimiter('k', dir);
  t.teardown(() => holder.close());
  await holder.acquire();
  // Slow the holder's gate to half a call a second: the follower's second token is owed for a while.
  for (let i = 0; i < 60; i++) holder.report(true);
  await holder.acquire();
  const child = (code: string) =>
    new Promise<{ status: number | null; stdout: string }>((resolve) => {
      const proc = spawn(process.execPath, ['--import=tsx', '--input-type=module', '-e', code], { cwd: process.cwd(), stdio: ['ignore', 'pipe', 'inherit'] });
      let stdout = '';
      proc.stdout.on('data', (chunk) => (stdout += chunk));
      proc.on('exit', (status) => resolve({ status, stdout }));
    });
  const module = JSON.stringify(new URL('../../src/aws/iam-rate/host-limiter.ts', import.meta.url).href);
  const follower = await child(`
    const { HostLimiter } = await import(${module});
    const limiter = new HostLimiter('k', ${JSON.stringify(dir)});
    await limiter.acquire();
    await limiter.acquire();
    console.log(limiter.following ? 'following' : 'not following');`);
  t.deepEqual(follower, { status: 0, stdout: 'following\n' });
  const own = await child(`
    const { HostLimiter } = await import(${module});
    const limiter = new HostLimiter('own', ${JSON.stringify(dir)});
    await limiter.acquire();
    limiter.report(true);
    await limiter.acquire();
    await limiter.acquire();
    console.log(limiter.holding ? 'holding' : 'not holding');`);
  t.deepEqual(own, { status: 0, stdout: 'holding\n' });
});

test('a process that holds the gate exits when its own work is done, whatever other processes still wait for', async (t) => {
  // A CLI run (ips drift) may be the first to bind the socket: workers that
  // follow it and wait for tokens must not keep it running.
  const dir = mkdtempSync(join(tmpdir(), 'ips-limiter-'));
  const module = JSON.stringify(new URL('../../src/aws/iam-rate/host-limiter.ts', import.meta.url).href);
  const holder = spawn(
    process.execPath,
    [
      '--import=tsx',
      '--input-type=module',
      '-e',
      `
      const { HostLimiter } = await import(${module});
      const limiter = new HostLimiter('linger', ${JSON.stringify(dir)});
      await limiter.acquire();
      for (let i = 0; i < 60; i++) limiter.report(true); // half a call a second from now on
      console.log(limiter.holding ? 'holding' : 'not holding');
      await new Promise((resolve) => setTimeout(resolve, 1_000));`,
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const exited = new Promise<number | null>((resolve) => holder.on('exit', resolve));
  const said = await new Promise<string>((resolve) => holder.stdout.once('data', (chunk: Buffer) => resolve(chunk.toString().trim())));
  t.is(said, 'holding');
  const follower = new HostLimiter('linger', dir);
  t.teardown(() => follower.close());
  void follower.acquire(); // the first call elects: it follows the holder
  for (let i = 0; i < 100 && !follower.following; i++) await new Promise((resolve) => setTimeout(resolve, 10));
  t.true(follower.following);
  // Tokens owed for as long as it follows: the holder's queue is never empty while it runs.
  const owe = async () => {
    while (follower.following) await follower.acquire();
  };
  void owe();
  void owe();
  const code = await Promise.race([exited, new Promise<string>((resolve) => setTimeout(() => resolve('still running after 15 s'), 15_000))]);
  if (code === 'still running after 15 s') holder.kill();
  t.is(code, 0);
});

// ---------------------------------------------------------------------------
// A holder that stops running, and local processes that are not ours.

/** Resolves with `value`, or with `late` after `ms` (never a pass/fail on time: a guard against a wait that never ends). */
function within<T>(promise: Promise<T>, ms: number, late: string): Promise<T | string> {
  return Promise.race([promise, new Promise<string>((resolve) => setTimeout(() => resolve(late), ms).unref())]);
}

async function until(condition: () => boolean, ms = 15_000): Promise<boolean> {
  for (const start = Date.now(); Date.now() - start < ms; ) {
    if (condition()) return true;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return condition();
}

test('a follower whose holder stopped running (SIGSTOP) gets its token from its own limiter within the wait bound, says so, and follows again once the holder runs', async (t) => {
  const parent = mkdtempSync(join(tmpdir(), 'ips-limiter-'));
  const module = JSON.stringify(new URL('../../src/aws/iam-rate/host-limiter.ts', import.meta.url).href);
  const holder = spawn(
    process.execPath,
    [
      '--import=tsx',
      '--input-type=module',
      '-e',
      `
      const { HostLimiter } = await import(${module});
      const limiter = new HostLimiter('stopped', ${JSON.stringify(parent)}, { waitMs: 500 });
      await limiter.acquire();
      console.log(limiter.holding ? 'holding' : 'not holding');
      setInterval(() => undefined, 1_000);`,
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  t.teardown(() => {
    holder.kill('SIGCONT');
    holder.kill('SIGKILL');
  });
  const said = await new Promise<string>((resolve) => holder.stdout.once('data', (chunk: Buffer) => resolve(chunk.toString().trim())));
  t.is(said, 'holding');
  const events: { kind: string; reason?: string }[] = [];
  const follower = new HostLimiter('stopped', parent, { waitMs: 500, onEvent: (event: { kind: string; reason?: string }) => events.push(event) });
  t.teardown(() => follower.close());
  await follower.acquire();
  t.true(follower.following, 'follows the holder while it runs');

  holder.kill('SIGSTOP');
  t.is(
    await within(
      follower.acquire().then(() => 'token'),
      20_000,
      'no token 20 s after the holder stopped',
    ),
    'token',
  );
  t.deepEqual(events, [{ kind: 'fallback', reason: 'holder-silent' }]);
  t.false(follower.following, 'gates its own calls meanwhile');
  t.is(
    await within(
      follower.acquire().then(() => 'token'),
      20_000,
      'no token from its own limiter',
    ),
    'token',
  );

  holder.kill('SIGCONT');
  // Re-joins on a call after the re-join interval, once the holder answers again.
  const following = () => {
    void follower.acquire();
    return follower.following;
  };
  t.true(await until(following, 30_000), 'follows the holder again');
  t.deepEqual(events.at(-1), { kind: 'rejoined' });
});

test('a socket whose holder accepts connections but never answers does not hold a follower: it gets its token from its own limiter', async (t) => {
  const parent = mkdtempSync(join(tmpdir(), 'ips-limiter-'));
  const events: { kind: string; reason?: string }[] = [];
  const follower = new HostLimiter('silent', parent, { waitMs: 500, onEvent: (event: { kind: string; reason?: string }) => events.push(event) });
  t.teardown(() => follower.close());
  // A holder that is alive for the kernel (its socket accepts) and never answers.
  mkdirSync(dirname(follower.path), { recursive: true, mode: 0o700 });
  const silent = createNetServer(() => undefined);
  await new Promise<void>((resolve) => silent.listen(follower.path, resolve));
  t.teardown(() => silent.close());
  t.is(
    await within(
      follower.acquire().then(() => 'token'),
      20_000,
      'no token 20 s after asking a silent holder',
    ),
    'token',
  );
  t.false(follower.following);
  t.deepEqual(events, [{ kind: 'fallback', reason: 'holder-silent' }]);
});

test('a local process without the secret gets nothing from the holder and does not disturb its followers', async (t) => {
  const parent = mkdtempSync(join(tmpdir(), 'ips-limiter-'));
  const refused: unknown[] = [];
  const holder = new HostLimiter('guarded', parent, { waitMs: 500, onEvent: (event: { kind: string }) => event.kind === 'peer-refused' && refused.push(event) });
  const follower = new HostLimiter('guarded', parent, { waitMs: 500 });
  t.teardown(() => {
    holder.close();
    follower.close();
  });
  await holder.acquire();
  await follower.acquire();
  t.true(holder.holding);
  t.true(follower.following);
  // A stranger asks for tokens and reports throttles (which would slow every follower), without the secret.
  const stranger = createConnection(holder.path);
  let answered = 0;
  stranger.on('data', (data: Buffer) => (answered += data.length));
  const closed = new Promise<void>((resolve) => stranger.on('close', () => resolve()));
  stranger.on('error', () => undefined);
  await new Promise<void>((resolve) => stranger.once('connect', () => resolve()));
  stranger.write(`${'0'.repeat(64)}\n`);
  stranger.write('a'.repeat(50) + 't'.repeat(50));
  t.is(
    await within(
      closed.then(() => 'closed'),
      20_000,
      'still connected after 20 s',
    ),
    'closed',
    'the holder hangs up on it',
  );
  t.is(answered, 0, 'not one byte answered: no token, no handshake');
  t.is(holder.allowedRate, Infinity, 'its throttle reports were not heard');
  t.is(refused.length, 1);
  for (let i = 0; i < 5; i++) await follower.acquire();
  t.true(follower.following, 'the follower is served as before');
});

test('the socket lies in a private directory: mode 0700, owned by the user, with a secret only the user can read', async (t) => {
  const parent = mkdtempSync(join(tmpdir(), 'ips-limiter-'));
  chmodSync(parent, 0o755); // like a shared temporary directory, readable by all
  const limiter = new HostLimiter('private', parent);
  t.teardown(() => limiter.close());
  await limiter.acquire();
  t.true(limiter.holding);
  const dir = dirname(limiter.path);
  t.not(dir, parent);
  const stat = lstatSync(dir);
  t.true(stat.isDirectory());
  t.is(stat.mode & 0o777, 0o700);
  t.is(stat.uid, process.getuid!());
  const secrets = readdirSync(dir).filter((name) => !name.endsWith('.sock'));
  t.deepEqual(secrets, ['secret']);
  t.is(lstatSync(join(dir, 'secret')).mode & 0o777, 0o600);
});

test('a directory at the private path that is not ours and private (open to others, or a link) is never used: calls are gated locally', async (t) => {
  for (const plant of ['open', 'link'] as const) {
    const parent = mkdtempSync(join(tmpdir(), 'ips-limiter-'));
    const events: { kind: string; reason?: string }[] = [];
    const limiter = new HostLimiter(`planted-${plant}`, parent, { onEvent: (event: { kind: string; reason?: string }) => events.push(event) });
    t.teardown(() => limiter.close());
    const dir = dirname(limiter.path);
    if (plant === 'open') {
      mkdirSync(dir);
      chmodSync(dir, 0o777);
    } else {
      const elsewhere = mkdtempSync(join(tmpdir(), 'ips-limiter-elsewhere-'));
      symlinkSync(elsewhere, dir);
    }
    await limiter.acquire();
    await limiter.acquire();
    t.false(limiter.holding, plant);
    t.false(limiter.following, plant);
    t.false(existsSync(limiter.path), `${plant}: no socket made there`);
    t.deepEqual(
      events.map(({ kind, reason }) => ({ kind, reason })),
      [{ kind: 'fallback', reason: 'private-dir-refused' }],
      plant,
    );
  }
});

test('a follower frozen with its holder (a whole worker paused, then thawed) does not take the silence it slept through for a stopped holder', async (t) => {
  const parent = mkdtempSync(join(tmpdir(), 'ips-limiter-'));
  const module = JSON.stringify(new URL('../../src/aws/iam-rate/host-limiter.ts', import.meta.url).href);
  const start = (code: string) => {
    const proc = spawn(process.execPath, ['--import=tsx', '--input-type=module', '-e', code], { stdio: ['pipe', 'pipe', 'inherit'] });
    t.teardown(() => {
      proc.kill('SIGCONT');
      proc.kill('SIGKILL');
    });
    return proc;
  };
  const holder = start(`
    const { HostLimiter } = await import(${module});
    const limiter = new HostLimiter('frozen-together', ${JSON.stringify(parent)}, { waitMs: 500 });
    await limiter.acquire();
    for (let i = 0; i < 60; i++) limiter.report(true); // half a call a second: a follower always waits for a token
    console.log(limiter.holding ? 'holding' : 'not holding');
    setInterval(() => undefined, 1_000);`);
  t.is(await new Promise<string>((resolve) => holder.stdout.once('data', (chunk: Buffer) => resolve(chunk.toString().trim()))), 'holding');
  // The follower keeps asking; on a line on stdin it prints what it was told and whether it follows.
  const follower = start(`
    const { HostLimiter } = await import(${module});
    const events = [];
    const limiter = new HostLimiter('frozen-together', ${JSON.stringify(parent)}, { waitMs: 500, onEvent: (event) => events.push(event.kind + ':' + (event.reason ?? '')) });
    await limiter.acquire();
    console.log(limiter.following ? 'following' : 'not following');
    void (async () => { for (;;) { await limiter.acquire(); await new Promise((resolve) => setTimeout(resolve, 10)); } })(); // a call per token
    process.stdin.once('data', () => { console.log(JSON.stringify({ events, following: limiter.following })); process.exit(0); });`);
  t.is(await new Promise<string>((resolve) => follower.stdout.once('data', (chunk: Buffer) => resolve(chunk.toString().trim()))), 'following');
  await new Promise((resolve) => setTimeout(resolve, 300));
  follower.kill('SIGSTOP');
  holder.kill('SIGSTOP');
  await new Promise((resolve) => setTimeout(resolve, 3_000)); // six times the wait bound, asleep together
  holder.kill('SIGCONT');
  follower.kill('SIGCONT');
  await new Promise((resolve) => setTimeout(resolve, 1_500)); // awake together, for three times the bound
  const said = new Promise<string>((resolve) => follower.stdout.once('data', (chunk: Buffer) => resolve(chunk.toString().trim())));
  follower.stdin.write('\n');
  t.deepEqual(JSON.parse(await said), { events: [], following: true });
});

test("a record processor tells of the limiter's fallbacks and refused peers in a log line and a metric each", async (t) => {
  const parent = mkdtempSync(join(tmpdir(), 'ips-limiter-'));
  const metrics = new Metrics();
  const lines: { msg: string; reason?: string }[] = [];
  const logger = pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line)) });
  const news = limiterNews(metrics, logger);
  const holder = new HostLimiter('told', parent, { waitMs: 500, onEvent: news });
  const follower = new HostLimiter('told', parent, { waitMs: 500, onEvent: news });
  t.teardown(() => {
    holder.close();
    follower.close();
  });
  await holder.acquire();
  const stranger = createConnection(holder.path);
  stranger.on('error', () => undefined);
  stranger.write('not the secret\n');
  t.true(await until(() => metrics.get(METRIC.iamLimiterPeersRefused) === 1));
  // A silent socket where the follower looks for its holder: it gates its own calls.
  const silent = createNetServer(() => undefined);
  const other = new HostLimiter('told-silent', parent, { waitMs: 500, onEvent: news });
  t.teardown(() => {
    other.close();
    silent.close();
  });
  await new Promise<void>((resolve) => silent.listen(other.path, resolve));
  await other.acquire();
  t.is(metrics.get(METRIC.iamLimiterFallbacks, { reason: 'holder-silent' }), 1);
  t.deepEqual(
    lines.map((line) => line.msg),
    [
      'a local process without the secret connected to the shared IAM rate limit: hung up on',
      'shared IAM rate limit unavailable: this process gates its own IAM calls (adaptive, on its own throttling) and tries to re-join later',
    ],
  );
});

test("a target account's call the shared gate held for a token tells its client the account is rate-bound, though that client never met IAM's throttle itself", async (t) => {
  // One fake endpoint for STS and IAM: AssumeRole hands each session a key of
  // its own name; IAM throttles every call signed with the `trainer` session's
  // key and answers every other. Both clients assume a role in one account, so
  // they share the account's gate (as a host's processes do over its socket).
  const throttled = 'trainer';
  const upstream = createServer((req, res) => {
    let body = '';
    req.on('data', (chunk) => (body += chunk));
    req.on('end', () => {
      const form = new URLSearchParams(body);
      if (form.get('Action') === 'AssumeRole') {
        const session = form.get('RoleSessionName') ?? 'x';
        res.writeHead(200, { 'content-type': 'text/xml' });
        res.end(
          `<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><AssumeRoleResult><Credentials><AccessKeyId>${session}</AccessKeyId><SecretAccessKey>s</SecretAccessKey><SessionToken>t</SessionToken><Expiration>${new Date(Date.now() + 3_600_000).toISOString()}</Expiration></Credentials><AssumedRoleUser><Arn>arn:aws:sts::444455556666:assumed-role/r/${session}</Arn><AssumedRoleId>AROA:${session}</AssumedRoleId></AssumedRoleUser></AssumeRoleResult><ResponseMetadata><RequestId>x</RequestId></ResponseMetadata></AssumeRoleResponse>`,
        );
        return;
      }
      if ((req.headers.authorization ?? '').includes(`Credential=${throttled}/`)) {
        throttle(res);
        return;
      }
      listPolicies(res);
    });
  });
  await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
  const endpoint = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
  const env = { AWS_ENDPOINT_URL_IAM: endpoint, AWS_ENDPOINT_URL_STS: endpoint, AWS_ACCESS_KEY_ID: 'k', AWS_SECRET_ACCESS_KEY: 's', AWS_REGION: 'us-east-1' };
  const config = loadConfig({ ...env, IPS_APP_NAME: `gate-held-${process.pid}`, IPS_IAM_RETRY_MODE: 'shared', IPS_AWS_MAX_ATTEMPTS: '1' });
  const account = '444455556666';
  const trainer = createTargetAccountClients(config, { account, partition: 'aws', sessionName: throttled }, { env });
  const held = createTargetAccountClients(config, { account, partition: 'aws', sessionName: 'held' }, { env });
  t.teardown(async () => {
    destroyTargetAccountClients(trainer);
    destroyTargetAccountClients(held);
    await new Promise<void>((resolve) => upstream.close(() => resolve()));
  });

  // The trainer's calls are throttled: the account's gate learns a rate (at most what was sent).
  for (let i = 0; i < 3; i++) await t.throwsAsync(trainer.iam.send(new ListPoliciesCommand({})), { name: 'Throttling' });
  t.not(trainer.lastRateBoundAt(), undefined, 'a client IAM throttled knows it');
  // The other client's calls are answered, never throttled; a burst of them waits for the gate's tokens
  // (at most a few per second now), and the client knows the account is rate-bound while one still waits.
  let answered = 0;
  const burst = Promise.all(Array.from({ length: 3 }, () => held.iam.send(new ListPoliciesCommand({})).then(() => answered++)));
  await sleep(300);
  t.true(answered < 3, 'a call of the burst still waits for its token');
  t.not(held.lastRateBoundAt(), undefined, "a client whose call the account's gate holds knows the account is rate-bound while it waits");
  await burst;
});
