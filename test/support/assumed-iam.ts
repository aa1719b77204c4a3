// An IAM client for another account of a local stack, reached as the
// processor reaches it: through STS AssumeRole of the target role, with the
// stack's own credentials as the caller. moto then serves the account the
// role's ARN names, apart from every other.
import { IAMClient } from '@aws-sdk/client-iam';
import { fromTemporaryCredentials } from '@aws-sdk/credential-providers';

export function assumedIam(env: Record<string, string>, account: string, roleName = 'iam-policy-stream-target'): IAMClient {
  const masterCredentials = { accessKeyId: env.AWS_ACCESS_KEY_ID!, secretAccessKey: env.AWS_SECRET_ACCESS_KEY! };
  return new IAMClient({
    region: env.AWS_REGION!,
    endpoint: env.AWS_ENDPOINT_URL_IAM!,
    credentials: fromTemporaryCredentials({
      params: { RoleArn: `arn:aws:iam::${account}:role/${roleName}`, RoleSessionName: `test-reader-${account}` },
      masterCredentials,
      clientConfig: { region: env.AWS_REGION!, endpoint: env.AWS_ENDPOINT_URL_STS! },
    }),
  });
}
