// `npm run synth [-- outFile]`: writes the CloudFormation template as JSON,
// by default to dist/infra/ (ignored by git: it is a build output).
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildTemplate } from './template.js';

export const DEFAULT_OUT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', 'dist', 'infra', 'iam-policy-stream.template.json');

export function synth(outFile = DEFAULT_OUT): string {
  const path = resolve(outFile);
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, `${JSON.stringify(buildTemplate(), null, 2)}\n`);
  return path;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  process.stdout.write(`${synth(process.argv[2])}\n`);
}
