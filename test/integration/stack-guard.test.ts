// A stack command never stops the stack of a running `npm start` without
// --force: stack:up, stack:down and a second npm start all go through
// stopStackIn. Stand-ins: a process that lives as npm start would (the owner)
// and one in a process group of its own as an emulator would.
import test from 'ava';
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isAlive, killGroup } from '../../src/daemon/processes.js';
import { StackInUseError, stopStackIn } from '../../tools/local/stack.js';

function sleeper(): number {
  const child = spawn('sleep', ['300'], { detached: true, stdio: 'ignore' });
  child.unref();
  return child.pid!;
}

function stackDir(owner: number | undefined, emulator: number): string {
  const dir = mkdtempSync(join(tmpdir(), 'stack-guard-'));
  const record = { emulators: [{ name: 'kinesis', pid: emulator, port: 1, endpoint: 'http://127.0.0.1:1' }], env: {}, ...(owner ? { owner } : {}) };
  writeFileSync(join(dir, 'stack.json'), JSON.stringify(record));
  writeFileSync(join(dir, 'stack.env'), '');
  return dir;
}

test('the stack of a running npm start is refused without --force and left running', async (t) => {
  const owner = sleeper();
  const emulator = sleeper();
  try {
    const dir = stackDir(owner, emulator);
    const error = await t.throwsAsync(stopStackIn(dir), { instanceOf: StackInUseError });
    t.regex(error?.message ?? '', new RegExp(`running npm start \\(pid ${owner}\\).*--force`));
    t.true(isAlive(emulator), 'the emulator still runs');
    t.true(existsSync(join(dir, 'stack.env')), 'its endpoints are still published');
  } finally {
    await Promise.all([killGroup(owner, 100), killGroup(emulator, 100)]);
  }
});

test('--force stops the owning npm start first, then what is left of its stack', async (t) => {
  const owner = sleeper();
  const emulator = sleeper();
  try {
    const dir = stackDir(owner, emulator);
    const stopped = await stopStackIn(dir, { force: true });
    t.deepEqual(
      stopped.map((e) => e.pid),
      [emulator],
    );
    t.false(isAlive(owner), 'the owner was asked to stop (SIGTERM)');
    t.false(isAlive(emulator));
    t.false(existsSync(join(dir, 'stack.env')));
  } finally {
    await Promise.all([killGroup(owner, 100), killGroup(emulator, 100)]);
  }
});

test('a stack nobody keeps (stack:up, or an npm start that was killed) is stopped without asking', async (t) => {
  const emulator = sleeper();
  try {
    const stopped = await stopStackIn(stackDir(undefined, emulator));
    t.deepEqual(
      stopped.map((e) => e.pid),
      [emulator],
    );
    t.false(isAlive(emulator));
  } finally {
    await killGroup(emulator, 100);
  }
});
