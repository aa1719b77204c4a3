// kcl/pom.xml must list the same daemon runtime as the aws-kcl package's own
// pom (its version of the KCL and every dependency), or the daemon would run
// on jars the record-processor library was not released with.
import test from 'ava';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { projectRoot } from '../../src/local/paths.js';

/** groupId:artifactId -> version, with ${properties} resolved. */
function dependencies(pomFile: string): Map<string, string> {
  const xml = readFileSync(pomFile, 'utf8').replace(/<!--[\s\S]*?-->/g, '');
  const properties = new Map<string, string>();
  const block = /<properties>([\s\S]*?)<\/properties>/.exec(xml)?.[1] ?? '';
  for (const match of block.matchAll(/<([\w.-]+)>([^<]*)<\/\1>/g)) properties.set(match[1]!, match[2]!.trim());
  const resolve = (value: string) => value.replace(/\$\{([\w.-]+)\}/g, (_, name: string) => properties.get(name) ?? `\${${name}}`);
  const found = new Map<string, string>();
  for (const match of xml.matchAll(/<dependency>([\s\S]*?)<\/dependency>/g)) {
    const field = (name: string) => new RegExp(`<${name}>([^<]*)</${name}>`).exec(match[1]!)?.[1]?.trim() ?? '';
    found.set(`${field('groupId')}:${field('artifactId')}`, resolve(field('version')));
  }
  return found;
}

test('kcl/pom.xml lists exactly the dependencies and versions of the aws-kcl package pom', (t) => {
  const ours = dependencies(join(projectRoot(), 'kcl', 'pom.xml'));
  const shipped = dependencies(join(projectRoot(), 'node_modules', 'aws-kcl', 'pom.xml'));
  t.true(shipped.size > 50, `the shipped pom was read (${shipped.size} dependencies)`);
  t.true(shipped.has('software.amazon.kinesis:amazon-kinesis-client-multilang'));
  t.deepEqual([...ours].sort(), [...shipped].sort());
  for (const [name, version] of ours) t.false(version.includes('${'), `${name} has an unresolved version ${version}`);
});
