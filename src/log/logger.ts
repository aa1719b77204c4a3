// pino JSON on stderr. A record processor's stdout belongs to the daemon's
// protocol alone, so no log may ever go there.
import pino from 'pino';
import type { Logger } from 'pino';

export type { Logger };

/**
 * Errors are logged by allowlist: an AWS SDK error carries the raw response
 * and, through it, request details; only what explains the failure is kept,
 * so no credential or signed header can reach a log line.
 */
export function serializeError(value: unknown): Record<string, unknown> {
  if (!(value instanceof Error)) return { message: clip(String(value), 2_000) };
  const error = value as Error & { code?: unknown; Code?: unknown; $fault?: unknown; $metadata?: { httpStatusCode?: number; requestId?: string; attempts?: number } };
  return {
    type: error.name,
    message: clip(error.message, 2_000),
    ...(typeof error.code === 'string' ? { code: error.code } : {}),
    ...(typeof error.$fault === 'string' ? { fault: error.$fault } : {}),
    ...(error.$metadata?.httpStatusCode !== undefined ? { status: error.$metadata.httpStatusCode } : {}),
    ...(error.$metadata?.requestId !== undefined ? { requestId: error.$metadata.requestId } : {}),
    ...(error.$metadata?.attempts !== undefined ? { attempts: error.$metadata.attempts } : {}),
    ...(error.stack ? { stack: clip(error.stack, 4_000) } : {}),
    ...(error.cause !== undefined ? { cause: serializeError(error.cause) } : {}),
  };
}

let stderrDestination: ReturnType<typeof pino.destination> | undefined;

/**
 * The process's one writer to stderr: every logger writes through it, and so
 * do other JSON lines (metrics/emf.ts), so that lines never interleave.
 */
export function stderrLines(): { write(text: string): unknown; flush?(): void } {
  stderrDestination ??= pino.destination({ dest: 2, sync: false });
  return stderrDestination;
}

export function createLogger(level = 'info', bindings: Record<string, unknown> = {}): Logger {
  return pino(
    {
      level,
      base: { pid: process.pid, ...bindings },
      serializers: { err: serializeError },
      // A second line of defence for objects logged by name. Fixed paths, no
      // wildcards: wildcard redaction walks every logged object and cost a
      // third of the time of each outcome line in profiles.
      redact: {
        paths: ['credentials', 'accessKeyId', 'secretAccessKey', 'sessionToken', 'authorization', 'config.credentials', 'env'],
        censor: '[redacted]',
      },
    },
    stderrLines() as ReturnType<typeof pino.destination>,
  );
}

/** Bounds a value for a log line (documents and raw records can be large). */
export function clip(value: string, max = 512): string {
  return value.length <= max ? value : `${value.slice(0, max)}...(${value.length - max} more chars)`;
}
