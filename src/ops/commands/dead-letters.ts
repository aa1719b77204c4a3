// `dead-letters`: inspect, redrive and purge rejected records. A redrive puts
// the stored bytes back into the stream under the original partition key (the
// policy name for a `partition-key-mismatch`) and no explicit hash key, so
// Kinesis routes it by the key's hash (a `hash-key-mismatch` letter lands on
// its policy's own shard), as a new record at the stream's tail: it is
// applied after everything already in the stream. It is meant for after the
// cause is fixed (a foreign policy removed, the configuration changed, a
// producer bug fixed upstream). Since it lands after newer events, a letter
// whose policy has had an event applied since the letter was stored would
// roll the policy back: such letters are held back unless --force says
// otherwise.
import { DynamoDbLedger, ledgerFromConfig } from '../../ledger/dynamodb-ledger.js';
import type { LedgerEntry } from '../../ledger/ledger.js';
import { DynamoDbDeadLetterStore } from '../../deadletter/dead-letter-store.js';
import type { StoredDeadLetter } from '../../deadletter/dead-letter-store.js';
import { putRecords } from '../producer.js';
import type { Command, Values } from '../cli/command.js';
import { COMMON_HELP, UsageError, stringOption } from '../cli/command.js';
import type { OpsContext } from '../cli/context.js';
import { note, print, printJson, table, terminalText } from '../cli/render.js';

const PREVIEW = 2_000;

async function selected(store: DynamoDbDeadLetterStore, values: Values, ids: string[], defaultStatus: string | undefined): Promise<StoredDeadLetter[]> {
  const reason = stringOption(values, 'reason');
  const status = stringOption(values, 'status') ?? defaultStatus;
  if (values.all === true) {
    if (ids.length > 0) throw new UsageError('give letter ids or --all, not both');
    return store.list({ ...(reason ? { reason } : {}), ...(status ? { status } : {}) });
  }
  if (ids.length === 0) throw new UsageError('give one or more letter ids (<shardId>#<sequenceNumber>#<subSequenceNumber>, see `dead-letters list`) or --all');
  const letters: StoredDeadLetter[] = [];
  for (const id of ids) {
    const letter = await store.get(id);
    if (!letter) throw new UsageError(`no dead letter ${id}`);
    letters.push(letter);
  }
  return letters;
}

async function confirmed(ctx: OpsContext, values: Values, question: string): Promise<boolean> {
  if (values.yes === true || (await ctx.confirm(question))) return true;
  note(process.stdin.isTTY ? 'Not confirmed; nothing changed.' : 'Not confirmed (no terminal to ask): pass --yes. Nothing changed.');
  return false;
}

function summaryRow(letter: StoredDeadLetter) {
  return { id: letter.id, reason: letter.reason, policy: letter.policyName ?? letter.partitionKey, eventId: letter.eventId, status: letter.status, storedAt: letter.storedAt, size: letter.size };
}

function printable(letter: StoredDeadLetter) {
  const text = letter.data.toString('utf8');
  const valid = Buffer.from(text, 'utf8').equals(letter.data);
  return {
    ...summaryRow(letter),
    shardId: letter.shardId,
    sequenceNumber: letter.sequenceNumber,
    partitionKey: letter.partitionKey,
    detail: letter.detail,
    sha256: letter.sha256,
    truncated: letter.truncated,
    arrivedAt: letter.arrivedAt === undefined ? undefined : new Date(letter.arrivedAt).toISOString(),
    redrivenAt: letter.redrivenAt,
    redrivenTo: letter.redrivenTo,
    dataBase64: letter.data.toString('base64'),
    ...(valid ? { text: text.length > PREVIEW ? `${text.slice(0, PREVIEW)}... (${text.length} chars)` : text } : {}),
  };
}

interface ActionInput {
  ctx: OpsContext;
  values: Values;
  ids: string[];
  status: string | undefined;
  store: DynamoDbDeadLetterStore;
}

async function list({ ctx, values, ids, status, store }: ActionInput): Promise<number> {
  if (ids.length > 0) throw new UsageError('list takes no ids; use show <id>');
  const reason = stringOption(values, 'reason');
  const letters = await store.list({ ...(reason ? { reason } : {}), ...(status ? { status } : {}) });
  if (ctx.json) printJson(letters.map(summaryRow));
  else print(table(letters.map(summaryRow), ['id', 'reason', 'policy', 'eventId', 'status', 'storedAt', 'size']));
  return 0;
}

async function show({ ctx, ids, store }: ActionInput): Promise<number> {
  if (ids.length !== 1) throw new UsageError('show takes exactly one id');
  const letter = await store.get(ids[0]!);
  if (!letter) throw new UsageError(`no dead letter ${ids[0]}`);
  const shown = printable(letter);
  if (ctx.json) printJson(shown);
  // One line per field, whatever the field holds: its line breaks and controls are written out.
  else for (const [key, value] of Object.entries(shown)) if (value !== undefined && key !== 'dataBase64') print(`${key.padEnd(15)} ${terminalText(value)}`);
  return 0;
}

async function redrive({ ctx, values, ids, store }: ActionInput): Promise<number> {
  const letters = await selected(store, values, ids, 'open');
  for (const letter of letters.filter((l) => l.truncated)) {
    note(`skipped ${letter.id}: only its first bytes are stored (${letter.size} bytes in all); read it from the stream while it is retained`);
  }
  const ledger = ledgerFromConfig(ctx.aws.dynamodb, ctx.config);
  const whole = letters.filter((letter) => !letter.truncated);
  const held = values.force === true ? [] : await overtaken(ledger, whole);
  for (const { letter, entry } of held) {
    note(`held back ${letter.id}: ${terminalText(letter.policyName)} had an event applied since (${entry.lastOutcome} at ${entry.updatedAt}); redriving it would roll the policy back. --force redrives it anyway`);
  }
  const heldIds = new Set(held.map(({ letter }) => letter.id));
  const going = whole.filter((letter) => !heldIds.has(letter.id));
  if (going.length === 0) {
    note('Nothing to redrive.');
    return letters.length === 0 ? 0 : 1;
  }
  if (!ctx.json) print(table(going.map(summaryRow), ['id', 'reason', 'policy', 'eventId', 'status']));
  if (!(await confirmed(ctx, values, `Put ${going.length} record(s) back into ${ctx.config.streamName}?`))) return 1;
  const puts = await putRecords(ctx.aws.kinesis, ctx.config.streamName, going.map((letter) => ({ partitionKey: redriveKey(letter), data: letter.data })));
  const results = await Promise.all(
    going.map(async (letter, i) => {
      // A redriven record is a plain (not aggregated) record: subsequence 0.
      await store.markRedriven(letter.id, { ...puts[i]!, subSequenceNumber: 0 });
      return { id: letter.id, shardId: puts[i]!.shardId, sequenceNumber: puts[i]!.sequenceNumber };
    }),
  );
  if (ctx.json) printJson(results);
  else print(`Redrove ${results.length} record(s):\n${table(results, ['id', 'shardId', 'sequenceNumber'])}`);
  return 0;
}

async function purge({ ctx, values, ids, store }: ActionInput): Promise<number> {
  const letters = await selected(store, values, ids, undefined);
  if (letters.length === 0) {
    note('Nothing to purge.');
    return 0;
  }
  if (!ctx.json) print(table(letters.map(summaryRow), ['id', 'reason', 'policy', 'status']));
  if (!(await confirmed(ctx, values, `Delete ${letters.length} letter(s) for good?`))) return 1;
  for (const letter of letters) await store.remove(letter.id);
  if (ctx.json) printJson({ purged: letters.map((l) => l.id) });
  else print(`Purged ${letters.length} letter(s).`);
  return 0;
}

const ACTIONS: Record<string, (input: ActionInput) => Promise<number>> = { list, show, redrive, purge };

export const deadLettersCommand: Command = {
  name: 'dead-letters',
  summary: 'list, show, redrive or purge rejected records',
  positionals: true,
  help: `Usage: ips dead-letters <action> [ids...] [options]

Actions:
  list                     letters, oldest first   [--reason <code>] [--status open|redriven]
  show <id>                one letter: reason, detail, where it was, its bytes
  redrive <id>... | --all  put the records back into the stream (at its tail, after
                           everything in it) with their original partition keys, and
                           mark the letters redriven (--all redrives open letters,
                           filtered by --reason). A letter whose policy had an event
                           applied since it was stored is held back (it would roll the
                           policy back) unless --force
  purge <id>... | --all    delete letters (--all: filtered by --reason and --status)

An id is <shardId>#<sequenceNumber>#<subSequenceNumber>, as list shows it
(letters stored before subsequence numbers were part of the id keep <shardId>#<sequenceNumber>).
  --reason <code>   e.g. not-owned, invalid-json, path-not-managed
  --status <s>      open or redriven
  --all             every letter the filters select
  --force           redrive even letters whose policy has changed since
  -y, --yes         do not ask for confirmation

${COMMON_HELP}`,
  options: {
    reason: { type: 'string' },
    status: { type: 'string' },
    all: { type: 'boolean' },
    force: { type: 'boolean' },
    yes: { type: 'boolean', short: 'y' },
  },
  async run(ctx, values, positionals) {
    const [action, ...ids] = positionals;
    const status = stringOption(values, 'status');
    if (status !== undefined && status !== 'open' && status !== 'redriven') throw new UsageError(`--status must be open or redriven, got ${JSON.stringify(status)}`);
    if (action === undefined) throw new UsageError('an action is needed: list, show, redrive or purge');
    const act = ACTIONS[action];
    if (!act) throw new UsageError(`unknown action ${JSON.stringify(action)}: use list, show, redrive or purge`);
    return act({ ctx, values, ids, status, store: new DynamoDbDeadLetterStore(ctx.aws.dynamodb, ctx.config.deadLetterTable) });
  },
};

/**
 * The partition key a letter goes back with: its own, except for a letter
 * refused because its key was not the policy name, which goes back under the
 * policy name as the event contract asks.
 */
function redriveKey(letter: StoredDeadLetter): string {
  return letter.reason === 'partition-key-mismatch' && letter.policyName ? letter.policyName : letter.partitionKey;
}

/** Letters whose policy had an event applied after the letter was stored: a redrive would land after it. */
async function overtaken(ledger: DynamoDbLedger, letters: StoredDeadLetter[]): Promise<{ letter: StoredDeadLetter; entry: LedgerEntry }[]> {
  const found: { letter: StoredDeadLetter; entry: LedgerEntry }[] = [];
  for (const letter of letters) {
    if (!letter.policyName) continue;
    const entry = await ledger.get(letter.policyName);
    if (entry?.updatedAt && entry.lastOutcome !== 'rejected' && entry.updatedAt > letter.storedAt) found.push({ letter, entry });
  }
  return found;
}
