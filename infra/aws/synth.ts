// `npm run synth [-- outDir]`: synthesizes the CDK app (infra/aws/app.ts,
// cdk-nag included) and writes each stack's CloudFormation template as JSON,
// `<stack name>.template.json`, by default to dist/infra/ (ignored by git: it
// is a build output): iam-policy-stream.template.json (the main stack) and
// iam-policy-stream-target.template.json (the stack of each target account, a
// StackSet template as it is). They deploy with plain CloudFormation (README,
// "Deploy to AWS"). Offline: no AWS account, credentials or lookups, and no
// CDK CLI.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildApp } from './app.js';
import type { BuildOptions } from './app.js';

export const DEFAULT_OUT_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', 'dist', 'infra');

/** Each stack's template as CloudFormation reads it, by stack name. Throws when cdk-nag reports an unacknowledged finding. */
export function synthTemplates(options: Omit<BuildOptions, 'outdir'> = {}): Record<string, Record<string, unknown>> {
  const outdir = mkdtempSync(join(tmpdir(), 'ips-cdk-'));
  try {
    const { app, stack, targetStack } = buildApp({ ...options, outdir });
    const assembly = app.synth();
    return Object.fromEntries([stack, targetStack].map((each) => [each.stackName, assembly.getStackByName(each.stackName).template as Record<string, unknown>]));
  } finally {
    rmSync(outdir, { recursive: true, force: true });
  }
}

/** Writes every template to `outDir`; returns their paths, the main stack's first. */
export function synth(outDir = DEFAULT_OUT_DIR): string[] {
  const dir = resolve(outDir);
  mkdirSync(dir, { recursive: true });
  return Object.entries(synthTemplates()).map(([stackName, template]) => {
    const path = join(dir, `${stackName}.template.json`);
    writeFileSync(path, `${JSON.stringify(template, null, 2)}\n`);
    return path;
  });
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  process.stdout.write(`${synth(process.argv[2]).join('\n')}\n`);
}
