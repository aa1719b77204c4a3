#!/usr/bin/env node
// The operator tool: `ips <command>` (npm run ops -- <command>). Each
// subcommand lives in src/ops/commands/. Exit codes: 0 done, 1 refused or
// failed, 2 bad arguments.
import { existsSync, readFileSync, realpathSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError } from '../config/config.js';
import { closest } from '../config/closest-name.js';
import { projectRoot } from '../config/paths.js';
import { actionCatalogue } from '../policy/action-catalogue.js';
import type { Command } from './cli/command.js';
import { UsageError, parseCommandArgs } from './cli/command.js';
import { createOpsContext, localStackEnvFile } from './cli/context.js';
import type { OpsContext } from './cli/context.js';
import { missingResources } from './cli/missing-resources.js';
import { terminalText } from './cli/render.js';
import { adoptCommand } from './commands/adopt.js';
import { deadLettersCommand } from './commands/dead-letters.js';
import { driftCommand } from './commands/drift.js';
import { planCommand } from './commands/plan.js';
import { produceCommand } from './commands/produce.js';
import { releaseCommand } from './commands/release.js';
import { parkedCommand } from './commands/parked.js';
import { replayCommand } from './commands/replay.js';
import { statusCommand } from './commands/status.js';

const COMMANDS: Command[] = [statusCommand, planCommand, driftCommand, replayCommand, deadLettersCommand, parkedCommand, produceCommand, adoptCommand, releaseCommand];

const OVERVIEW = `Usage: ips <command> [options]

Operates the IAM policy stream processor: the stream, the KCL lease table, the
ledger and the dead-letter store, with the same IPS_* and AWS_* environment as
the processor (docs/configuration.md).

Commands:
${COMMANDS.map((c) => `  ${c.name.padEnd(13)} ${c.summary}`).join('\n')}

Run ips <command> --help for its options. --local targets the local stack.
ips --version prints the version and the action catalogue's.`;

export async function runCli(argv: string[], env?: Record<string, string | undefined>): Promise<number> {
  const [name, ...args] = argv;
  if (name === '--version' || name === '-V') {
    process.stdout.write(`${versionText()}\n`);
    return 0;
  }
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(`${OVERVIEW}\n`);
    return name === undefined ? 2 : 0;
  }
  const command = COMMANDS.find((c) => c.name === name);
  if (!command) {
    const guess = closest(
      name,
      COMMANDS.map((c) => c.name),
    );
    process.stderr.write(`ips: unknown command ${terminalText(JSON.stringify(name))}${guess ? `; did you mean ${guess}?` : ''}\n\n${OVERVIEW}\n`);
    return 2;
  }
  let ctx: OpsContext | undefined;
  try {
    const swallowed = optionsNpmTook(args, env ?? process.env);
    if (swallowed.length > 0) {
      // `npm run ops status --local` hands --local to npm, not to us: running on would reach real AWS.
      throw new UsageError(`npm took ${swallowed.join(' ')} for itself (it passes only what follows -- to the script): write npm run ops -- ${name} ${swallowed.join(' ')} ...`);
    }
    if (npmMayHaveTakenLocal(args, env ?? process.env)) {
      process.stderr.write(
        `ips: note: not --local, so this runs against the AWS account of your credentials. If you meant the local stack, npm may have taken --local for itself: write npm run ops -- ${name} --local\n`,
      );
    }
    const { values, positionals } = parseCommandArgs(command, args);
    if (values.help === true) {
      process.stdout.write(`${command.help}\n`);
      return 0;
    }
    ctx = createOpsContext({ json: values.json === true, local: values.local === true, ...(env ? { env } : {}) });
    return await command.run(ctx, values, positionals);
  } catch (error) {
    if (error instanceof UsageError) {
      const usage = command.help.split('\n')[0];
      process.stderr.write(`ips ${command.name}: ${terminalText(error.message)}\n${usage}\nRun ips ${command.name} --help for details.\n`);
      return 2;
    }
    if (error instanceof ConfigError) {
      process.stderr.write(`ips ${command.name}: configuration: ${terminalText(error.message)}\n`);
      return 2;
    }
    const err = error as Error;
    const hint = await hintFor(err, ctx);
    process.stderr.write(`ips ${command.name}: failed: ${terminalText(err.name)}: ${terminalText(err.message)}\n${hint ? `hint: ${hint}\n` : ''}`);
    return 1;
  } finally {
    ctx?.close();
  }
}

/**
 * Common options npm kept for itself: run as `npm run ops status --local`
 * (without `--`), npm reads --local and --json as its own settings and sets
 * npm_config_local / npm_config_json in the script's environment instead of
 * passing them on.
 */
function optionsNpmTook(args: string[], env: Record<string, string | undefined>): string[] {
  if (!env.npm_lifecycle_event) return [];
  return ['local', 'json'].filter((option) => env[`npm_config_${option}`] === 'true' && !args.includes(`--${option}`)).map((option) => `--${option}`);
}

/**
 * npm 9 and later drop --local without a trace (it is one of npm's own
 * flags), so `npm run ops status --local` cannot be told from
 * `npm run ops status`. Under npm, with a local stack on this machine and no
 * --local, the tool says which endpoints it is about to use.
 */
function npmMayHaveTakenLocal(args: string[], env: Record<string, string | undefined>): boolean {
  return Boolean(env.npm_lifecycle_event) && !args.includes('--local') && existsSync(localStackEnvFile());
}

/** The processor's version and the action catalogue its guardrail expands patterns against (docs/guardrails.md). */
function versionText(): string {
  const manifest = JSON.parse(readFileSync(join(projectRoot(), 'package.json'), 'utf8')) as { name: string; version: string };
  const catalogue = actionCatalogue().info();
  return `${manifest.name} ${manifest.version}\naction catalogue ${catalogue.source} ${catalogue.version} (AWS service authorization data of ${catalogue.dataDate})`;
}

/** What to try next, for the failures an operator meets first. */
async function hintFor(error: Error, ctx: OpsContext | undefined): Promise<string | undefined> {
  if (error.name === 'ResourceNotFoundException' && ctx) {
    const missing = await missingResources(ctx.aws, ctx.config, ctx.env ?? process.env).catch(() => []);
    if (missing.length > 0) return `${missing.join('; ')}. Check the variable, or create the resources (npm run stack:up locally; infra/ on AWS)`;
  }
  if (error.name === 'CredentialsProviderError') {
    return "no AWS credentials found: use the processor's credentials (AWS_PROFILE, AWS_* variables, a role), or --local for the local stack";
  }
  if ((error as NodeJS.ErrnoException).code === 'ECONNREFUSED') {
    return 'nothing answers at the endpoint: is the stack up (npm run stack:up) or the AWS_ENDPOINT_URL_* variable right?';
  }
  return undefined;
}

// Run as a file, or through a link to it (the package's `ips` bin in node_modules/.bin).
const entry = (() => {
  try {
    return realpathSync(process.argv[1] ?? '');
  } catch {
    return process.argv[1] ?? '';
  }
})();
// The SDK's notice about future Node versions would bury the tool's own output.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
if (entry.endsWith('/ops/cli.js') || entry.endsWith('/ops/cli.ts')) {
  process.exitCode = await runCli(process.argv.slice(2));
}
