// One retry policy: every retry of src/ goes through faults/retry.ts with a
// named policy (faults/retry-policies.ts), and every reason a TransientError
// carries is one of the listed transient reasons (faults/errors.ts). Read
// from the sources, so that a loop written by hand again is found here.
import test from 'ava';
import { readFileSync, readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { projectRoot } from '../../src/config/paths.js';

const root = projectRoot();
const src = join(root, 'src');
const files = (readdirSync(src, { recursive: true }) as string[]).filter((file) => file.endsWith('.ts')).map((file) => join(src, file));
const retrier = new Set(['faults/retry.ts', 'faults/backoff.ts'].map((file) => join(src, file)));

/** `file:line: text` of every line of src/ outside the retrier that matches. */
function linesMatching(pattern: RegExp): string[] {
  return files
    .filter((file) => !retrier.has(file))
    .flatMap((file) =>
      readFileSync(file, 'utf8')
        .split('\n')
        .flatMap((line, i) => (pattern.test(line) ? [`${relative(root, file)}:${i + 1}: ${line.trim()}`] : [])),
    );
}

test('no retry loop is written by hand outside the retrier: no attempt or round counter, no backoff computed elsewhere', (t) => {
  t.deepEqual(linesMatching(/for \(let (attempt|round)\b|backoffDelay\(|BACKOFF\b|_ROUNDS\b/), []);
});

test('every reason a TransientError is raised with is a listed transient reason', async (t) => {
  const { TRANSIENT_REASONS } = (await import('../../src/faults/errors.js')) as { TRANSIENT_REASONS?: readonly string[] };
  const raised = files.flatMap((file) => [...readFileSync(file, 'utf8').matchAll(/new TransientError\(\s*'([^']+)'/g)].map((match) => match[1]!));
  t.true(raised.length > 10, 'the sources raise transient errors');
  t.deepEqual(
    raised.filter((reason) => !TRANSIENT_REASONS?.includes(reason)),
    [],
  );
});
