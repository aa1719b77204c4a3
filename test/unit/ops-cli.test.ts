// The operator tool's contract with a person at a terminal: help on every
// subcommand, and bad arguments answered with a clear message and exit code 2
// before any AWS call. (The commands' effects are tested end to end in
// test/e2e/operations.test.ts.) Every case runs the tool's command line in one
// child process (test/support/cli-cases.ts): one start-up, not one per case.
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { projectRoot } from '../../src/config/paths.js';
import type { CliCase, CliResult } from '../support/cli-cases.js';

// A closed loopback port: if a bug let a command reach AWS, it would fail here, never leave the machine.
const env = { ...process.env, AWS_ENDPOINT_URL: 'http://127.0.0.1:9', AWS_REGION: 'us-east-1', AWS_ACCESS_KEY_ID: 'x', AWS_SECRET_ACCESS_KEY: 'x' };

const cases: CliCase[] = [];
let results: CliResult[] | undefined;

/** A run of `ips args` with `extraEnv`, registered now and run with every other before the tests; the test reads its result. */
function ips(args: string[], extraEnv: Record<string, string> = {}): () => { code: number; stdout: string; stderr: string } {
  const index = cases.push({ args, env: { ...env, ...extraEnv } }) - 1;
  return () => results![index]!;
}

test.before(() => {
  const dir = mkdtempSync(join(tmpdir(), 'ips-cli-cases-'));
  try {
    const file = join(dir, 'cases.json');
    writeFileSync(file, JSON.stringify(cases));
    const run = spawnSync(process.execPath, ['--import=tsx', join(projectRoot(), 'test', 'support', 'cli-cases.ts'), file], { encoding: 'utf8', timeout: 120_000, maxBuffer: 64 * 1024 * 1024 });
    if (run.status !== 0) throw new Error(`the cases did not run: ${run.stderr}`);
    results = JSON.parse(run.stdout) as CliResult[];
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

const overview = ips([]);
test('without a command it prints the overview and exits 2', (t) => {
  const result = overview();
  t.is(result.code, 2);
  for (const name of ['status', 'plan', 'drift', 'replay', 'dead-letters', 'produce', 'adopt', 'release']) t.regex(result.stdout, new RegExp(`\\b${name}\\b`));
});

const version = ips(['--version']);
test('--version names the processor and the action catalogue its guardrail reads, with the date of its data', (t) => {
  const result = version();
  t.is(result.code, 0);
  t.regex(result.stdout, /^iam-policy-stream \d+\.\d+\.\d+\naction catalogue @cloud-copilot\/iam-data \d+\.\d+\.\d+ \(AWS service authorization data of \d{4}-\d{2}-\d{2}\)\n$/);
});

for (const name of ['status', 'plan', 'drift', 'replay', 'dead-letters', 'produce', 'adopt', 'release']) {
  const help = ips([name, '--help']);
  test(`${name} --help describes the command and exits 0`, (t) => {
    const result = help();
    t.is(result.code, 0);
    t.regex(result.stdout, new RegExp(`^Usage: ips ${name}`));
    t.regex(result.stdout, /--json/);
  });
}

const produceHelp = ips(['produce', '--help']);
test('produce --help describes --aggregate', (t) => {
  const result = produceHelp();
  t.is(result.code, 0);
  t.regex(result.stdout, /--aggregate <n> +KPL-aggregate up to n events per Kinesis record/);
});

const misuse: [string, string[], RegExp][] = [
  ['an unknown command', ['frobnicate'], /unknown command "frobnicate"/],
  ['an unknown option', ['status', '--verbose'], /Unknown option '--verbose'/],
  ['replay without a target', ['replay'], /choose exactly one of --trim-horizon, --at/],
  ['replay with two targets', ['replay', '--trim-horizon', '--at', '2026-01-01T00:00:00Z'], /choose exactly one/],
  ['replay with a bad time', ['replay', '--at', 'yesterday'], /--at must be an ISO 8601 time/],
  ['replay from a time in the future', ['replay', '--at', '2999-01-01T00:00:00Z'], /lies in the future/],
  ['replay with a bad shard position', ['replay', '--shard', 'shardId-1'], /--shard must be <shardId>=<sequenceNumber>/],
  ['replay with a negative liveness window', ['replay', '--trim-horizon', '--liveness-ms=-5'], /--liveness-ms must be an integer from 0/],
  ['plan without a source', ['plan'], /choose exactly one of --file <events.jsonl> and --from-stream/],
  ['plan with two sources', ['plan', '--file', 'events.jsonl', '--from-stream'], /choose exactly one of --file/],
  ['plan of a file with a stream position', ['plan', '--file', 'events.jsonl', '--at', '2026-01-01T00:00:00Z'], /--at only go with --from-stream/],
  ['plan from the stream without a position', ['plan', '--from-stream'], /--from-stream needs exactly one of --trim-horizon and --at/],
  ['plan from a time in the future', ['plan', '--from-stream', '--at', '2999-01-01T00:00:00Z'], /lies in the future/],
  ['plan of a file that is not there', ['plan', '--file', '/nonexistent/events.jsonl'], /--file: cannot read \/nonexistent\/events.jsonl/],
  ['plan with a misspelt option', ['plan', '--flie', 'events.jsonl'], /Unknown option '--flie'; did you mean --file\?/],
  ['dead-letters without an action', ['dead-letters'], /an action is needed/],
  ['dead-letters with an unknown action', ['dead-letters', 'burn'], /unknown action "burn"/],
  ['dead-letters with a bad status', ['dead-letters', 'list', '--status', 'lost'], /--status must be open or redriven/],
  ['produce with a ratio above 1', ['produce', '--duplicate-ratio', '1.5'], /--duplicate-ratio must be a number from 0 to 1/],
  ['produce with ratios adding past 1', ['produce', '--duplicate-ratio', '0.6', '--malformed-ratio', '0.6'], /add up to more than 1/],
  ['produce with a non-integer count', ['produce', '--events', 'many'], /--events must be an integer/],
  ['produce with a bad prefix', ['produce', '--prefix', 'a b'], /--prefix must be/],
  ['produce aggregating 0 events a record', ['produce', '--aggregate', '0'], /--aggregate must be an integer from 1 to 1000000, got "0"/],
  ['produce with a non-integer aggregate', ['produce', '--aggregate', '2.5'], /--aggregate must be an integer/],
  ['produce with --aggregate and no count', ['produce', '--aggregate'], /--aggregate/],
  ['adopt without a choice of policies', ['adopt', '--yes'], /choose exactly one of --only <name>\.\.\. or --all/],
  ['adopt with both --only and --all', ['adopt', '--only', 'a', '--all'], /choose exactly one of --only/],
  ['adopt --all with names', ['adopt', '--all', 'a'], /--all takes no names/],
  ['adopt with names but no --only', ['adopt', 'a'], /choose exactly one of --only/],
  ['release without a name', ['release', '--yes'], /name at least one policy to release/],
];
for (const [what, args, message] of misuse) {
  const run = ips(args);
  test(`${what}: a clear message and exit 2`, (t) => {
    const result = run();
    t.is(result.code, 2, result.stderr);
    t.regex(result.stderr, message);
    t.is(result.stdout, '', 'nothing on stdout, where scripts read results');
  });
}

const badConfig = ips(['status'], { IPS_MANAGED_PATH_PREFIX: 'no-slashes' });
test('a bad configuration value is named, with exit 2', (t) => {
  const result = badConfig();
  t.is(result.code, 2);
  t.regex(result.stderr, /IPS_MANAGED_PATH_PREFIX must look like/);
});

const nothingListens = ips(['status']);
test('an endpoint where nothing listens fails with exit 1 and says what to check', (t) => {
  const result = nothingListens();
  t.is(result.code, 1);
  t.regex(result.stderr, /^ips status: failed: /);
  t.regex(result.stderr, /hint: nothing answers at the endpoint/);
});

const mistypedCommand = ips(['stauts']);
const mistypedAction = ips(['dead-letters', 'shwo']);
test('a mistyped command is answered with the one meant', (t) => {
  const result = mistypedCommand();
  t.is(result.code, 2);
  t.regex(result.stderr, /unknown command "stauts"; did you mean status\?/);
  t.regex(mistypedAction().stderr, /unknown action "shwo" \(did you mean show\?\)/);
});

const driftYes = ips(['drift', '--yes']);
test('drift --yes without --repair says --yes is ignored', (t) => {
  const result = driftYes();
  t.regex(result.stderr, /warning: --yes is ignored without --repair/);
});

const unknownSetting = ips(['status'], { IPS_STREM_NAME: 'orders' });
test('an IPS_ variable nothing reads is warned about, with the setting meant', (t) => {
  const result = unknownSetting();
  t.regex(result.stderr, /ips: warning: IPS_STREM_NAME is not a setting .*did you mean IPS_STREAM_NAME\?/);
});

const npmTookJson = ips(['status'], { npm_lifecycle_event: 'ops', npm_config_json: 'true' });
test('--json that npm kept for itself (npm run ops status --json, without --) is refused, not silently dropped', (t) => {
  const result = npmTookJson();
  t.is(result.code, 2);
  t.regex(result.stderr, /npm took --json for itself .* write npm run ops -- status --json/);
});
