// `node dist/daemon/run.js --properties properties/aws.properties`: runs the
// MultiLangDaemon in the foreground with the processor, configured from the
// environment. SIGINT/SIGTERM shut it down gracefully. The container's command.
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { startDaemon } from './daemon.js';

const { values } = parseArgs({ options: { properties: { type: 'string', default: 'properties/aws.properties' } } });
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
