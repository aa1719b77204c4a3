// pino JSON on stderr. A record processor's stdout belongs to the daemon's
// protocol alone, so no log may ever go there.
import pino from 'pino';
import type { Logger } from 'pino';

export type { Logger };

export function createLogger(level = 'info', bindings: Record<string, unknown> = {}): Logger {
  return pino(
    {
      level,
      base: { pid: process.pid, ...bindings },
      // Credentials never reach a log line, whatever object is logged.
      redact: {
        paths: [
          '*.accessKeyId',
          '*.secretAccessKey',
          '*.sessionToken',
          '*.credentials',
          '*.authorization',
          '*.Authorization',
          'config.credentials',
        ],
        censor: '[redacted]',
      },
    },
    pino.destination({ dest: 2, sync: false }),
  );
}

/** Bounds a value for a log line (documents and raw records can be large). */
export function clip(value: string, max = 512): string {
  return value.length <= max ? value : `${value.slice(0, max)}...(${value.length - max} more chars)`;
}
