// Small modules, one concern each: no TypeScript file under src/ or infra/
// grows past 400 lines. A file that does is split by concern, not trimmed.
import test from 'ava';
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { projectRoot } from '../../src/config/paths.js';

const MAX_LINES = 400;
const root = projectRoot();

/** Files still being split; each leaves this list as it is split, and the list ends empty. */
const SPLITTING = new Set<string>([]);

function tsFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return entry.name === 'node_modules' || entry.name.startsWith('cdk.out') ? [] : tsFiles(path);
    return entry.name.endsWith('.ts') ? [path] : [];
  });
}

test(`no TypeScript file in src/ or infra/ is over ${MAX_LINES} lines`, (t) => {
  const files = ['src', 'infra'].flatMap((folder) => tsFiles(join(root, folder)));
  t.true(files.length > 50, 'the walk finds the sources');
  const over = files
    .map((file) => ({ file: relative(root, file), lines: readFileSync(file, 'utf8').split('\n').length - 1 }))
    .filter(({ file, lines }) => lines > MAX_LINES && !SPLITTING.has(file))
    .map(({ file, lines }) => `${file}: ${lines} lines`);
  t.deepEqual(over, []);
});

test('every file still being split is still over the limit (the list only shrinks)', (t) => {
  const stale = [...SPLITTING].filter((file) => readFileSync(join(root, file), 'utf8').split('\n').length - 1 <= MAX_LINES);
  t.deepEqual(stale, []);
});
