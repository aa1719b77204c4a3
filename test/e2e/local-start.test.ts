// `npm start` as a terminal runs it: its own process group, the demo to its
// end, then Ctrl-C as the terminal sends it (SIGINT to the whole group), once
// and twice in a row. Whatever the signals, nothing it started may be left
// running, and the daemon's log may not show a failed shutdown.
import test from 'ava';
import type { ExecutionContext } from 'ava';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { projectRoot } from '../../src/config/paths.js';
import { isAlive } from '../../src/daemon/processes.js';

const root = projectRoot();
const stackDir = join(root, '.local', 'stack');
const daemonLog = join(stackDir, 'logs', 'daemon.log');

/** Processes started from this checkout's stack: the emulators, the daemon, its record processors. */
function leftovers(emulatorPids: number[]): string[] {
  const found: string[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let cmdline = '';
    try {
      cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8').replaceAll('\0', ' ');
    } catch {
      continue;
    }
    const pid = Number(entry);
    if (pid === process.pid) continue;
    const ours =
      emulatorPids.includes(pid) ||
      cmdline.includes(`${stackDir}/daemon-`) || // the daemon: its rendered properties file
      cmdline.includes(join(root, 'dist', 'intake', 'main.js')); // a record processor
    if (ours) {
      // A zombie has ended and only waits for its parent to reap it.
      const state = readFileSync(`/proc/${entry}/stat`, 'utf8').split(') ')[1]?.[0];
      if (state !== 'Z') found.push(`${pid}: ${cmdline.slice(0, 160)}`);
    }
  }
  return found;
}

function killLeftovers(emulatorPids: number[]): void {
  for (const line of leftovers(emulatorPids)) {
    const pid = Number(line.split(':')[0]);
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
  }
}

async function runAndInterrupt(t: ExecutionContext, signals: number, gapMs = 0): Promise<void> {
  const logStart = existsSync(daemonLog) ? statSync(daemonLog).size : 0;
  const started = Date.now();
  const child = spawn(join(root, 'node_modules', '.bin', 'tsx'), ['tools/local/start.ts'], {
    cwd: root,
    detached: true, // its own process group, as a terminal gives it
    stdio: ['ignore', 'pipe', 'pipe'],
    // Metrics every 5 s instead of every minute: any EMF document that reaches the daemon's log shows within the run.
    env: { ...process.env, IPS_LOCAL_SHARDS: '2', IPS_METRICS_INTERVAL_MS: '5000' },
  });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  let emulatorPids: number[] = [];
  try {
    const deadline = Date.now() + 150_000;
    while (!output.includes('Press Ctrl-C') && Date.now() < deadline && child.exitCode === null) await sleep(250);
    t.true(output.includes('Press Ctrl-C'), `the demo ran to its end:\n${output}`);
    t.log(`${output.match(/^First outcome [^:]*/m)?.[0] ?? 'no first outcome line'}; demo finished after ${Math.round((Date.now() - started) / 1000)} s`);
    emulatorPids = (JSON.parse(readFileSync(join(stackDir, 'stack.json'), 'utf8')) as { emulators: { pid: number }[] }).emulators.map((e) => e.pid);
    t.true(leftovers(emulatorPids).length >= 3, 'the stack is running before Ctrl-C');
    for (let n = 0; n < signals; n++) {
      process.kill(-child.pid!, 'SIGINT');
      if (n + 1 < signals) await sleep(gapMs);
    }
    const code = await Promise.race([exited, sleep(90_000).then(() => 'still running')]);
    t.not(code, 'still running', `npm start stopped after Ctrl-C:\n${output}`);
    // Give anything orphaned a moment to show itself as still alive, not just slow to die.
    await sleep(2_000);
    t.deepEqual(leftovers(emulatorPids), [], `nothing is left running:\n${output}`);
    const log = readFileSync(daemonLog, 'utf8').slice(logStart);
    const errors = log.split('\n').filter((line) => / ERROR /.test(line) || /Encountered an error during shutdown/.test(line));
    t.deepEqual(errors, [], 'the daemon shut down without an error');
    t.false(log.includes('"_aws"'), 'no metric (EMF) documents in the daemon log under npm start');
    t.true(log.includes('"msg":"metrics"'), 'the per-interval metrics log line is still there');
    // A second Ctrl-C may cut the graceful shutdown short; a single one may not.
    if (signals === 1) t.true(log.includes('Process shutdown is complete'), `the daemon finished its graceful shutdown:\n${log.split('\n').slice(-20).join('\n')}`);
  } finally {
    child.stdout.destroy();
    child.stderr.destroy();
    if (child.exitCode === null) {
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    killLeftovers(emulatorPids);
    for (const pid of emulatorPids) if (isAlive(pid)) t.log(`killed leftover ${pid}`);
  }
}

test.serial('Ctrl-C to npm start stops the daemon gracefully and leaves nothing running', async (t) => {
  await runAndInterrupt(t, 1);
});

test.serial('Ctrl-C twice in a row hurries the stop but still leaves nothing running', async (t) => {
  // 1.5 s apart: a second press, not the same Ctrl-C relayed by a wrapper.
  await runAndInterrupt(t, 2, 1_500);
});
