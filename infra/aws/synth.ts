// `npm run synth [-- outFile]`: synthesizes the CDK app (infra/aws/app.ts,
// cdk-nag included) and writes the stack's CloudFormation template as JSON, by
// default to dist/infra/ (ignored by git: it is a build output). The template
// deploys with plain CloudFormation (README, "Deploy to AWS"). Offline: no
// AWS account, credentials or lookups, and no CDK CLI.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildApp } from './app.js';
import type { BuildOptions } from './app.js';

export const DEFAULT_OUT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', 'dist', 'infra', 'iam-policy-stream.template.json');

/** The stack's template as CloudFormation reads it. Throws when cdk-nag reports an unacknowledged finding. */
export function synthTemplate(options: Omit<BuildOptions, 'outdir'> = {}): Record<string, unknown> {
  const outdir = mkdtempSync(join(tmpdir(), 'ips-cdk-'));
  try {
    const { app, stack } = buildApp({ ...options, outdir });
    return app.synth().getStackByName(stack.stackName).template as Record<string, unknown>;
  } finally {
    rmSync(outdir, { recursive: true, force: true });
  }
}

export function synth(outFile = DEFAULT_OUT): string {
  const path = resolve(outFile);
  const template = synthTemplate();
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, `${JSON.stringify(template, null, 2)}\n`);
  return path;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  process.stdout.write(`${synth(process.argv[2])}\n`);
}
