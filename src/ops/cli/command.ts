// What a subcommand of the operator tool is: its help, its options (parsed by
// node:util parseArgs, strict), and what it does. Bad arguments are a
// UsageError: the tool prints it with the subcommand's usage and exits 2.
import { parseArgs } from 'node:util';
import type { ParseArgsConfig } from 'node:util';
import { closest } from '../../config/closest-name.js';
import type { OpsContext } from './context.js';
import { UsageError } from './usage-error.js';

export { UsageError };

export type Options = NonNullable<ParseArgsConfig['options']>;
export type Values = Record<string, string | boolean | string[] | undefined>;

export interface Command {
  name: string;
  summary: string;
  /** The full help text, shown by --help and after a usage error. */
  help: string;
  options: Options;
  /** Subcommands (`dead-letters list`) or operands take positionals. */
  positionals?: boolean;
  run(ctx: OpsContext, values: Values, positionals: string[]): Promise<number>;
}

/** Options every subcommand takes. */
export const COMMON_OPTIONS: Options = {
  help: { type: 'boolean', short: 'h' },
  json: { type: 'boolean' },
  local: { type: 'boolean' },
};

export const COMMON_HELP = `Common options:
  --json      machine-readable output on stdout
  --local     use the local stack's endpoints (.local/stack/stack.env, written by npm start / npm run stack:up)
  -h, --help  this help`;

export function parseCommandArgs(command: Command, args: string[]): { values: Values; positionals: string[] } {
  const options = { ...COMMON_OPTIONS, ...command.options };
  try {
    const parsed = parseArgs({ args, options, strict: true, allowPositionals: command.positionals ?? false });
    return { values: parsed.values as Values, positionals: parsed.positionals };
  } catch (error) {
    // parseArgs names the offending option; keep its words, drop its error code, and name the option meant.
    const message = (error as Error).message.replace(/\. To specify a positional.*$/s, '');
    const unknown = /^Unknown option '--([^'=]+)'/.exec(message)?.[1];
    const guess = unknown !== undefined ? closest(unknown, Object.keys(options)) : undefined;
    throw new UsageError(guess ? `${message}; did you mean --${guess}?` : message);
  }
}

export function stringOption(values: Values, name: string): string | undefined {
  const value = values[name];
  return typeof value === 'string' ? value : undefined;
}

export function numberOption(values: Values, name: string, fallback: number, { min = 0, max = Number.MAX_SAFE_INTEGER, integer = true } = {}): number {
  const raw = stringOption(values, name);
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (raw.trim() === '' || !Number.isFinite(value) || (integer && !Number.isInteger(value)) || value < min || value > max) {
    throw new UsageError(`--${name} must be ${integer ? 'an integer' : 'a number'} from ${min} to ${max}, got ${JSON.stringify(raw)}`);
  }
  return value;
}

export function ratioOption(values: Values, name: string): number {
  return numberOption(values, name, 0, { min: 0, max: 1, integer: false });
}
