// Which IAM errors are transient and which reject the event. A failure of the
// caller's own credentials (expired, unknown, wrongly signed, denied) says
// nothing about the event: it must stall the shard, never dead-letter valid
// events.
import test from 'ava';
import type { IAMClient } from '@aws-sdk/client-iam';
import type { STSClient } from '@aws-sdk/client-sts';
import { loadConfig } from '../../src/config/config.js';
import type { PolicyUpserted } from '../../src/contract/event.js';
import { classifyIamError, isIamFault } from '../../src/iam/classify-iam-error.js';
import { IamReconciler } from '../../src/iam/reconciler.js';
import { Metrics } from '../../src/metrics/metrics.js';
import { silentLogger } from '../support/pipeline.js';
import { isCredentialError, isRetriable } from '../../src/faults/classify.js';
import { RejectedEventError, TransientError } from '../../src/faults/errors.js';

/** An error shaped as the SDK throws it. */
function sdkError(name: string, status?: number, message = `${name} happened`): Error {
  return Object.assign(new Error(message), { name, ...(status !== undefined ? { $metadata: { httpStatusCode: status }, $fault: status >= 500 ? 'server' : 'client' } : {}) });
}

const CREDENTIAL_FAILURES: [string, number | undefined, string][] = [
  ['CredentialsProviderError', undefined, 'Could not load credentials from any providers'],
  ['ExpiredToken', 403, 'The security token included in the request is expired'],
  ['ExpiredTokenException', 400, 'The security token included in the request is expired'],
  ['InvalidClientTokenId', 403, 'The security token included in the request is invalid.'],
  ['UnrecognizedClientException', 400, 'The security token included in the request is invalid.'],
  ['SignatureDoesNotMatch', 403, 'The request signature we calculated does not match the signature you provided.'],
  ['AccessDenied', 403, 'User: arn:aws:sts::123456789012:assumed-role/worker/task is not authorized to perform: iam:CreatePolicyVersion'],
  ['AccessDeniedException', 400, 'User is not authorized to perform this action'],
  ['InvalidAccessKeyId', 403, 'The AWS Access Key Id you provided does not exist in our records.'],
  ['MissingAuthenticationToken', 403, 'Request is missing Authentication Token'],
  ['IncompleteSignature', 400, 'The request signature does not conform to AWS standards.'],
  ['RequestExpired', 400, 'Request has expired.'],
];

for (const [name, status, message] of CREDENTIAL_FAILURES) {
  test(`${name}: a failure of the caller's credentials is transient, never a rejection`, (t) => {
    const error = sdkError(name, status, message);
    t.true(isCredentialError(error));
    t.true(isRetriable(error));
    t.true(isIamFault(error), 'counts against the circuit breaker: IAM cannot be used');
    const classified = classifyIamError(error, 'upsert');
    t.true(classified instanceof TransientError, classified.name);
    t.is((classified as TransientError).reason as string, name);
  });
}

test("a credentials provider error of another shape (no status, the SDK's own class name) is transient too", (t) => {
  const error = Object.assign(new Error('Token is expired. To refresh this SSO session run aws sso login'), { name: 'TokenProviderError', tryNextLink: false });
  t.true(classifyIamError(error, 'delete') instanceof TransientError);
});

test('errors about the event itself stay permanent: rejected with the IAM code as reason', (t) => {
  for (const name of ['MalformedPolicyDocumentException', 'InvalidInputException', 'LimitExceededException', 'EntityAlreadyExistsException', 'NoSuchEntityException']) {
    const classified = classifyIamError(sdkError(name, 400), 'upsert');
    t.true(classified instanceof RejectedEventError, name);
    t.is((classified as RejectedEventError).reason, `iam:${name}`);
    t.false(isCredentialError(sdkError(name, 400)), name);
  }
});

test('throttling and 5xx stay transient', (t) => {
  t.true(classifyIamError(sdkError('Throttling', 400), 'upsert') instanceof TransientError);
  t.true(classifyIamError(sdkError('ServiceFailure', 500), 'upsert') instanceof TransientError);
});

test('the IAM step with expired credentials: a transient fault (the shard waits), not a dead letter', async (t) => {
  let calls = 0;
  const expired = async () => {
    calls++;
    throw sdkError('ExpiredToken', 403, 'The security token included in the request is expired');
  };
  const iam = { send: expired } as unknown as IAMClient;
  const sts = { send: async () => ({ Account: '123456789012', Arn: 'arn:aws:sts::123456789012:assumed-role/worker/task' }) } as unknown as STSClient;
  const r = new IamReconciler({ iam, sts, config: loadConfig({}), metrics: new Metrics(), logger: silentLogger, attempts: 2, baseDelayMs: 1, maxDelayMs: 2 });
  const event = {
    specVersion: '1',
    eventId: 'cred-1',
    type: 'policy.upserted',
    policyName: 'cred',
    policyPath: '/stream-managed/',
    pathGiven: true,
    document: { Version: '2012-10-17', Statement: [] },
    tags: {},
  } as unknown as PolicyUpserted;
  const error = await t.throwsAsync(r.upsert(event));
  t.true(error instanceof TransientError, error?.name);
  t.is(calls, 2, 'retried within the step first');

  const noCredentials = async () => {
    throw sdkError('CredentialsProviderError', undefined, 'Could not load credentials from any providers');
  };
  const stsExpired = { send: noCredentials } as unknown as STSClient;
  const r2 = new IamReconciler({ iam, sts: stsExpired, config: loadConfig({}), metrics: new Metrics(), logger: silentLogger, attempts: 1 });
  t.true((await t.throwsAsync(r2.delete({ ...event, type: 'policy.deleted' } as never))) instanceof TransientError, 'the account lookup too');
});
