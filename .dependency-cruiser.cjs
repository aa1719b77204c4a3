// The architecture's boundaries, checked in `npm test` (test/unit/boundaries.test.ts):
//   - no import cycles between modules (here) or between folders of src/
//     (the test computes the folder graph from this tool's output);
//   - src/ (what runs in production) never imports tooling (tools/, test/, bench/);
//   - tools/ (what only development uses) never imports test/ or bench/;
//   - test/ and bench/ never import each other (what both need lives in tools/);
//   - src/ folders keep their layering: the lower ones never import the higher
//     ones (faults, config, log, policy, contract < ledger, iam, deadletter, stream <
//     pipeline, plan < intake, ops, daemon).
const LAYERS = [
  ['faults', 'config', 'log', 'types', 'metrics', 'aws', 'policy', 'contract'],
  ['ledger', 'iam', 'deadletter', 'stream'],
  ['pipeline', 'plan'],
  ['intake', 'ops', 'daemon'],
];
const above = (index) => LAYERS.slice(index + 1).flat();

module.exports = {
  forbidden: [
    { name: 'no-circular', severity: 'error', comment: 'modules import each other in a cycle', from: {}, to: { circular: true } },
    {
      name: 'src-not-tooling',
      severity: 'error',
      comment: 'src/ is what ships; tooling may import it, never the other way',
      from: { path: '^src/' },
      to: { path: '^(tools|test|bench)/' },
    },
    {
      name: 'tools-not-tests',
      severity: 'error',
      comment: 'tools/ serves tests and benchmarks; it never imports them',
      from: { path: '^tools/' },
      to: { path: '^(test|bench)/' },
    },
    { name: 'bench-not-test', severity: 'error', comment: 'benchmarks share code with tests through tools/', from: { path: '^bench/' }, to: { path: '^test/' } },
    { name: 'test-not-bench', severity: 'error', comment: 'tests share code with benchmarks through tools/', from: { path: '^test/' }, to: { path: '^bench/' } },
    ...LAYERS.slice(0, -1).flatMap((layer, index) =>
      layer.map((folder) => ({
        name: `layer-${folder}`,
        severity: 'error',
        comment: `src/${folder} lies below ${above(index).join(', ')}: it must not import them (a cycle between folders in the making)`,
        from: { path: `^src/${folder}/` },
        to: { path: `^src/(${above(index).join('|')})/` },
      })),
    ),
  ],
  options: {
    // TypeScript 7 has no JavaScript API for dependency-cruiser to parse with:
    // the boundaries test compiles every folder to JavaScript in a temporary
    // folder (imports keep their paths) and cruises that. Type-only imports
    // are erased by then: the rules speak of runtime dependencies.
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '(^|/)node_modules/' },
  },
};
