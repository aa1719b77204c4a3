// The benchmark's IAM rate limit: a token bucket per account in the fault
// proxy, refusing the way IAM does. Time comes from a fake clock (the bucket)
// or does not matter (the proxy: a rate so low that nothing refills while the
// test runs), so nothing here depends on how fast the machine is.
import test from 'ava';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { IAMClient, ListPoliciesCommand } from '@aws-sdk/client-iam';
import { AccountBuckets, accountOf, TokenBucket } from '../../tools/harness/token-bucket.js';
import { startFaultProxy } from '../../tools/harness/fault-proxy.js';

test('a full bucket lets a burst through, then one call per 1/rate seconds', (t) => {
  const clock = { t: 0 };
  const bucket = new TokenBucket({ ratePerSecond: 10, burst: 3, now: () => clock.t });
  t.true(bucket.tryTake());
  t.true(bucket.tryTake());
  t.true(bucket.tryTake());
  t.false(bucket.tryTake(), 'burst spent');
  clock.t += 50; // half a token
  t.false(bucket.tryTake());
  clock.t += 50; // one token
  t.true(bucket.tryTake());
  t.false(bucket.tryTake());
});

test('tokens never pile up past the burst, and the default burst is one second of rate', (t) => {
  const clock = { t: 0 };
  const bucket = new TokenBucket({ ratePerSecond: 20, now: () => clock.t });
  t.is(bucket.burst, 20);
  clock.t += 60_000;
  t.is(bucket.available(), 20);
  let allowed = 0;
  while (bucket.tryTake()) allowed++;
  t.is(allowed, 20);
  t.is(new TokenBucket({ ratePerSecond: 0.5 }).burst, 1, 'at least one call');
});

test('a clock that steps back takes nothing away', (t) => {
  const clock = { t: 1_000 };
  const bucket = new TokenBucket({ ratePerSecond: 1, burst: 1, now: () => clock.t });
  t.true(bucket.tryTake());
  clock.t = 500;
  t.false(bucket.tryTake());
  clock.t = 1_500;
  t.true(bucket.tryTake(), 'refilled from the latest time seen');
});

test('sustained over many calls, the allowed rate is the bucket rate', (t) => {
  const clock = { t: 0 };
  const bucket = new TokenBucket({ ratePerSecond: 20, burst: 20, now: () => clock.t });
  let allowed = 0;
  // 200 calls a second for 30 seconds
  for (let i = 0; i < 6_000; i++) {
    clock.t += 5;
    if (bucket.tryTake()) allowed++;
  }
  t.true(allowed >= 20 * 30 && allowed <= 20 * 30 + 20, `allowed ${allowed}`);
});

test('one bucket per account: accounts do not share a limit', (t) => {
  const clock = { t: 0 };
  const buckets = new AccountBuckets({ ratePerSecond: 1, burst: 1, now: () => clock.t });
  t.true(buckets.tryTake('A'));
  t.false(buckets.tryTake('A'));
  t.true(buckets.tryTake('B'));
  t.deepEqual(buckets.counts.get('A'), { allowed: 1, refused: 1 });
});

test('the account is the access key of the SigV4 credential scope', (t) => {
  t.is(accountOf('AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20260101/us-east-1/iam/aws4_request, SignedHeaders=host, Signature=abc'), 'AKIDEXAMPLE');
  t.is(accountOf(undefined), 'anonymous');
});

test('the proxy refuses past the limit as IAM does: 400 Throttling, which the SDK reads as throttling', async (t) => {
  // Stands in for IAM: any call gets an empty ListPolicies answer.
  const upstream = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/xml' });
    res.end(
      '<ListPoliciesResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/"><ListPoliciesResult><IsTruncated>false</IsTruncated><Policies/></ListPoliciesResult><ResponseMetadata><RequestId>x</RequestId></ResponseMetadata></ListPoliciesResponse>',
    );
  });
  await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
  const target = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
  // Nothing refills during the test: 2 calls pass, the third is refused.
  const proxy = await startFaultProxy({ target, protocol: 'iam', rate: 0, rateLimit: { ratePerSecond: 0.0001, burst: 2 } });
  const iam = new IAMClient({ endpoint: proxy.endpoint, region: 'us-east-1', maxAttempts: 1, credentials: { accessKeyId: 'AKIDONE', secretAccessKey: 'x' } });
  const other = new IAMClient({ endpoint: proxy.endpoint, region: 'us-east-1', maxAttempts: 1, credentials: { accessKeyId: 'AKIDTWO', secretAccessKey: 'x' } });
  t.teardown(async () => {
    iam.destroy();
    other.destroy();
    await proxy.close();
    await new Promise<void>((resolve) => upstream.close(() => resolve()));
  });
  await iam.send(new ListPoliciesCommand({}));
  await iam.send(new ListPoliciesCommand({}));
  const error = await t.throwsAsync(iam.send(new ListPoliciesCommand({})));
  t.is(error?.name, 'Throttling');
  const sdk = error as unknown as { $metadata: { httpStatusCode: number }; $retryable?: { throttling?: boolean }; Code?: string };
  t.is(sdk.$metadata.httpStatusCode, 400);
  t.is(proxy.rateLimited, 1);
  await t.notThrowsAsync(other.send(new ListPoliciesCommand({})), 'another account has its own bucket');
});
