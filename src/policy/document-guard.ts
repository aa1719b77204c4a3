// What a policy document may grant: the guardrail between a producer, which
// is trusted less than IAM itself, and the policies the processor writes
// (docs/guardrails.md). Checked per statement, after the grammar, in the
// decoder, so a refused document never reaches the ledger or IAM.
//
//   admin-equivalent  (default) refuse an Allow statement that grants any
//                     action of the escalation set (escalation-actions.ts)
//                     on all the resources that action acts on; actions
//                     expanded through `*`, service wildcards and NotAction
//                     against the action catalogue. Conditions do not exempt
//                     a statement: a condition is a promise about the
//                     request that the holder often controls.
//   literal           refuse only Action `*` on Resource `*`.
//   off               refuse nothing.
//
// Whatever the mode, the operator's IPS_DENIED_ACTIONS may not be granted
// on any resource. Actions the catalogue does not know are reported (IAM
// accepts them and they grant nothing), or refused with
// IPS_UNKNOWN_ACTIONS=reject.
import type { Config } from '../config/config.js';
import { ConfigError } from '../config/config.js';
import { InvalidEventError } from '../faults/errors.js';
import type { ActionCatalogue, CatalogueAction } from './action-catalogue.js';
import { actionCatalogue } from './action-catalogue.js';
import { actionMatches, resourceMatches } from './action-pattern.js';
import { ESCALATION_ACTIONS } from './escalation-actions.js';

export const GUARDRAIL_MODES = ['admin-equivalent', 'literal', 'off'] as const;
export type GuardrailMode = (typeof GUARDRAIL_MODES)[number];
export const UNKNOWN_ACTION_POLICIES = ['apply', 'reject'] as const;
export type UnknownActionPolicy = (typeof UNKNOWN_ACTION_POLICIES)[number];

export interface DocumentGuardOptions {
  /** @default 'admin-equivalent' */
  mode?: GuardrailMode;
  /** Action patterns no event may grant on any resource (IPS_DENIED_ACTIONS). */
  deniedActions?: string[];
  /** @default 'apply' */
  unknownActions?: UnknownActionPolicy;
  /** The partition ARNs are written for (aws, aws-cn, aws-us-gov). @default 'aws' */
  partition?: string;
  catalogue?: ActionCatalogue;
}

/** A statement as the grammar check leaves it: its effect, its action list and its resource list. */
export interface GrantStatement {
  where: string;
  effect: 'Allow' | 'Deny';
  actionKey: 'Action' | 'NotAction';
  actions: string[];
  resourceKey: 'Resource' | 'NotResource';
  resources: string[];
}

interface Target {
  action: string;
  why: string;
  /** ARN probes a pattern must match to cover every resource of one of the action's types; [['*']] for an action that takes only `*`. */
  probes: string[][];
}

/** `*` on every resource: the literal `*`, or a pattern that matches ARNs of every shape. */
const EVERYTHING: Target = {
  action: '*',
  why: 'every action of every service',
  probes: [['*'], ['arn:aws:iam::123456789012:role/a1', 'arn:aws:s3:::bucket/key', 'arn:aws:ec2:us-east-1:123456789012:instance/i-1', 'arn:aws:sns:us-east-1:123456789012:topic']],
};

/** A pattern of the action list that covers every action (`*`, `*:*`). */
const EVERY_ACTION = /^\*+(:\*+)?$/;

export class DocumentGuard {
  readonly mode: GuardrailMode;
  readonly unknownActions: UnknownActionPolicy;
  private readonly catalogue: ActionCatalogue;
  private readonly escalation: Target[];
  private readonly denied: Target[];

  constructor(options: DocumentGuardOptions = {}) {
    this.mode = options.mode ?? 'admin-equivalent';
    this.unknownActions = options.unknownActions ?? 'apply';
    this.catalogue = options.catalogue ?? actionCatalogue();
    const partition = options.partition ?? 'aws';
    const targets = (pattern: string, why: string): Target[] => this.catalogue.expand(pattern).map((entry) => ({ action: entry.action, why, probes: probesOf(entry, partition) }));
    this.escalation = this.mode === 'admin-equivalent' ? ESCALATION_ACTIONS.filter((e) => e.action !== '*').flatMap((e) => targets(e.action, e.why)) : [];
    this.denied = (options.deniedActions ?? []).flatMap((pattern) => {
      const expanded = targets(pattern, 'denied by IPS_DENIED_ACTIONS');
      if (expanded.length === 0) throw new RangeError(`IPS_DENIED_ACTIONS: ${JSON.stringify(pattern)} matches no action of the catalogue`);
      return expanded;
    });
  }

  /** Throws InvalidEventError('admin-grant-refused') when the statement grants what the guardrail refuses. */
  checkStatement(statement: GrantStatement): void {
    if (statement.effect !== 'Allow') return;
    const refuse = (what: string): never => {
      throw new InvalidEventError('admin-grant-refused', `${statement.where} ${what}`);
    };
    const onAll = `on all resources (${statement.resourceKey} ${JSON.stringify(statement.resources.length === 1 ? statement.resources[0] : statement.resources).slice(0, 60)})`;
    for (const target of this.denied) if (this.grants(statement, target.action)) refuse(`grants ${target.action}, which IPS_DENIED_ACTIONS denies on any resource`);
    if (this.mode === 'off') return;
    if (this.mode === 'literal') {
      if (statement.actionKey === 'Action' && statement.actions.some((a) => a === '*' || a === '*:*') && statement.resourceKey === 'Resource' && statement.resources.includes('*')) {
        refuse('allows Action "*" on Resource "*"');
      }
      return;
    }
    const allResources = (target: Target) => statement.resourceKey === 'NotResource' || statement.resources.some((pattern) => coversAll(pattern, target.probes));
    if (statement.actionKey === 'Action' && statement.actions.some((a) => EVERY_ACTION.test(a)) && allResources(EVERYTHING)) {
      refuse(`grants every action ("*") ${onAll}`);
    }
    for (const target of this.escalation) {
      if (this.grants(statement, target.action) && allResources(target)) refuse(`grants ${target.action} ${onAll}: it ${target.why}`);
    }
  }

  /** The action patterns of a statement that cover no action the catalogue knows. */
  unknownIn(patterns: string[]): string[] {
    return patterns.filter((pattern) => !this.catalogue.knows(pattern));
  }

  private grants(statement: GrantStatement, action: string): boolean {
    const listed = statement.actions.some((pattern) => actionMatches(pattern, action));
    return statement.actionKey === 'Action' ? listed : !listed;
  }
}

/**
 * Two ARNs per resource type of the action, as different as a name can be,
 * so that a pattern matching both covers every resource of the type; the
 * action itself may say `*` only when it takes no resource.
 */
function probesOf(entry: CatalogueAction, partition: string): string[][] {
  if (entry.resourceArns.length === 0) return [['*']];
  const fill = (format: string, name: string) =>
    format.replace(/\$\{(\w+)\}/g, (_, key: string) => (key === 'Partition' ? partition : key === 'Account' ? '123456789012' : key === 'Region' ? 'us-east-1' : name));
  return entry.resourceArns.map((format) => [fill(format, 'a1'), fill(format, 'Zq-9/x_y.z')]);
}

/**
 * Whether a resource pattern covers every probe of one of the action's
 * resource types. An account named in the pattern counts as any account: the
 * processor cannot know which account it writes for here, and a grant on one
 * account's resources is total in that account.
 */
function coversAll(pattern: string, probes: string[][]): boolean {
  const parts = pattern.split(':');
  const general = parts[0] === 'arn' && parts.length >= 5 && /^\d{12}$/.test(parts[4]!) ? [...parts.slice(0, 4), '*', ...parts.slice(5)].join(':') : pattern;
  return probes.some((arns) => arns.every((arn) => resourceMatches(general, arn)));
}

let fallback: DocumentGuard | undefined;

/** The guard with every default: admin-equivalent, nothing denied beyond it, unknown actions applied. */
export function defaultDocumentGuard(): DocumentGuard {
  fallback ??= new DocumentGuard();
  return fallback;
}

/** The partition of a region's ARNs. */
export function partitionOfRegion(region: string): string {
  if (region.startsWith('cn-')) return 'aws-cn';
  if (region.startsWith('us-gov-')) return 'aws-us-gov';
  return 'aws';
}

const fromConfig = new WeakMap<Config, DocumentGuard>();

/** The guard the configuration asks for, built once per configuration; an IPS_DENIED_ACTIONS pattern that names no action is a ConfigError. */
export function documentGuardFromConfig(config: Config): DocumentGuard {
  let guard = fromConfig.get(config);
  if (!guard) {
    try {
      guard = new DocumentGuard({ mode: config.guardrail, deniedActions: config.deniedActions, unknownActions: config.unknownActions, partition: partitionOfRegion(config.region) });
    } catch (error) {
      if (error instanceof RangeError) throw new ConfigError(error.message);
      throw error;
    }
    fromConfig.set(config, guard);
  }
  return guard;
}
