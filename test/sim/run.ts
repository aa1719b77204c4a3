// The simulation's command line: `npm run test:sim -- --seeds N --seed S`
// runs N seeds from S; a failing seed is run again with its trace printed.
// `--seed S --seeds 1 --trace` prints the trace of one seed whatever its result;
// `--stop` ends the budget at its first failing seed; `--profile zombies` makes
// the ingredients of a zombie's late write common (world.ts, SimProfile).
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { runSeed } from './world.js';
import type { SimProfile } from './world.js';

export interface Budget {
  seeds: number;
  first: number;
  /** Ends the budget at its first failing seed. */
  stopAtFirstFailure?: boolean;
  profile?: SimProfile;
}

export interface BudgetResult {
  seeds: number;
  failed: { seed: number; violations: string[] }[];
  ms: number;
  steps: number;
  faults: Record<string, number>;
}

export async function runBudget({ seeds, first, stopAtFirstFailure = false, profile = 'default' }: Budget, onFailure?: (seed: number, violations: string[]) => void): Promise<BudgetResult> {
  const started = performance.now();
  const failed: BudgetResult['failed'] = [];
  const faults: Record<string, number> = {};
  let steps = 0;
  for (let seed = first; seed < first + seeds; seed++) {
    const result = await runSeed({ seed, profile });
    steps += result.steps;
    for (const [fault, n] of Object.entries(result.faults)) faults[fault] = (faults[fault] ?? 0) + n;
    if (result.violations.length > 0) {
      failed.push({ seed, violations: result.violations });
      onFailure?.(seed, result.violations);
      if (stopAtFirstFailure) return { seeds: seed - first + 1, failed, ms: performance.now() - started, steps, faults };
    }
  }
  return { seeds, failed, ms: performance.now() - started, steps, faults };
}

export function summary(result: BudgetResult): string {
  const faults = Object.entries(result.faults)
    .sort()
    .map(([k, v]) => `${k}=${v}`)
    .join(' ');
  return `[simulation] seeds=${result.seeds} steps=${result.steps} ${faults} seconds=${(result.ms / 1000).toFixed(1)} violations=${result.failed.length}`;
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const value = (name: string, fallback: number) => {
    const at = args.indexOf(name);
    return at >= 0 ? Number(args[at + 1]) : fallback;
  };
  const at = args.indexOf('--profile');
  const profile = (at >= 0 ? args[at + 1] : 'default') as SimProfile;
  if (profile !== 'default' && profile !== 'zombies') throw new Error(`--profile takes default or zombies, not ${profile}`);
  const budget = { seeds: value('--seeds', 2_000), first: value('--seed', 1), stopAtFirstFailure: args.includes('--stop'), profile };
  if (args.includes('--trace')) {
    for (let seed = budget.first; seed < budget.first + budget.seeds; seed++) {
      const result = await runSeed({ seed, trace: true, profile });
      console.log(result.trace.join('\n'));
      console.log(`seed ${seed}: ${result.violations.length === 0 ? 'no violation' : result.violations.join('\n')}`);
    }
    return;
  }
  const result = await runBudget(budget, (seed, violations) => console.log(`seed ${seed} failed:\n  ${violations.join('\n  ')}`));
  console.log(summary(result));
  const first = result.failed[0];
  if (first) {
    const replay = await runSeed({ seed: first.seed, trace: true, profile });
    console.log(`\ntrace of seed ${first.seed} (replay: npm run test:sim -- --seed ${first.seed} --seeds 1 --trace${profile === 'default' ? '' : ` --profile ${profile}`}):`);
    console.log(replay.trace.join('\n'));
    process.exitCode = 1;
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) await main();
