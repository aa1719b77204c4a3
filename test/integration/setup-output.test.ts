// npm start's and npm test's set-up writes plain text when its output goes to
// a file or a pipe (a log, CI): no terminal escape codes.
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { projectRoot } from '../../src/config/paths.js';

test('the set-up prints no escape codes into a log', (t) => {
  const result = spawnSync('bash', [join(projectRoot(), 'infra', 'local', 'setup.sh')], { cwd: projectRoot(), encoding: 'utf8', timeout: 240_000 });
  t.is(result.status, 0, result.stderr);
  t.regex(result.stderr, /\[setup\] TypeScript build/);
  t.false(/\x1b\[/.test(result.stdout + result.stderr), JSON.stringify(result.stderr.slice(0, 300)));
});
