// The local AWS stack: three real emulators on free loopback ports.
//   Kinesis        kinesis-local (kinesis-mock on Node), plain port: HTTP/1.1 and h2c
//   DynamoDB       DynamoDB Local (Java, sqlite4java)
//   IAM and STS    moto server (Python, project-local venv)
// Each runs in its own process group so that stopping the stack leaves
// nothing behind, even when an emulator has children of its own.
import { spawn } from 'node:child_process';
import { closeSync, mkdirSync, openSync } from 'node:fs';
import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { projectRoot } from '../../src/config/paths.js';
import { isAlive, killGroup } from '../../src/daemon/processes.js';

export interface EmulatorProcess {
  name: string;
  pid: number;
  port: number;
  endpoint: string;
}

export interface StackEndpoints {
  kinesis: string;
  dynamodb: string;
  iam: string;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

interface SpawnSpec {
  name: string;
  command: string;
  args: string[];
  cwd: string;
  env?: Record<string, string>;
  port: number;
  logDir: string;
}

function launch(spec: SpawnSpec): EmulatorProcess {
  mkdirSync(spec.logDir, { recursive: true });
  // A file, not a pipe: the emulator outlives a launcher that exits (stack:up).
  const log = openSync(join(spec.logDir, `${spec.name}.log`), 'a');
  const child = spawn(spec.command, spec.args, {
    cwd: spec.cwd,
    env: { ...process.env, ...spec.env },
    detached: true, // its own process group: killGroup() reaches its children too
    stdio: ['ignore', log, log],
  });
  closeSync(log);
  child.unref();
  if (child.pid === undefined) throw new Error(`could not start ${spec.name} (${spec.command})`);
  return { name: spec.name, pid: child.pid, port: spec.port, endpoint: `http://127.0.0.1:${spec.port}` };
}

/** Waits until something accepts HTTP on the port (any status counts: the server is up). */
async function waitForHttp(emulator: EmulatorProcess, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    if (!isAlive(emulator.pid)) throw new Error(`${emulator.name} exited during start-up (see its log)`);
    try {
      await fetch(`${emulator.endpoint}/`, { signal: AbortSignal.timeout(1_000) });
      return;
    } catch (error) {
      lastError = error;
      await sleep(200);
    }
  }
  throw new Error(`${emulator.name} did not answer on ${emulator.endpoint} within ${timeoutMs} ms: ${String(lastError)}`);
}

export async function startEmulators(logDir: string): Promise<EmulatorProcess[]> {
  const root = projectRoot();
  const require = createRequire(import.meta.url);
  const kinesisPackage = dirname(require.resolve('kinesis-local/package.json'));
  const [kinesisPort, kinesisTlsPort, dynamoPort, motoPort] = await Promise.all([freePort(), freePort(), freePort(), freePort()]);
  const ddbLib = join(root, '.local', 'dynamodb-local', 'lib');

  const started: EmulatorProcess[] = [];
  try {
    started.push(
      launch({
        name: 'kinesis',
        command: process.execPath,
        args: ['main.js'],
        cwd: kinesisPackage, // it reads server.json (its TLS certificate) from the working directory
        env: {
          KINESIS_MOCK_PLAIN_PORT: String(kinesisPort),
          KINESIS_MOCK_TLS_PORT: String(kinesisTlsPort),
          LOG_LEVEL: 'WARN',
          CREATE_STREAM_DURATION: '100ms',
          DELETE_STREAM_DURATION: '100ms',
          SPLIT_SHARD_DURATION: '100ms',
          MERGE_SHARDS_DURATION: '100ms',
          UPDATE_SHARD_COUNT_DURATION: '100ms',
          SHOULD_PERSIST_DATA: 'false',
        },
        port: kinesisPort,
        logDir,
      }),
    );
    started.push(
      launch({
        name: 'dynamodb',
        command: 'java',
        args: [
          `-Dsqlite4java.library.path=${ddbLib}`,
          '-Xmx512m',
          '-cp',
          `${ddbLib}/*`,
          'com.amazonaws.services.dynamodbv2.local.main.ServerRunner',
          '-inMemory',
          // One database whatever the credentials: any SDK or CLI on the stack sees the same tables.
          '-sharedDb',
          // No telemetry, so no dynamodb-local-metadata.json (it writes that file into its working directory).
          '-disableTelemetry',
          '-port',
          String(dynamoPort),
        ],
        // In-memory: it needs no files; whatever it still writes lands beside its log, not in the repository.
        cwd: logDir,
        env: { DDB_LOCAL_TELEMETRY: '0' },
        port: dynamoPort,
        logDir,
      }),
    );
    started.push(
      launch({
        name: 'iam',
        command: join(root, '.local', 'venv', 'bin', 'moto_server'),
        args: ['-H', '127.0.0.1', '-p', String(motoPort)],
        cwd: root,
        port: motoPort,
        logDir,
      }),
    );
    await Promise.all(started.map((emulator) => waitForHttp(emulator, 60_000)));
    return started;
  } catch (error) {
    await Promise.all(started.map((emulator) => killGroup(emulator.pid)));
    throw error;
  }
}

export function endpointsOf(emulators: EmulatorProcess[]): StackEndpoints {
  const find = (name: string) => {
    const emulator = emulators.find((e) => e.name === name);
    if (!emulator) throw new Error(`no ${name} emulator in the stack`);
    return emulator.endpoint;
  };
  return { kinesis: find('kinesis'), dynamodb: find('dynamodb'), iam: find('iam') };
}
