// Runs the operator tool's command line once per case, in one process (one
// start-up instead of one per case): each case's exit code, stdout and stderr
// as `ips` would give them. Used by test/unit/ops-cli.test.ts as
// `node --import=tsx test/support/cli-cases.ts <cases.json>`; the results go
// to stdout as JSON, after every case has run.
import { readFileSync } from 'node:fs';
import { runCli } from '../../src/ops/cli.js';

export interface CliCase {
  args: string[];
  env: Record<string, string | undefined>;
}

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the cases one after another, each with its own capture of stdout and stderr. */
export async function runCliCases(cases: CliCase[]): Promise<CliResult[]> {
  const results: CliResult[] = [];
  const out = process.stdout.write.bind(process.stdout);
  const err = process.stderr.write.bind(process.stderr);
  for (const { args, env } of cases) {
    let stdout = '';
    let stderr = '';
    process.stdout.write = ((chunk: string | Uint8Array) => {
      stdout += chunk.toString();
      return true;
    }) as typeof process.stdout.write;
    process.stderr.write = ((chunk: string | Uint8Array) => {
      stderr += chunk.toString();
      return true;
    }) as typeof process.stderr.write;
    try {
      const code = await runCli(args, env);
      results.push({ code, stdout, stderr });
    } finally {
      process.stdout.write = out;
      process.stderr.write = err;
    }
  }
  return results;
}

if (process.argv[2] !== undefined && import.meta.url.endsWith('/cli-cases.ts')) {
  const cases = JSON.parse(readFileSync(process.argv[2], 'utf8')) as CliCase[];
  process.stdout.write(JSON.stringify(await runCliCases(cases)));
}
