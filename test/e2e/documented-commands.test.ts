// Every `ips` command README.md and docs/operations.md show in their code
// blocks runs as written, against a local stack with a running daemon (as
// under `npm start`): the commands are read from the Markdown itself, so the
// docs cannot drift from the tool. A command passes when the tool accepts it
// and does what it can (exit 0, or 1 for a documented refusal such as drift
// found or live workers holding leases); a usage error (exit 2) or a failure
// (`failed:`) fails the test.
//
// Two things differ from a developer's terminal, on purpose: `npm run ops --`
// is run as `node dist/ops/cli.js` (npm adds nothing but its banner), and
// `--local` is dropped in favour of the test stack's environment, because
// --local reads the repository's .local/stack/stack.env, which belongs to the
// developer's own `npm start`.
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { projectRoot } from '../../src/config/paths.js';
import { deletedEvent, upsertedEvent } from '../../src/contract/wire-event.js';
import { DynamoDbDeadLetterStore } from '../../src/deadletter/dead-letter-store.js';
import { eventRecord, putRecords } from '../../src/ops/producer.js';
import { startTestDaemon, waitForOutcomes } from '../../tools/harness/daemon.js';
import type { TestDaemon } from '../../tools/harness/daemon.js';
import { startTestStack } from '../../tools/harness/stack.js';
import type { TestStack } from '../../tools/harness/stack.js';

const DOCS = ['README.md', 'docs/operations.md'];
const PREFIX = /^(?:\$ )?npm run (?:-s )?ops -- /;

/** The `npm run ops -- ...` lines of a Markdown file's code blocks, continuation lines joined. */
function documentedCommands(markdown: string): string[] {
  const commands: string[] = [];
  let inBlock = false;
  let pending = '';
  for (const line of markdown.split('\n')) {
    if (/^```/.test(line.trim())) {
      inBlock = !inBlock;
      continue;
    }
    if (!inBlock) continue;
    const text = pending ? `${pending} ${line.trim()}` : line.trim();
    if (!pending && !PREFIX.test(text)) continue;
    if (text.endsWith('\\')) {
      pending = text.slice(0, -1).trim();
      continue;
    }
    pending = '';
    commands.push(text.replace(/^\$ /, ''));
  }
  return commands;
}

/** What a documented `--file` holds: an update of a policy the daemon applied, a new one, a delete. */
const EVENTS_FILE = [
  upsertedEvent({ eventId: 'doc-file-1', name: 'doc-policy-1', document: { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: 's3:PutObject', Resource: '*' }] } }),
  upsertedEvent({
    eventId: 'doc-file-2',
    name: 'doc-file-policy',
    document: { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: 's3:GetObject', Resource: '*' }] },
    tags: { team: 'docs' },
  }),
  deletedEvent({ eventId: 'doc-file-3', name: 'doc-policy-2' }),
];

const commands = DOCS.flatMap((file) => documentedCommands(readFileSync(join(projectRoot(), file), 'utf8')).map((command) => ({ file, command })));
let testStack: TestStack | undefined;
const stackOf = () => testStack!;
let daemon: TestDaemon | undefined;

test.before(async () => {
  testStack = await startTestStack({ shards: 2 });
  const { config, clients } = testStack;
  daemon = startTestDaemon(stackOf());
  // Something to show: a few events the daemon applies, and the dead letters the docs name.
  const aws = clients();
  const puts = await putRecords(
    aws.kinesis,
    config.streamName,
    [1, 2, 3].map((i) =>
      eventRecord(upsertedEvent({ eventId: `doc-${i}`, name: `doc-policy-${i}`, document: { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: 's3:GetObject', Resource: '*' }] } })),
    ),
  );
  await waitForOutcomes([daemon.logFile], puts);
  const store = new DynamoDbDeadLetterStore(aws.dynamodb, config.deadLetterTable);
  for (const { command } of commands) {
    const id = /dead-letters show .*'([^']+#\d+#\d+)'/.exec(command)?.[1];
    if (!id) continue;
    const [shardId, sequenceNumber, sub] = id.split('#');
    await store.store({
      record: { shardId: shardId!, sequenceNumber: sequenceNumber!, subSequenceNumber: Number(sub) },
      partitionKey: 'not json',
      reason: 'invalid-json',
      detail: 'Unexpected token',
      data: Buffer.from('not json'),
    });
  }
});

test.after.always(async () => {
  await daemon?.stop();
  await testStack?.stack.stop();
});

test('the docs show a command of every kind', (t) => {
  const shown = new Set(commands.map(({ command }) => command.replace(PREFIX, '').split(' ')[0]));
  for (const name of ['status', 'plan', 'drift', 'replay', 'dead-letters', 'parked', 'produce', 'adopt', 'release']) t.true(shown.has(name), `${name} is shown`);
});

for (const [i, { file, command }] of commands.entries()) {
  test.serial(`${file}: ${command}`, (t) => {
    const cwd = mkdtempSync(join(tmpdir(), `ips-doc-${i}-`));
    // A file of events the docs read (`plan --file events.jsonl`): a few contract events, one a line.
    const eventsFile = / --file (?!-(?:\s|$))(\S+)/.exec(command)?.[1];
    if (eventsFile) writeFileSync(join(cwd, eventsFile), `${EVENTS_FILE.map((event) => JSON.stringify(event)).join('\n')}\n`);
    const line = command.replace(PREFIX, `${JSON.stringify(process.execPath)} ${JSON.stringify(join(projectRoot(), 'dist', 'ops', 'cli.js'))} `).replace(/ --local\b/g, '');
    const env: Record<string, string | undefined> = { ...process.env, ...stackOf().stack.env };
    delete env.npm_lifecycle_event;
    const result = spawnSync('bash', ['-o', 'pipefail', '-c', line], { cwd, env, encoding: 'utf8', timeout: 240_000 });
    const said = `exit ${result.status}\n${result.stderr}`;
    t.not(result.status, 2, `usage error: ${said}`);
    t.true(result.status === 0 || result.status === 1, said);
    t.notRegex(result.stderr, /^ips [\w-]+: (failed|configuration)/m, said);
  });
}
