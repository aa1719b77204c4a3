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
import { policyKey } from '../../contract/policy-key.js';
import { closest } from '../../config/closest-name.js';
import { decodeRecord } from '../../contract/decode.js';
import { ALL_HASH_KEYS } from '../../contract/hash-key.js';
import { APPLY_REASONS, INPUT_REASONS, isRejectReason } from '../../faults/errors.js';
import type { DynamoDbLedger } from '../../ledger/dynamodb-ledger.js';
import { ledgerFromConfig } from '../../ledger/dynamodb-ledger.js';
import { documentGuardFromConfig } from '../../policy/document-guard.js';
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
    return listed(store, reason, status);
  }
  if (reason !== undefined) note(`warning: --reason is ignored when letters are named by id; it filters --all and list`);
  if (ids.length === 0) throw new UsageError('give one or more letter ids (<shardId>#<sequenceNumber>#<subSequenceNumber>, see `dead-letters list`) or --all');
  const letters: StoredDeadLetter[] = [];
  for (const id of ids) letters.push(await letterById(store, id));
  return letters;
}

/**
 * The letters the filters select. A --reason that is no reason code and that
 * no stored letter carries (letters of older versions may carry codes since
 * renamed) is a typo: refused with the code it most likely meant, rather than
 * answered "nothing".
 */
async function listed(store: DynamoDbDeadLetterStore, reason: string | undefined, status: string | undefined): Promise<StoredDeadLetter[]> {
  if (reason === undefined || isRejectReason(reason)) return store.list({ ...(reason ? { reason } : {}), ...(status ? { status } : {}) });
  const all = await store.list(status ? { status } : {});
  const letters = all.filter((letter) => letter.reason === reason);
  if (letters.length > 0) return letters;
  const codes = [...INPUT_REASONS, ...APPLY_REASONS, ...new Set(all.map((letter) => letter.reason))];
  const guess = closest(reason, codes);
  throw new UsageError(`unknown reason ${JSON.stringify(reason)}${guess ? `; did you mean ${guess}?` : ''} (reason codes: docs/dead-letters.md; iam:<Code> for IAM's own)`);
}

/**
 * One letter by id. The id is <shardId>#<sequenceNumber>#<subSequenceNumber>:
 * the short <shardId>#<sequenceNumber> (the form letters of older versions
 * have) is answered with the full ids it stands for.
 */
async function letterById(store: DynamoDbDeadLetterStore, id: string): Promise<StoredDeadLetter> {
  const letter = await store.get(id);
  if (letter) return letter;
  const parts = id.split('#');
  if (parts.length === 2) {
    const full = (await store.list()).filter((l) => l.id.startsWith(`${id}#`)).map((l) => l.id);
    if (full.length > 0) throw new UsageError(`no dead letter ${id}: an id ends in #<subSequenceNumber>; did you mean ${full.map((f) => `'${f}'`).join(' or ')}?`);
    throw new UsageError(`no dead letter ${id}: an id is <shardId>#<sequenceNumber>#<subSequenceNumber> (e.g. '${id}#0'), as dead-letters list shows it`);
  }
  throw new UsageError(`no dead letter ${id} (dead-letters list shows the ids)`);
}

async function confirmed(ctx: OpsContext, values: Values, question: string): Promise<boolean> {
  if (values.yes === true || (await ctx.confirm(question))) return true;
  note(process.stdin.isTTY ? 'Not confirmed; nothing changed.' : 'Not confirmed (no terminal to ask): pass --yes. Nothing changed.');
  return false;
}

function summaryRow(letter: StoredDeadLetter) {
  return {
    id: letter.id,
    reason: letter.reason,
    ...(letter.account !== undefined ? { account: letter.account } : {}),
    policy: letter.policyName ?? letter.partitionKey,
    eventId: letter.eventId,
    status: letter.status,
    storedAt: letter.storedAt,
    size: letter.size,
  };
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
  const letters = await listed(store, stringOption(values, 'reason'), status);
  if (ctx.json) printJson(letters.map(summaryRow));
  else print(table(letters.map(summaryRow), ['id', 'reason', 'policy', 'eventId', 'status', 'storedAt', 'size']));
  return 0;
}

async function show({ ctx, ids, store }: ActionInput): Promise<number> {
  if (ids.length !== 1) throw new UsageError('show takes exactly one id');
  const letter = await letterById(store, ids[0]!);
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
    note(
      `held back ${letter.id}: ${terminalText(letter.policyName)} had an event applied since (${entry.lastOutcome} at ${entry.updatedAt}); redriving it would roll the policy back. --force redrives it anyway`,
    );
  }
  const heldIds = new Set(held.map(({ letter }) => letter.id));
  const going = whole.filter((letter) => !heldIds.has(letter.id));
  for (const { letter, reason, detail } of refusedAgain(ctx, going)) {
    note(
      `warning: ${letter.id} would be refused again (${reason}: ${detail}): the cause it was stored for is unchanged under this configuration. Redriving it makes a new letter; fix the cause first`,
    );
  }
  if (going.length === 0) {
    note('Nothing to redrive.');
    return letters.length === 0 ? 0 : 1;
  }
  if (!ctx.json) print(table(going.map(summaryRow), ['id', 'reason', 'policy', 'eventId', 'status']));
  if (!(await confirmed(ctx, values, `Put ${going.length} record(s) back into ${ctx.config.streamName}?`))) return 1;
  const puts = await putRecords(
    ctx.aws.kinesis,
    ctx.config.streamName,
    going.map((letter) => ({ partitionKey: redriveKey(letter), data: letter.data })),
  );
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
    if (!act) {
      const guess = closest(action, Object.keys(ACTIONS));
      throw new UsageError(`unknown action ${JSON.stringify(action)}${guess ? ` (did you mean ${guess}?)` : ''}: use list, show, redrive or purge`);
    }
    // Options that mean nothing to this action are named, not dropped silently.
    const takes: Record<string, string[]> = { list: ['reason', 'status'], show: [], redrive: ['reason', 'status', 'all', 'force', 'yes'], purge: ['reason', 'status', 'all', 'yes'] };
    for (const option of ['reason', 'status', 'all', 'force', 'yes']) {
      if (values[option] !== undefined && !takes[action]!.includes(option)) note(`warning: --${option} is ignored by dead-letters ${action}`);
    }
    return act({ ctx, values, ids, status, store: new DynamoDbDeadLetterStore(ctx.aws.dynamodb, ctx.config.deadLetterTable) });
  },
};

/**
 * The partition key a letter goes back with: its own, except for a letter
 * refused because its key was not the policy's key, which goes back under the
 * policy's key (`<account>/<name>`, or the name) as the event contract asks.
 */
function redriveKey(letter: StoredDeadLetter): string {
  return letter.reason === 'partition-key-mismatch' && letter.policyName ? policyKey({ account: letter.account, policyName: letter.policyName }) : letter.partitionKey;
}

/**
 * Letters the processor would refuse again at decoding, judged by the same
 * contract and guardrail the workers run with this configuration (an
 * `admin-grant-refused` document under the same IPS_GUARDRAIL, a path still
 * outside IPS_MANAGED_PATH_PREFIX). Letters refused while applying
 * (`not-owned`, IAM's codes) depend on IAM's state and are not judged here.
 */
function refusedAgain(ctx: OpsContext, letters: StoredDeadLetter[]): { letter: StoredDeadLetter; reason: string; detail: string }[] {
  const options = { managedPathPrefix: ctx.config.managedPathPrefix, guard: documentGuardFromConfig(ctx.config), hashKeyRange: ALL_HASH_KEYS };
  const found: { letter: StoredDeadLetter; reason: string; detail: string }[] = [];
  for (const letter of letters) {
    // Under the partition key it goes back with, and routed by it: the shard's own range is no question here.
    const decoded = decodeRecord(letter.data, redriveKey(letter), options);
    if (!decoded.ok) found.push({ letter, reason: decoded.reason, detail: decoded.detail });
  }
  return found;
}

/** Letters whose policy had an event applied after the letter was stored: a redrive would land after it. */
async function overtaken(ledger: DynamoDbLedger, letters: StoredDeadLetter[]): Promise<{ letter: StoredDeadLetter; entry: LedgerEntry }[]> {
  const found: { letter: StoredDeadLetter; entry: LedgerEntry }[] = [];
  for (const letter of letters) {
    if (!letter.policyName) continue;
    const entry = await ledger.get(policyKey({ account: letter.account, policyName: letter.policyName }));
    if (entry?.updatedAt && entry.lastOutcome !== 'rejected' && entry.updatedAt > letter.storedAt) found.push({ letter, entry });
  }
  return found;
}
