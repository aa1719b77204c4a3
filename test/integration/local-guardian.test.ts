// npm start's guardian: when npm start ends without stopping what it started
// (kill -9), the daemon's and the emulators' process groups are stopped after
// it; while npm start lives, they are left alone.
import test from 'ava';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { projectRoot } from '../../src/config/paths.js';
import { isAlive, killGroup } from '../../src/daemon/processes.js';

function sleeper(): number {
  const child = spawn('sleep', ['300'], { detached: true, stdio: 'ignore' });
  child.unref();
  return child.pid!;
}

test('a killed npm start leaves no daemon or emulator behind', async (t) => {
  const owner = sleeper();
  const groups = [sleeper(), sleeper(), sleeper()];
  const guardian = spawn(process.execPath, ['--import', 'tsx', join(projectRoot(), 'tools', 'local', 'guardian.ts'), String(owner), '2000', ...groups.map(String)], { stdio: 'ignore' });
  const ended = new Promise((resolve) => guardian.once('exit', resolve));
  try {
    await sleep(3_000);
    t.true(
      groups.every((pid) => isAlive(pid)),
      'nothing is stopped while npm start lives',
    );
    process.kill(owner, 'SIGKILL');
    await Promise.race([ended, sleep(30_000)]);
    t.deepEqual(
      groups.filter((pid) => isAlive(pid)),
      [],
      'every group was stopped',
    );
    t.not(guardian.exitCode, null, 'the guardian ended');
  } finally {
    await Promise.all([owner, ...groups].map((pid) => killGroup(pid, 100)));
    guardian.kill('SIGKILL');
  }
});
