// The architecture's boundaries (.dependency-cruiser.cjs), checked by
// dependency-cruiser over every source folder: no cycles between modules or
// between folders of src/, src/ never imports tooling, test/ and bench/ never
// import each other, and src/'s folders keep their layering.
import test from 'ava';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { projectRoot } from '../../src/config/paths.js';

interface Cruise {
  modules: { source: string; dependencies: { resolved: string }[] }[];
  summary: { violations: { rule: { name: string }; from: string; to: string }[] };
}

const root = projectRoot();
const folders = ['src', 'tools', 'test', 'bench', 'infra'].filter((folder) => existsSync(join(root, folder)));
// Every folder compiled to JavaScript, paths kept (see .dependency-cruiser.cjs), then cruised.
const compiled = mkdtempSync(join(tmpdir(), 'ips-boundaries-'));
test.after.always(() => rmSync(compiled, { recursive: true, force: true }));
execFileSync(
  process.execPath,
  [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(root, 'tsconfig.check.json'), '--noEmit', 'false', '--outDir', compiled, '--sourceMap', 'false', '--declaration', 'false'],
  {
    cwd: root,
    stdio: 'ignore',
  },
);
// It exits non-zero when a rule is broken; the JSON on stdout says which.
const run = spawnSync(
  process.execPath,
  [join(root, 'node_modules', 'dependency-cruiser', 'bin', 'dependency-cruise.mjs'), ...folders, '--config', join(root, '.dependency-cruiser.cjs'), '--output-type', 'json'],
  {
    cwd: compiled,
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
  },
);
const cruise = JSON.parse(run.stdout) as Cruise;

test('no dependency rule is broken', (t) => {
  t.true(cruise.modules.length > 100, `the sources were read (${cruise.modules.length} modules)`);
  t.deepEqual(
    cruise.summary.violations.map((v) => `${v.rule.name}: ${v.from} -> ${v.to}`),
    [],
  );
});

test('no cycle between the folders of src/', (t) => {
  const folderOf = (path: string) => /^src\/([^/]+)\//.exec(path)?.[1];
  const edges = new Map<string, Set<string>>();
  for (const module of cruise.modules) {
    const from = folderOf(module.source);
    if (!from) continue;
    for (const { resolved } of module.dependencies) {
      const to = folderOf(resolved);
      if (to && to !== from) edges.set(from, (edges.get(from) ?? new Set()).add(to));
    }
  }
  // Depth-first search for a path back to where it started.
  const cycles: string[] = [];
  const visit = (start: string, at: string, path: string[]) => {
    for (const next of edges.get(at) ?? []) {
      if (next === start) cycles.push([...path, next].join(' -> '));
      else if (!path.includes(next)) visit(start, next, [...path, next]);
    }
  };
  for (const folder of edges.keys()) visit(folder, folder, [folder]);
  t.deepEqual(cycles, []);
});
