// Starts the KCL MultiLangDaemon (Java) with a rendered properties file. The
// daemon runs in its own process group: stopping it reaches the record
// processor children too, so nothing is left behind.
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdirSync, openSync, closeSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { isAlive, killGroup } from './processes.js';
import { projectRoot } from '../config/paths.js';
import { loadConfig } from '../config/config.js';
import { renderPropertiesFile } from './properties.js';

export interface DaemonOptions {
  /** Properties template, e.g. properties/local.properties. */
  propertiesFile: string;
  env: Record<string, string | undefined>;
  /** Folder for the rendered properties and, when logFile is not 'inherit', the log. */
  workDir: string;
  /** 'inherit' passes the daemon's output through; otherwise a file path. */
  log: 'inherit' | string;
}

export interface RunningDaemon {
  pid: number;
  child: ChildProcess;
  propertiesPath: string;
  /**
   * Asks the daemon to shut down gracefully (SIGTERM: the KCL's graceful
   * shutdown, which waits up to the properties' shutdownGraceMillis), then
   * kills what is left once graceMs (default: shutdownGraceMillis + 10 s) ran out.
   */
  stop(graceMs?: number): Promise<void>;
  /** Cuts a stop() in progress short: the daemon's group is killed now. */
  hurry(): void;
  /** kill -9 the whole daemon with its children, as a crash would. */
  crash(): Promise<void>;
  exited: Promise<number | null>;
}

export function daemonCommand(propertiesPath: string): { command: string; args: string[] } {
  const root = projectRoot();
  return {
    command: 'java',
    args: [
      `-Dlogback.configurationFile=${join(root, 'kcl', 'logback.xml')}`,
      '-cp',
      `${join(root, 'kcl', 'lib')}/*`,
      'software.amazon.kinesis.multilang.MultiLangDaemon',
      '--properties-file',
      propertiesPath,
    ],
  };
}

export function startDaemon(options: DaemonOptions): RunningDaemon {
  const root = projectRoot();
  // The KCL application (and so the lease table) of this worker's namespace: the application's, or its shadow's (IPS_MODE).
  const env = { ...options.env, APP_ROOT: options.env.APP_ROOT ?? root, KCL_APPLICATION_NAME: loadConfig(options.env).leaseTable };
  mkdirSync(options.workDir, { recursive: true });
  const propertiesPath = join(options.workDir, `daemon-${Date.now()}-${Math.random().toString(36).slice(2, 8)}.properties`);
  writeFileSync(propertiesPath, renderPropertiesFile(options.propertiesFile, env));
  const { command, args } = daemonCommand(propertiesPath);
  let stdio: 'inherit' | ['ignore', number, number];
  let fd: number | undefined;
  if (options.log === 'inherit') stdio = 'inherit';
  else {
    fd = openSync(options.log, 'a');
    stdio = ['ignore', fd, fd];
  }
  const child = spawn(command, args, { cwd: root, env: env as NodeJS.ProcessEnv, stdio, detached: true });
  if (fd !== undefined) closeSync(fd);
  if (child.pid === undefined) throw new Error('could not start the MultiLangDaemon (is Java 17 installed?)');
  const pid = child.pid;
  const graceful = shutdownGraceOf(readFileSync(propertiesPath, 'utf8'));
  let hurried = false;
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return {
    pid,
    child,
    propertiesPath,
    exited,
    async stop(graceMs = graceful + 10_000) {
      // SIGTERM runs the daemon's shutdown hook: shutdownRequested to each child, then exit.
      try {
        process.kill(pid, 'SIGTERM');
      } catch {
        /* gone already */
      }
      const deadline = Date.now() + graceMs;
      while (Date.now() < deadline && isAlive(pid) && !hurried) await sleep(100);
      // Hurried: the daemon and its record processors are killed together, at once. A SIGTERM first
      // would end the record processors while the daemon still talks to them, and it would log that.
      await killGroup(pid, hurried ? 0 : 1_000);
    },
    hurry() {
      hurried = true;
    },
    async crash() {
      try {
        process.kill(-pid, 'SIGKILL');
      } catch {
        /* gone already */
      }
      await exited;
    },
  };
}

/**
 * shutdownGraceMillis of a rendered properties file: how long the daemon's
 * shutdown hook waits for the KCL's graceful shutdown (record processors told
 * shutdownRequested, their checkpoints, leases released, children ended). The
 * KCL's default is 0, which makes every stop log "Encountered an error during
 * shutdown" and cut the graceful shutdown off at once.
 */
export function shutdownGraceOf(properties: string): number {
  const match = /^shutdownGraceMillis\s*=\s*(\d+)\s*$/m.exec(properties);
  return match ? Number(match[1]) : 0;
}
