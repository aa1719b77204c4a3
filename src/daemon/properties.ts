// Daemon properties files with ${NAME} and ${NAME:-default} filled in from
// the environment, so one file serves every deployment. A ${NAME} without a
// value and without a default is an error, not an empty property.
import { readFileSync } from 'node:fs';

export class PropertiesError extends Error {
  override name = 'PropertiesError';
}

export function renderProperties(template: string, env: Record<string, string | undefined>): string {
  const missing = new Set<string>();
  const fill = (line: string) =>
    line.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g, (_match, name: string, fallback?: string) => {
      const value = env[name];
      if (value !== undefined && value !== '') return value;
      if (fallback !== undefined) return fallback;
      missing.add(name);
      return '';
    });
  // Comments are left as they are: they may show the ${NAME} syntax itself.
  const rendered = template
    .split('\n')
    .map((line) => (/^\s*[#!]/.test(line) ? line : fill(line)))
    .join('\n');
  if (missing.size > 0) throw new PropertiesError(`properties need ${[...missing].join(', ')} (set them in the environment)`);
  return rendered;
}

export function renderPropertiesFile(path: string, env: Record<string, string | undefined>): string {
  return renderProperties(readFileSync(path, 'utf8'), env);
}
