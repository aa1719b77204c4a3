// `npm start` as a terminal runs it: its own process group, the demo to its
// end, then Ctrl-C as the terminal sends it (SIGINT to the whole group), once
// and twice in a row. Whatever the signals, nothing it started may be left
// running, and the daemon's log may not show a failed shutdown. Before the
// first, `ips status` must already count the demo's outcomes.
import test from 'ava';
import type { ExecutionContext } from 'ava';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { projectRoot } from '../../src/config/paths.js';
import { isAlive } from '../../src/daemon/processes.js';
import { demoWaves } from '../../tools/local/demo.js';

const root = projectRoot();
const stackDir = join(root, '.local', 'stack');
const daemonLog = join(stackDir, 'logs', 'daemon.log');

/**
 * What this run's npm start started: its emulators (by pid), and the daemon
 * and record processors that talk to its Kinesis emulator (by their
 * environment: other suites run daemons and record processors of this same
 * checkout at the same time, against stacks of their own).
 */
interface RunProcesses {
  emulatorPids: number[];
  kinesisEndpoint: string;
}

function leftovers({ emulatorPids, kinesisEndpoint }: RunProcesses): string[] {
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
    const daemonOrProcessor =
      cmdline.includes(`${stackDir}/daemon-`) || // the daemon: its rendered properties file
      cmdline.includes(join(root, 'dist', 'intake', 'main.js')); // a record processor
    const ours = emulatorPids.includes(pid) || (daemonOrProcessor && talksTo(pid, kinesisEndpoint));
    if (ours) {
      // A zombie has ended and only waits for its parent to reap it.
      const state = readFileSync(`/proc/${entry}/stat`, 'utf8').split(') ')[1]?.[0];
      if (state !== 'Z') found.push(`${pid}: ${cmdline.slice(0, 160)}`);
    }
  }
  return found;
}

/** Whether the process's environment names this Kinesis endpoint (the stack it was started for). */
function talksTo(pid: number, kinesisEndpoint: string): boolean {
  try {
    return readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0').includes(`AWS_ENDPOINT_URL_KINESIS=${kinesisEndpoint}`);
  } catch {
    return false;
  }
}

function killLeftovers(run: RunProcesses): void {
  for (const line of leftovers(run)) {
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
  let run: RunProcesses = { emulatorPids: [], kinesisEndpoint: '-' };
  try {
    const deadline = Date.now() + 150_000;
    while (!output.includes('Press Ctrl-C') && Date.now() < deadline && child.exitCode === null) await sleep(250);
    t.true(output.includes('Press Ctrl-C'), `the demo ran to its end:\n${output}`);
    t.log(`${output.match(/^First outcome [^:]*/m)?.[0] ?? 'no first outcome line'}; demo finished after ${Math.round((Date.now() - started) / 1000)} s`);
    const record = JSON.parse(readFileSync(join(stackDir, 'stack.json'), 'utf8')) as { emulators: { pid: number }[]; env: Record<string, string> };
    run = { emulatorPids: record.emulators.map((e) => e.pid), kinesisEndpoint: record.env.AWS_ENDPOINT_URL_KINESIS! };
    // The emulators, the daemon and its two record processors.
    t.true(leftovers(run).length >= 5, `the stack is running before Ctrl-C: ${leftovers(run).join('; ')}`);
    if (signals === 1) await statusCountsTheDemo(t, output, started);
    for (let n = 0; n < signals; n++) {
      process.kill(-child.pid!, 'SIGINT');
      if (n + 1 < signals) await sleep(gapMs);
    }
    const code = await Promise.race([exited, sleep(90_000).then(() => 'still running')]);
    t.not(code, 'still running', `npm start stopped after Ctrl-C:\n${output}`);
    // Give anything orphaned a moment to show itself as still alive, not just slow to die.
    await sleep(2_000);
    t.deepEqual(leftovers(run), [], `nothing is left running:\n${output}`);
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
    killLeftovers(run);
    for (const pid of run.emulatorPids) if (isAlive(pid)) t.log(`killed leftover ${pid}`);
  }
}

/**
 * The first command a newcomer runs after the demo: `ips status --local` counts
 * the demo's outcomes in its last minute (those a record processor settled
 * before its first progress report included), within a minute of the demo's end.
 */
async function statusCountsTheDemo(t: ExecutionContext, output: string, started: number): Promise<void> {
  const only = /Only (\d+) of \d+ demo events settled/.exec(output);
  const expected = only ? Number(only[1]) : demoWaves().flat().length;
  const deadline = Date.now() + 60_000;
  let counted = 0;
  let report = '';
  while (Date.now() < deadline) {
    const env: Record<string, string | undefined> = { ...process.env };
    delete env.npm_lifecycle_event;
    const result = spawnSync(process.execPath, ['--import=tsx', join(root, 'src', 'ops', 'cli.ts'), 'status', '--local', '--json'], { cwd: root, env, encoding: 'utf8', timeout: 60_000 });
    report = `${result.stdout}${result.stderr}`;
    if (result.status === 0) {
      const lastMinute = (JSON.parse(result.stdout) as { lastMinute: Record<string, number> }).lastMinute;
      counted = Object.values(lastMinute).reduce((sum, count) => sum + count, 0);
      if (counted >= expected) break;
    }
    await sleep(2_000);
  }
  t.log(`ips status counted ${counted} of the demo's ${expected} outcomes ${Math.round((Date.now() - started) / 1000)} s after npm start`);
  t.true(counted >= expected, `status counts every settled demo outcome in its last minute:\n${report}`);
}

test.serial('Ctrl-C to npm start stops the daemon gracefully and leaves nothing running', async (t) => {
  await runAndInterrupt(t, 1);
});

test.serial('Ctrl-C twice in a row hurries the stop but still leaves nothing running', async (t) => {
  // 1.5 s apart: a second press, not the same Ctrl-C relayed by a wrapper.
  await runAndInterrupt(t, 2, 1_500);
});
