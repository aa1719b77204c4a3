// kcl/pom.xml must list the same daemon runtime as the aws-kcl package's own
// pom (its version of the KCL and every dependency), or the daemon would run
// on jars the record-processor library was not released with. The only
// differences allowed are the ones written down, with their reason, in
// kcl/deviations.json; a written-down difference that no longer exists fails
// too, so the list never outlives its reason.
import test from 'ava';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { projectRoot } from '../../src/config/paths.js';

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

/** A deliberate difference from the aws-kcl pom. `ours` or `theirs` is null when only one side lists the artifact. */
interface Deviation {
  artifact: string;
  ours: string | null;
  theirs: string | null;
  reason: string;
}

function readDeviations(): Deviation[] {
  return JSON.parse(readFileSync(join(projectRoot(), 'kcl', 'deviations.json'), 'utf8')) as Deviation[];
}

/** Every artifact whose version differs (or that one side lacks): artifact -> [ours, theirs]. */
function differences(ours: Map<string, string>, theirs: Map<string, string>): Map<string, [string | null, string | null]> {
  const found = new Map<string, [string | null, string | null]>();
  for (const artifact of new Set([...ours.keys(), ...theirs.keys()])) {
    const mine = ours.get(artifact) ?? null;
    const shipped = theirs.get(artifact) ?? null;
    if (mine !== shipped) found.set(artifact, [mine, shipped]);
  }
  return found;
}

const ours = () => dependencies(join(projectRoot(), 'kcl', 'pom.xml'));
const shipped = () => dependencies(join(projectRoot(), 'node_modules', 'aws-kcl', 'pom.xml'));

test('kcl/pom.xml lists the dependencies and versions of the aws-kcl package pom, but for the written-down deviations', (t) => {
  const theirs = shipped();
  t.true(theirs.size > 50, `the shipped pom was read (${theirs.size} dependencies)`);
  t.true(theirs.has('software.amazon.kinesis:amazon-kinesis-client-multilang'));
  const mine = ours();
  for (const [name, version] of mine) t.false(version.includes('${'), `${name} has an unresolved version ${version}`);

  const documented = new Map(readDeviations().map((d) => [d.artifact, d]));
  const found = differences(mine, theirs);
  for (const [artifact, [mineVersion, theirVersion]] of found) {
    const deviation = documented.get(artifact);
    t.truthy(
      deviation,
      `${artifact}: kcl/pom.xml has ${mineVersion ?? '(absent)'}, aws-kcl has ${theirVersion ?? '(absent)'}; make them equal or write the deviation and its reason down in kcl/deviations.json`,
    );
    if (deviation) t.deepEqual([deviation.ours, deviation.theirs], [mineVersion, theirVersion], `${artifact}: kcl/deviations.json says ours ${deviation.ours}, theirs ${deviation.theirs}`);
  }
  for (const artifact of documented.keys()) {
    t.true(found.has(artifact), `${artifact} is written down in kcl/deviations.json but kcl/pom.xml no longer differs from aws-kcl there: remove the entry`);
  }
});

test('every written-down deviation names its artifact, both versions and a reason', (t) => {
  const deviations = readDeviations();
  t.true(Array.isArray(deviations));
  const seen = new Set<string>();
  for (const deviation of deviations) {
    t.regex(deviation.artifact, /^[\w.-]+:[\w.-]+$/, 'artifact is groupId:artifactId');
    t.false(seen.has(deviation.artifact), `${deviation.artifact} is written down once`);
    seen.add(deviation.artifact);
    t.true(deviation.ours !== null || deviation.theirs !== null, `${deviation.artifact}: ours or theirs is a version`);
    t.true(typeof deviation.reason === 'string' && deviation.reason.trim().length >= 20, `${deviation.artifact}: the reason says why`);
  }
});
