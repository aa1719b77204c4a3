// The IAM step's guard at dispatch (src/iam/step-guard.ts): a call that entered
// the SDK before the claim's deadline, but would reach the wire after it, is
// not sent. The delay here is the credentials' resolution (an AssumeRole
// refresh, say); a GC pause or a frozen container is the same to the guard.
import test from 'ava';
import { IAMClient, TagPolicyCommand } from '@aws-sdk/client-iam';
import { guardedSend, withinGuard } from '../../src/iam/step-guard.js';
import type { StepGuard } from '../../src/iam/step-guard.js';
import { TransientError } from '../../src/faults/errors.js';

function clockGuard(deadline: number, now: () => number): StepGuard & { checks: number } {
  const controller = new AbortController();
  const guard = {
    checks: 0,
    signal: controller.signal,
    check() {
      guard.checks++;
      if (now() >= deadline) throw new TransientError('claim-deadline', 'the claim could not be renewed before its deadline');
    },
  };
  return guard;
}

function iamWith(onCredentials: () => void, sent: string[]): IAMClient {
  return new IAMClient({
    region: 'us-east-1',
    maxAttempts: 1,
    credentials: async () => {
      onCredentials();
      return { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'secret' };
    },
    requestHandler: {
      handle: async (request: { body?: string }) => {
        sent.push(String(request.body));
        throw Object.assign(new Error('connection reset'), { code: 'ECONNRESET' });
      },
    },
  });
}

test('a call that would reach the wire after the deadline is not sent, though it entered the SDK before it', async (t) => {
  let now = 1_000;
  const sent: string[] = [];
  const guard = clockGuard(10_000, () => now);
  const send = guardedSend(iamWith(() => (now += 20_000), sent));
  const error = await t.throwsAsync(withinGuard(guard, () => send(new TagPolicyCommand({ PolicyArn: 'arn:aws:iam::123456789012:policy/p', Tags: [{ Key: 'team', Value: 'a' }] }))));
  t.true(error instanceof TransientError && error.reason === 'claim-deadline', String(error));
  t.deepEqual(sent, [], 'nothing went on the wire');
  t.is(guard.checks, 2, 'asked on entry and again at dispatch');
});

test('within the deadline the call goes on the wire, the guard asked at dispatch of each attempt', async (t) => {
  const sent: string[] = [];
  const guard = clockGuard(10_000, () => 1_000);
  const send = guardedSend(iamWith(() => undefined, sent));
  await t.throwsAsync(withinGuard(guard, () => send(new TagPolicyCommand({ PolicyArn: 'arn:aws:iam::123456789012:policy/p', Tags: [{ Key: 'team', Value: 'a' }] }))));
  t.is(sent.length, 1);
  t.true(sent[0]!.includes('Action=TagPolicy'));
  t.is(guard.checks, 2);
});

test('outside a step (no guard) a call is sent as it is', async (t) => {
  const sent: string[] = [];
  const send = guardedSend(iamWith(() => undefined, sent));
  await t.throwsAsync(send(new TagPolicyCommand({ PolicyArn: 'arn:aws:iam::123456789012:policy/p', Tags: [] })));
  t.is(sent.length, 1);
});
