// The simulation finds the defects it is there to find: each defect the
// protocol once had, put back into the code by a patch of test/sim/mutants/,
// fails a seed of the budget that passes on the code as it is
// (test/sim/mutants.ts; docs/design.md, "Defects put back").
import test from 'ava';
import { mutantLine, mutantNames, mutantPatch, runMutant } from './mutants.js';

/** The budget the simulation test runs on the code as it is: every seed in it passes there. */
const SEEDS = 2_000;

for (const name of mutantNames().filter((mutant) => mutantPatch(mutant).seed !== undefined)) {
  test(`the simulation finds the defect ${name} put back`, (t) => {
    t.timeout(10 * 60_000);
    const result = runMutant(name, SEEDS);
    t.log(mutantLine(result, SEEDS));
    t.is(result.error, undefined);
    t.not(result.found, undefined, `no seed of 1..${SEEDS} fails with ${name} put back`);
  });
}
