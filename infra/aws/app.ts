// The CDK app: two stacks, checked by cdk-nag's AWS Solutions rules whenever
// they are synthesized. A finding that is not acknowledged with a reason in
// the stack stops the synthesis.
//
//   iam-policy-stream         the stream, tables, workers and operations (stack.ts)
//   iam-policy-stream-target  the roles of a target account (target-stack.ts),
//                             deployed in each account the workers manage
//
//   npx cdk deploy iam-policy-stream --app 'npx tsx infra/aws/app.ts' --parameters ImageUri=... (README, "Deploy to AWS")
//   npm run synth                                  (the templates alone, infra/aws/synth.ts)
//
// Nothing here looks anything up or needs an AWS account: every setting that
// differs between deployments is a CloudFormation parameter. `-c kclVersion=3.0.0`
// overrides the KCL version read from kcl/pom.xml.
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { App, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { IamPolicyStreamStack, STACK_NAME } from './stack.js';
import { TARGET_STACK_NAME } from './target-account.js';
import { TargetAccountStack } from './target-stack.js';

export interface BuildOptions {
  /** Where the cloud assembly goes; under the CDK CLI, where the CLI says (CDK_OUTDIR). */
  outdir?: string;
  kclVersion?: string;
  /** Run cdk-nag's AWS Solutions checks at synthesis (default true). */
  nag?: boolean;
}

export function buildApp(options: BuildOptions = {}): { app: App; stack: IamPolicyStreamStack; targetStack: TargetAccountStack } {
  const app = new App(options.outdir ? { outdir: options.outdir } : {});
  const kclVersion = options.kclVersion ?? (app.node.tryGetContext('kclVersion') as string | undefined);
  const stack = new IamPolicyStreamStack(app, STACK_NAME, kclVersion ? { kclVersion } : {});
  const targetStack = new TargetAccountStack(app, TARGET_STACK_NAME);
  if (options.nag !== false) Validations.of(app).addPlugins(new AwsSolutionsChecks(app, { verbose: true }));
  return { app, stack, targetStack };
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  buildApp().app.synth();
}
