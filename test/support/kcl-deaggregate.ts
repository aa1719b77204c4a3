// The KCL's own deaggregation, run on the daemon's classpath (kcl/lib, or
// KCL_LIB=<folder>) by test/support/KclDeaggregate.java: what a record
// processor would receive for a Kinesis record.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { projectRoot } from '../../src/config/paths.js';

const lib = process.env.KCL_LIB ?? join(projectRoot(), 'kcl', 'lib');
const program = join(projectRoot(), 'test', 'support', 'KclDeaggregate.java');

/**
 * Runs the KCL's deaggregation over one Kinesis record, as the daemon does for
 * a shard with the given hash key range (default: all); the user records it
 * hands on. Throws when the classpath cannot deaggregate.
 */
export function kclDeaggregate(record: Buffer, range?: [bigint, bigint]): { subSequenceNumber: number; partitionKey: string; data: Buffer }[] {
  if (!existsSync(lib) || !readdirSync(lib).some((name) => name.startsWith('amazon-kinesis-client-'))) {
    throw new Error(`no daemon jars in ${lib}: run npm run setup`);
  }
  const dir = mkdtempSync(join(tmpdir(), 'ips-kcl-'));
  try {
    const file = join(dir, 'record.bin');
    writeFileSync(file, record);
    const args = [`-Dlogback.configurationFile=${join(projectRoot(), 'kcl', 'logback.xml')}`, '-cp', `${lib}/*`, program, file, ...(range ? range.map(String) : [])];
    const result = spawnSync('java', args, { encoding: 'utf8', timeout: 120_000 });
    if (result.status !== 0) throw new Error(`the KCL could not deaggregate (exit ${result.status}):\n${result.stderr}${result.error ? String(result.error) : ''}`);
    return result.stdout
      .split('\n')
      .filter((line) => line.startsWith('user '))
      .map((line) => {
        const [, sub, key, data] = line.split(' ');
        return { subSequenceNumber: Number(sub), partitionKey: Buffer.from(key!, 'base64').toString('utf8'), data: Buffer.from(data ?? '', 'base64') };
      });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
