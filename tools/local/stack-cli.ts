// npm run stack:up / stack:down: the local stack outside of `npm start`.
import { join } from 'node:path';
import { projectRoot } from '../../src/config/paths.js';
import { startStack, stopStackIn } from './stack.js';

const dir = join(projectRoot(), '.local', 'stack');
const command = process.argv[2];

if (command === 'up') {
  await stopStackIn(dir);
  const shards = Number(process.env.IPS_LOCAL_SHARDS ?? 4);
  const stack = await startStack({ dir, shards });
  for (const emulator of stack.emulators) console.log(`${emulator.name.padEnd(9)} ${emulator.endpoint}  (pid ${emulator.pid})`);
  console.log(`\nEnvironment written to ${join(dir, 'stack.env')}:\n`);
  for (const [key, value] of Object.entries(stack.env)) console.log(`  ${key}=${value}`);
  console.log(`\nUse it from a shell:  set -a; . ${join(dir, 'stack.env')}; set +a`);
} else if (command === 'down') {
  const stopped = await stopStackIn(dir);
  console.log(stopped.length === 0 ? 'No local stack was running.' : `Stopped ${stopped.map((e) => e.name).join(', ')}.`);
} else {
  console.error('usage: stack-cli up|down');
  process.exit(2);
}
