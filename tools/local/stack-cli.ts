// npm run stack:up / stack:down: the local stack outside of `npm start`.
// Neither stops a stack that a running `npm start` keeps unless --force is
// given (`npm run stack:down -- --force`).
import { join } from 'node:path';
import { projectRoot } from '../../src/config/paths.js';
import { StackInUseError, startStack, stopStackIn } from './stack.js';

const dir = join(projectRoot(), '.local', 'stack');
const [command, ...flags] = process.argv.slice(2);
const force = flags.includes('--force');
const unknown = flags.filter((flag) => flag !== '--force');

try {
  if (unknown.length > 0) {
    console.error(`stack-cli: unknown option ${unknown.join(' ')} (only --force)`);
    process.exit(2);
  }
  if (command === 'up') {
    const replaced = await stopStackIn(dir, { force });
    if (replaced.length > 0) console.log(`Stopped the stack that was running (${replaced.map((e) => e.name).join(', ')}).`);
    const shards = Number(process.env.IPS_LOCAL_SHARDS ?? 4);
    const stack = await startStack({ dir, shards });
    for (const emulator of stack.emulators) console.log(`${emulator.name.padEnd(9)} ${emulator.endpoint}  (pid ${emulator.pid})`);
    console.log(`\nEnvironment written to ${join(dir, 'stack.env')}:\n`);
    for (const [key, value] of Object.entries(stack.env)) console.log(`  ${key}=${value}`);
    console.log(`\nUse it from a shell:  set -a; . ${join(dir, 'stack.env')}; set +a`);
  } else if (command === 'down') {
    const stopped = await stopStackIn(dir, { force });
    console.log(stopped.length === 0 ? 'No local stack was running.' : `Stopped ${stopped.map((e) => e.name).join(', ')}.`);
  } else {
    console.error('usage: stack-cli up|down [--force]');
    process.exit(2);
  }
} catch (error) {
  if (!(error instanceof StackInUseError)) throw error;
  console.error(`Refused: ${error.message}.`);
  process.exit(1);
}
