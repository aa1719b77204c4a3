// `adopt`: takes over customer-managed policies under the managed path that
// lack the managed-by tag, so that the next event for each is an update, not
// `not-owned` (ops/adoption.ts says how, and in which order). It shows what it
// would do and asks, unless --yes. Exit code 0 when every chosen policy is
// adopted (or was already), 1 when any is refused, not found or not ours to
// take, or when not confirmed.
import { createLogger } from '../../log/logger.js';
import { ledgerFromConfig } from '../../ledger/dynamodb-ledger.js';
import type { Command } from '../cli/command.js';
import { COMMON_HELP, UsageError } from '../cli/command.js';
import type { OpsContext } from '../cli/context.js';
import { note, print, printJson, table } from '../cli/render.js';
import { adoptPolicy, planAdoption, whoIsOperating } from '../adoption.js';
import type { Planned, Settled } from '../adoption.js';

const WHAT_IT_WOULD_DO: Record<string, string> = {
  adopt: 'tag it and record its current document in the ledger',
  record: 'already tagged ours: record its current document in the ledger',
  'already-adopted': 'nothing: already ours, and the ledger knows it',
  'owned-elsewhere': 'nothing: tagged for another application',
  'not-found': 'nothing: no such policy under the managed path',
  ambiguous: 'nothing: the name exists under more than one path',
};

/** The results that leave nothing to do: exit 0 when every policy ends in one. */
const DONE = new Set(['adopted', 'already-adopted', 'released', 'already-released']);

/** The plan as a table (for people) before asking. */
export function showPlan<Kind extends string>(plans: Planned<Kind>[], say: Record<string, string>): void {
  print(
    table(
      plans.map((plan) => ({ policy: plan.policy, path: plan.path ?? '-', action: plan.owner ? `${say[plan.kind]} (${plan.owner})` : say[plan.kind] })),
      ['policy', 'path', 'action'],
    ),
  );
}

/** The summary line and the result per policy; the exit code. */
export function finish(ctx: OpsContext, settled: Settled[], verb: string): number {
  const counts = new Map<string, number>();
  for (const { result } of settled) counts.set(result, (counts.get(result) ?? 0) + 1);
  const summary = Object.fromEntries([...counts].sort());
  if (ctx.json) printJson({ policies: settled, summary });
  else {
    if (settled.length > 0)
      print(
        table(
          settled.map((s) => ({ policy: s.policy, result: s.result, reason: s.reason })),
          ['policy', 'result', 'reason'],
        ),
      );
    print(`${verb}: ${settled.length === 0 ? 'nothing to do' : [...counts].map(([result, n]) => `${n} ${result}`).join(', ')}.`);
  }
  return settled.every((s) => DONE.has(s.result)) ? 0 : 1;
}

/** The policy names of `--only NAME...`: the option's values, and the operands after it. */
export function namesOf(values: Record<string, unknown>, positionals: string[]): string[] | 'all' {
  const only = (values.only as string[] | undefined) ?? [];
  const all = values.all === true;
  if (all === only.length > 0) throw new UsageError('choose exactly one of --only <name>... or --all');
  if (all) {
    if (positionals.length > 0) throw new UsageError(`--all takes no names (got ${positionals.join(' ')}); to choose policies use --only <name>...`);
    return 'all';
  }
  return [...only, ...positionals];
}

export const adoptCommand: Command = {
  name: 'adopt',
  summary: 'take over untagged policies under the managed path: the next event for each is an update',
  help: `Usage: ips adopt (--only <name>... | --all) [--yes] [--json] [--local]

Takes over existing customer-managed policies under the managed path
(IPS_MANAGED_PATH_PREFIX) that lack the managed-by tag, so that the processor
updates them instead of refusing their events as not-owned. For each policy it
records the policy in the ledger, its current default document, tags and
description as the last applied state, its revision unknown (the first event
of any revision applies), and then tags it managed-by=<IPS_APP_NAME>.
Policies outside the managed path are never adopted.

  --only <name>...  these policies (repeat --only, or list the names after it)
  --all             every untagged policy under the managed path
  -y, --yes         adopt without asking

Safe to run again: a policy already adopted is left as it is. A policy with a
worker's claim on it, or whose ledger entry holds state the processor applied,
is refused (run again later; ips drift). Each policy adopted or refused is
logged on stderr with who ran the tool. Exit code 0 when every chosen policy is
adopted (or was already), 1 otherwise.

${COMMON_HELP}`,
  options: {
    only: { type: 'string', multiple: true },
    all: { type: 'boolean' },
    yes: { type: 'boolean', short: 'y' },
  },
  positionals: true,
  async run(ctx, values, positionals) {
    const { aws, config } = ctx;
    const names = namesOf(values, positionals);
    const ledger = ledgerFromConfig(aws.dynamodb, config);
    const plans = await planAdoption(aws.iam, ledger, config, names);
    if (!ctx.json) showPlan(plans, WHAT_IT_WOULD_DO);
    const toAdopt = plans.filter((plan): plan is typeof plan & { arn: string; path: string } => (plan.kind === 'adopt' || plan.kind === 'record') && plan.arn !== undefined);
    if (toAdopt.length > 0 && values.yes !== true && !(await ctx.confirm(`Adopt ${toAdopt.length} polic${toAdopt.length === 1 ? 'y' : 'ies'}?`))) {
      note(process.stdin.isTTY ? 'Not confirmed; nothing changed.' : 'Not confirmed (no terminal to ask): pass --yes to adopt without asking. Nothing changed.');
      return 1;
    }
    const operator = await whoIsOperating(aws.sts);
    const logger = createLogger('info', { app: config.appName, component: 'ips-adopt' });
    const deps = { iam: aws.iam, ledger, config, operator, logger };
    const settled: Settled[] = [];
    for (const plan of plans) {
      if (plan.kind === 'adopt' || plan.kind === 'record') settled.push(await adoptPolicy(plan as typeof plan & { arn: string; path: string }, deps));
      else settled.push({ policy: plan.policy, ...(plan.arn ? { arn: plan.arn } : {}), result: plan.kind, ...(plan.kind === 'already-adopted' ? {} : { reason: WHAT_IT_WOULD_DO[plan.kind]! }) });
    }
    return finish(ctx, settled, 'Adopt');
  },
};
