// `node dist/daemon/run.js --properties properties/aws.properties`: runs the
// MultiLangDaemon in the foreground with the processor, configured from the
// environment. SIGINT/SIGTERM shut it down gracefully. The container's command.
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { ConfigError, configWarnings, loadConfig } from '../config/config.js';
import { startDaemon } from './daemon.js';

const { values } = parseArgs({ options: { properties: { type: 'string', default: 'properties/aws.properties' } } });
// The record processors read the same configuration: a bad value is refused
// here, once, with its variable named, before the daemon starts a child that
// would die on it (and take every shard of the worker with it).
try {
  loadConfig(process.env);
} catch (error) {
  if (!(error instanceof ConfigError)) throw error;
  process.stderr.write(`configuration: ${error.message}\n`);
  process.exit(2);
}
for (const warning of configWarnings(process.env)) process.stderr.write(`configuration: warning: ${warning}\n`);
const daemon = startDaemon({
  propertiesFile: resolve(values.properties!),
  env: process.env,
  workDir: join(tmpdir(), 'iam-policy-stream'),
  log: 'inherit',
});
let stopping = false;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (stopping) return;
    stopping = true;
    void daemon.stop().then(() => process.exit(0));
  });
}
const code = await daemon.exited;
if (!stopping) process.exit(code ?? 1);
