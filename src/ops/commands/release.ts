// `release`: gives policies back. The ledger forgets what it knows of each
// policy's IAM state, then its managed-by tag is removed (ops/adoption.ts says
// why in that order), after which the processor refuses its events as
// `not-owned` and leaves it alone. Exit code 0 when every named policy is
// released (or was already), 1 otherwise.
import { createLogger } from '../../log/logger.js';
import { ledgerFromConfig } from '../../ledger/dynamodb-ledger.js';
import type { Command } from '../cli/command.js';
import { COMMON_HELP, UsageError } from '../cli/command.js';
import { note } from '../cli/render.js';
import { planRelease, releasePolicy, whoIsOperating } from '../adoption.js';
import type { Settled } from '../adoption.js';
import { finish, showPlan } from './adopt.js';

const WHAT_IT_WOULD_DO: Record<string, string> = {
  release: 'forget it in the ledger and remove its managed-by tag',
  'already-released': 'not tagged: make sure the ledger forgot it',
  'owned-elsewhere': 'nothing: tagged for another application',
  'not-found': 'nothing: no such policy under the managed path',
  ambiguous: 'nothing: the name exists under more than one path',
};

export const releaseCommand: Command = {
  name: 'release',
  summary: 'give policies back: remove the managed-by tag and forget them in the ledger',
  help: `Usage: ips release <name>... [--yes] [--json] [--local]

Gives managed policies back: the ledger forgets what it knows of each policy's
IAM state (its position and recent eventIds stay, so a redelivered record stays
a duplicate), and its managed-by tag is removed. The policy itself, its
document, versions, other tags and attachments stay as they are. Afterwards
the processor refuses events for it as not-owned, until it is adopted again.

  -y, --yes   release without asking

Safe to run again. A policy with a worker's claim on it is refused (run again
later). Each policy released or refused is logged on stderr with who ran the
tool. Exit code 0 when every named policy is released (or was already), 1
otherwise.

${COMMON_HELP}`,
  options: {
    yes: { type: 'boolean', short: 'y' },
  },
  positionals: true,
  async run(ctx, values, positionals) {
    const { aws, config } = ctx;
    if (positionals.length === 0) throw new UsageError('name at least one policy to release');
    const ledger = ledgerFromConfig(aws.dynamodb, config);
    const plans = await planRelease(aws.iam, config, positionals);
    if (!ctx.json) showPlan(plans, WHAT_IT_WOULD_DO);
    const toRelease = plans.filter((plan) => plan.kind === 'release');
    if (toRelease.length > 0 && values.yes !== true && !(await ctx.confirm(`Release ${toRelease.length} polic${toRelease.length === 1 ? 'y' : 'ies'}?`))) {
      note(process.stdin.isTTY ? 'Not confirmed; nothing changed.' : 'Not confirmed (no terminal to ask): pass --yes to release without asking. Nothing changed.');
      return 1;
    }
    const operator = await whoIsOperating(aws.sts);
    const logger = createLogger('info', { app: config.appName, component: 'ips-release' });
    const deps = { iam: aws.iam, ledger, config, operator, logger };
    const settled: Settled[] = [];
    for (const plan of plans) {
      if ((plan.kind === 'release' || plan.kind === 'already-released') && plan.arn) settled.push(await releasePolicy({ ...plan, arn: plan.arn }, deps));
      else settled.push({ policy: plan.policy, ...(plan.arn ? { arn: plan.arn } : {}), result: plan.kind, reason: WHAT_IT_WOULD_DO[plan.kind]! });
    }
    return finish(ctx, settled, 'Release');
  },
};
