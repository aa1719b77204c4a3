// The IAM emulator alone (moto from the project's venv) on a free loopback
// port, for tests of the IAM step that need neither Kinesis nor DynamoDB:
// a third of the start-up cost of a whole stack, on a machine shared by two.
import { spawn } from 'node:child_process';
import { closeSync, mkdtempSync, openSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { isAlive, killGroup } from '../../src/daemon/processes.js';
import { freePort } from '../../tools/local/emulators.js';
import { projectRoot } from '../../src/config/paths.js';

export interface Moto {
  endpoint: string;
  /** The environment a client needs to reach it (region, credentials, endpoints). */
  env: Record<string, string>;
  stop(): Promise<void>;
}

export async function startMoto(): Promise<Moto> {
  const port = await freePort();
  const log = openSync(join(mkdtempSync(join(tmpdir(), 'ips-moto-')), 'moto.log'), 'a');
  const child = spawn(join(projectRoot(), '.local', 'venv', 'bin', 'moto_server'), ['-H', '127.0.0.1', '-p', String(port)], {
    detached: true,
    stdio: ['ignore', log, log],
  });
  closeSync(log);
  child.unref();
  const pid = child.pid;
  if (pid === undefined) throw new Error('could not start moto_server');
  const endpoint = `http://127.0.0.1:${port}`;
  const stop = () => killGroup(pid);
  const deadline = Date.now() + 60_000;
  for (;;) {
    try {
      await fetch(`${endpoint}/`, { signal: AbortSignal.timeout(1_000) });
      break;
    } catch (error) {
      if (!isAlive(pid) || Date.now() > deadline) {
        await stop();
        throw new Error(`moto did not start on ${endpoint}: ${String(error)}`);
      }
      await sleep(200);
    }
  }
  return {
    endpoint,
    env: {
      AWS_REGION: 'us-east-1',
      AWS_ACCESS_KEY_ID: 'local',
      AWS_SECRET_ACCESS_KEY: 'local',
      AWS_ENDPOINT_URL_IAM: endpoint,
      AWS_ENDPOINT_URL_STS: endpoint,
    },
    stop,
  };
}
