// The target accounts of the local stack: moto serves every account apart
// (an assumed role's credentials act in the account its ARN names), so the
// local stack provisions, in each target account, the role the workers
// assume (IPS_TARGET_ROLE_NAME) with a trust policy naming the worker's own
// account, and the ExternalId condition when IPS_TARGET_EXTERNAL_ID is set.
// On AWS a target-account stack holds this role and its least-privilege
// grant; moto does not check grants, so none is attached here.
import { CreateRoleCommand, EntityAlreadyExistsException, IAMClient, UpdateAssumeRolePolicyCommand } from '@aws-sdk/client-iam';
import type { Config } from '../../src/config/config.js';

/** The accounts `npm start` and the test stacks allow besides moto's default one. */
export const LOCAL_TARGET_ACCOUNTS = ['111111111111', '222222222222'] as const;

/** The trust policy of a target role: the worker's account may assume it (with the ExternalId, when one is configured). */
export function targetTrustPolicy(workerAccount: string, externalId: string | undefined): object {
  return {
    Version: '2012-10-17',
    Statement: [
      {
        Effect: 'Allow',
        Principal: { AWS: `arn:aws:iam::${workerAccount}:root` },
        Action: 'sts:AssumeRole',
        ...(externalId !== undefined ? { Condition: { StringEquals: { 'sts:ExternalId': externalId } } } : {}),
      },
    ],
  };
}

/** An IAM client whose calls moto serves in `account` (its x-moto-account-id header). */
export function iamIn(env: Record<string, string>, account: string): IAMClient {
  const iam = new IAMClient({
    region: env.AWS_REGION,
    endpoint: env.AWS_ENDPOINT_URL_IAM,
    credentials: { accessKeyId: env.AWS_ACCESS_KEY_ID!, secretAccessKey: env.AWS_SECRET_ACCESS_KEY! },
  });
  iam.middlewareStack.add(
    (next) => async (args) => {
      const request = args.request as { headers?: Record<string, string> };
      if (request.headers) request.headers['x-moto-account-id'] = account;
      return next(args);
    },
    { step: 'build', name: 'moto-account' },
  );
  return iam;
}

/** Creates (or re-trusts) the target role in each target account of `config`. */
export async function provisionTargetRoles(env: Record<string, string>, config: Config, workerAccount: string): Promise<void> {
  const trust = JSON.stringify(targetTrustPolicy(workerAccount, config.targetExternalId));
  await Promise.all(
    config.targetAccounts.map(async (account) => {
      const iam = iamIn(env, account);
      try {
        await iam.send(new CreateRoleCommand({ RoleName: config.targetRoleName, AssumeRolePolicyDocument: trust, Description: `assumed by ${config.appName} workers of account ${workerAccount}` }));
      } catch (error) {
        if (!(error instanceof EntityAlreadyExistsException)) throw error;
        await iam.send(new UpdateAssumeRolePolicyCommand({ RoleName: config.targetRoleName, PolicyDocument: trust }));
      } finally {
        iam.destroy();
      }
    }),
  );
}
