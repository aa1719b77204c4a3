// Offline resolution of the intrinsic functions a synthesized template uses
// (parameters, conditions, Fn::Sub, Fn::Join, Ref, Fn::GetAtt), with a
// stand-in account: the infrastructure tests read the template as
// CloudFormation will, not the CDK constructs that made it.

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export type JsonObject = { [key: string]: Json };

export interface ResolveContext {
  parameters: Record<string, string | number | string[]>;
  pseudo: { partition: string; accountId: string; region: string };
}

export const STAND_IN = { partition: 'aws', accountId: '123456789012', region: 'eu-west-1' };

const NO_VALUE = Symbol('AWS::NoValue');

export class TemplateResolver {
  private readonly conditions = new Map<string, boolean>();
  readonly parameters: Record<string, string | number | string[]>;
  /** Parameters whose Ref is a list (CommaDelimitedList, List<...>). */
  private readonly lists = new Set<string>();

  constructor(
    private readonly template: JsonObject,
    overrides: Record<string, string | number | string[]> = {},
    private readonly pseudo = STAND_IN,
  ) {
    const declared = (template.Parameters ?? {}) as Record<string, JsonObject>;
    this.parameters = {};
    for (const [name, declaration] of Object.entries(declared)) {
      const value = overrides[name] ?? (declaration.Default as string | number | undefined) ?? `<${name}>`;
      const type = String(declaration.Type);
      if (type === 'CommaDelimitedList' || type.startsWith('List<')) {
        this.lists.add(name);
        // CloudFormation splits the value at commas: an empty value is a list of one empty string.
        this.parameters[name] = Array.isArray(value) ? value : String(value).split(',');
      } else {
        this.parameters[name] = value;
      }
    }
  }

  condition(name: string): boolean {
    const known = this.conditions.get(name);
    if (known !== undefined) return known;
    const definition = ((this.template.Conditions ?? {}) as JsonObject)[name];
    if (definition === undefined) throw new Error(`unknown condition ${name}`);
    const value = this.truth(definition);
    this.conditions.set(name, value);
    return value;
  }

  private truth(expression: Json): boolean {
    const [fn, args] = Object.entries(expression as JsonObject)[0] ?? [];
    const items = args as Json[];
    switch (fn) {
      case 'Fn::Equals':
        return String(this.resolve(items[0]!)) === String(this.resolve(items[1]!));
      case 'Fn::Not':
        return !this.truth(items[0]!);
      case 'Fn::And':
        return items.every((item) => this.truth(item));
      case 'Fn::Or':
        return items.some((item) => this.truth(item));
      case 'Condition':
        return this.condition(args as string);
      default:
        throw new Error(`unsupported condition function ${fn}`);
    }
  }

  resource(logicalId: string): JsonObject {
    const resource = ((this.template.Resources ?? {}) as JsonObject)[logicalId] as JsonObject | undefined;
    if (!resource) throw new Error(`unknown resource ${logicalId}`);
    return resource;
  }

  /** Whether CloudFormation creates the resource with these parameter values (its Condition holds, or it has none). */
  exists(logicalId: string): boolean {
    const condition = this.resource(logicalId).Condition;
    return condition === undefined || this.condition(String(condition));
  }

  /** Logical IDs of the resources of a type that CloudFormation creates with these parameter values. */
  resourcesOfType(type: string): string[] {
    return Object.entries((this.template.Resources ?? {}) as Record<string, JsonObject>)
      .filter(([logicalId, resource]) => resource.Type === type && this.exists(logicalId))
      .map(([logicalId]) => logicalId);
  }

  /** What Ref gives for a resource: its physical name for the kinds the policies mention. */
  private refResource(logicalId: string): string {
    const resource = this.resource(logicalId);
    const properties = (resource.Properties ?? {}) as JsonObject;
    switch (resource.Type) {
      case 'AWS::DynamoDB::Table':
        return String(this.resolve(properties.TableName!));
      case 'AWS::Kinesis::Stream':
        return String(this.resolve(properties.Name!));
      case 'AWS::Logs::LogGroup':
        return String(this.resolve(properties.LogGroupName!));
      default:
        return logicalId;
    }
  }

  private getAtt(logicalId: string, attribute: string): string {
    const resource = this.resource(logicalId);
    const { partition, region, accountId } = this.pseudo;
    if (attribute === 'Arn') {
      switch (resource.Type) {
        case 'AWS::DynamoDB::Table':
          return `arn:${partition}:dynamodb:${region}:${accountId}:table/${this.refResource(logicalId)}`;
        case 'AWS::Kinesis::Stream':
          return `arn:${partition}:kinesis:${region}:${accountId}:stream/${this.refResource(logicalId)}`;
        case 'AWS::IAM::Role':
          return `arn:${partition}:iam::${accountId}:role/${logicalId}`;
        case 'AWS::Logs::LogGroup':
          return `arn:${partition}:logs:${region}:${accountId}:log-group:${this.refResource(logicalId)}:*`;
        default:
          break;
      }
    }
    return `${logicalId}.${attribute}`;
  }

  private variable(name: string): string {
    const pseudo: Record<string, string> = {
      'AWS::Partition': this.pseudo.partition,
      'AWS::AccountId': this.pseudo.accountId,
      'AWS::Region': this.pseudo.region,
      'AWS::StackName': 'stack',
      'AWS::URLSuffix': 'amazonaws.com',
    };
    if (name in pseudo) return pseudo[name]!;
    if (name in this.parameters) return String(this.parameters[name]);
    if (name.includes('.')) {
      const [id, attribute] = name.split('.') as [string, string];
      return this.getAtt(id, attribute);
    }
    return this.refResource(name);
  }

  resolve(value: Json): Json {
    const resolved = this.walk(value);
    return resolved === NO_VALUE ? null : (resolved as Json);
  }

  private walk(value: Json): Json | typeof NO_VALUE {
    if (Array.isArray(value)) return value.map((item) => this.walk(item)).filter((item): item is Json => item !== NO_VALUE);
    if (value === null || typeof value !== 'object') return value;
    const keys = Object.keys(value);
    if (keys.length === 1) {
      const key = keys[0]!;
      const args = value[key]!;
      switch (key) {
        case 'Ref':
          if (args === 'AWS::NoValue') return NO_VALUE;
          if (this.lists.has(args as string)) return [...(this.parameters[args as string] as string[])];
          return this.variable(args as string) as Json;
        case 'Fn::Sub': {
          const [text, vars] = Array.isArray(args) ? (args as [string, JsonObject]) : [args as string, {}];
          return text.replace(/\$\{([^}!][^}]*)\}/g, (_whole, name: string) => (name in vars ? String(this.walk(vars[name]!)) : this.variable(name)));
        }
        case 'Fn::GetAtt': {
          const [id, attribute] = Array.isArray(args) ? (args as [string, string]) : (String(args).split('.') as [string, string]);
          return this.getAtt(id, attribute);
        }
        case 'Fn::If': {
          const [condition, yes, no] = args as [string, Json, Json];
          return this.walk(this.condition(condition) ? yes : no);
        }
        case 'Fn::Join': {
          const [separator, items] = args as [string, Json[]];
          return (this.walk(items) as Json[]).map(String).join(separator);
        }
        default:
          break;
      }
    }
    const out: JsonObject = {};
    for (const [key, item] of Object.entries(value)) {
      const resolved = this.walk(item);
      if (resolved !== NO_VALUE) out[key] = resolved;
    }
    return out;
  }
}
