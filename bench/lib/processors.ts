// The three record processors the benchmark runs under the real
// MultiLangDaemon. Each run renders the daemon's properties from
// properties/local.properties, the file `npm start` and the end-to-end tests
// use, changing only `executableName`, so every daemon setting (maxRecords,
// idleTimeBetweenReadsInMillis, lease timings) is the same for all three.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { projectRoot } from '../../src/config/paths.js';

export type ProcessorName = 'ours' | 'sequential' | 'noop';

export interface ProcessorSpec {
  name: ProcessorName;
  label: string;
  /** executableName for the daemon (split on spaces); undefined keeps local.properties' own. */
  executable?: string;
  /** The log line a child writes once it is ready for records. */
  ready: RegExp;
}

export const PROCESSORS: Record<ProcessorName, ProcessorSpec> = {
  ours: {
    name: 'ours',
    label: 'iam-policy-stream (dist/intake/main.js)',
    ready: /"msg":"shard pipeline ready"/,
  },
  sequential: {
    name: 'sequential',
    label: '(a) sequential: GetItem + conditional PutItem + IAM, one record at a time',
    executable: `node --import tsx ${join(projectRoot(), 'bench', 'baselines', 'sequential.ts')}`,
    ready: /"msg":"ready"/,
  },
  noop: {
    name: 'noop',
    label: '(b) no-op: checkpoints each batch',
    executable: `node --import tsx ${join(projectRoot(), 'bench', 'baselines', 'noop.ts')}`,
    ready: /"msg":"ready"/,
  },
};

export const LOCAL_PROPERTIES = join(projectRoot(), 'properties', 'local.properties');

/**
 * The node flags local.properties gives a record-processor child (the words
 * between `node` and the script in executableName), so that measurements made
 * outside the daemon run the child's code as the daemon runs it.
 */
export function childNodeFlags(): string[] {
  const line = /^executableName\s*=\s*(.*)$/m.exec(readFileSync(LOCAL_PROPERTIES, 'utf8'))?.[1];
  if (!line) throw new Error(`${LOCAL_PROPERTIES} has no executableName line`);
  const words = line.trim().split(/\s+/);
  return words[0] === 'node' ? words.slice(1, -1) : [];
}

/** Writes the properties template for a processor into `dir` and returns its path. */
export function propertiesTemplateFor(processor: ProcessorSpec, dir: string): string {
  const template = readFileSync(LOCAL_PROPERTIES, 'utf8');
  if (!/^executableName\s*=.*$/m.test(template)) throw new Error(`${LOCAL_PROPERTIES} has no executableName line`);
  const rendered = processor.executable ? template.replace(/^executableName\s*=.*$/m, `executableName = ${processor.executable}`) : template;
  const path = join(dir, `${processor.name}.properties`);
  writeFileSync(path, rendered);
  return path;
}
