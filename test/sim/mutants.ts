// The simulation finds the defects it is there to find. Each patch in
// test/sim/mutants/ puts back one defect the protocol once had (its header
// says which, docs/design.md "Defects put back"); on the patched code the
// simulation must fail within a budget of seeds, the budget `npm test` runs
// on the code as it is (where every seed passes). A patch that no longer
// applies, or a defect the budget no longer finds, fails the run.
//
//   npm run test:sim:mutants                      every patch, seeds 1..2000
//   npm run test:sim:mutants -- --seeds 5000 lost-completion-answer
//
// The patched copy lives in a temporary directory: the working tree is never
// touched.
import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(fileURLToPath(import.meta.url), '../../..');
const MUTANTS = join(ROOT, 'test/sim/mutants');
/** What the simulation imports: the code under test, the test support and the oracle. */
const COPIED = ['src', 'test', 'tools', 'package.json', 'tsconfig.json'];

export interface MutantResult {
  name: string;
  defect: string;
  /** The first seed whose run found a violation, with it; undefined: the budget found none. */
  found?: { seed: number; violation: string };
  seconds: number;
  /** Why the patched code could not be run (the patch no longer applies). */
  error?: string;
}

export function mutantNames(): string[] {
  return readdirSync(MUTANTS)
    .filter((file) => file.endsWith('.patch'))
    .map((file) => basename(file, '.patch'))
    .sort();
}

export interface MutantPatch {
  /** The `Defect:` line: what it puts back. */
  defect: string;
  /** The `Seed:` line: the seed that found it when the patch was written; absent when no budget does. */
  seed?: number;
  /** The `Pinned-by:` line of a defect the simulation does not find: the test that does. */
  pinnedBy?: string;
  /** The `Profile:` line: the world's fault rates the budget runs under (world.ts, SimProfile). */
  profile?: string;
}

export function mutantPatch(name: string): MutantPatch {
  const text = readFileSync(join(MUTANTS, `${name}.patch`), 'utf8');
  const line = (field: string) => new RegExp(`^${field}: (.*)$`, 'm').exec(text)?.[1];
  const seed = line('Seed');
  const pinnedBy = line('Pinned-by');
  const profile = line('Profile');
  return {
    defect: line('Defect') ?? '(no Defect: line)',
    ...(seed !== undefined ? { seed: Number(seed) } : {}),
    ...(pinnedBy !== undefined ? { pinnedBy } : {}),
    ...(profile !== undefined ? { profile } : {}),
  };
}

export function runMutant(name: string, seeds: number): MutantResult {
  const started = performance.now();
  const patchFile = join(MUTANTS, `${name}.patch`);
  const { defect, seed: known, profile } = mutantPatch(name);
  const dir = mkdtempSync(join(tmpdir(), `ips-mutant-${name}-`));
  const seconds = () => (performance.now() - started) / 1000;
  try {
    for (const entry of COPIED) cpSync(join(ROOT, entry), join(dir, entry), { recursive: true });
    symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'));
    const applied = spawnSync('git', ['apply', patchFile], { cwd: dir, encoding: 'utf8' });
    if (applied.status !== 0) return { name, defect, seconds: seconds(), error: `the patch no longer applies: ${applied.stderr.trim()}` };
    // The seed that found it last time first (a seed's draws follow the code's path, so it may
    // no longer lead there after a change), then the whole budget.
    for (const [first, count] of [...(known !== undefined ? [[known, 1]] : []), [1, seeds]] as [number, number][]) {
      const run = spawnSync(process.execPath, ['--import=tsx', 'test/sim/run.ts', '--seeds', String(count), '--seed', String(first), '--stop', '--profile', profile ?? 'default'], {
        cwd: dir,
        encoding: 'utf8',
        maxBuffer: 256 * 1024 * 1024,
      });
      const failed = /^seed (\d+) failed:\n\s*(.*)$/m.exec(run.stdout);
      if (failed) return { name, defect, found: { seed: Number(failed[1]), violation: failed[2]! }, seconds: seconds() };
      if (run.status !== 0) return { name, defect, seconds: seconds(), error: `the simulation did not run: ${run.stderr.trim().slice(-2_000)}` };
    }
    return { name, defect, seconds: seconds() };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export function mutantLine(result: MutantResult, seeds: number): string {
  const head = `[mutant] ${result.name} (${result.defect}):`;
  if (result.error) return `${head} ${result.error}`;
  if (!result.found) {
    const { pinnedBy } = mutantPatch(result.name);
    return `${head} not found in seeds 1..${seeds} (${result.seconds.toFixed(1)} s)${pinnedBy ? `; pinned by ${pinnedBy}` : ''}`;
  }
  return `${head} seed ${result.found.seed} fails (${result.seconds.toFixed(1)} s): ${result.found.violation}`;
}

function main(): void {
  const args = process.argv.slice(2);
  const at = args.indexOf('--seeds');
  const seeds = at >= 0 ? Number(args[at + 1]) : 2_000;
  const named = args.filter((arg, i) => !arg.startsWith('--') && (at < 0 || i !== at + 1));
  const names = named.length > 0 ? named : mutantNames();
  let found = 0;
  let missed = 0;
  for (const name of names) {
    const result = runMutant(name, seeds);
    console.log(mutantLine(result, seeds));
    if (result.found) found++;
    // A defect the simulation found once must stay found; one it never found is pinned by another test.
    else if (mutantPatch(name).seed !== undefined || result.error) missed++;
  }
  console.log(`[mutants] ${found} of ${names.length} defects found by the simulation in seeds 1..${seeds}`);
  if (missed > 0) process.exitCode = 1;
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) main();
