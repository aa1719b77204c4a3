// Simulated IAM for the simulation, with the behaviours of real IAM that the
// protocol must survive (tools/harness/realistic-iam.ts describes them for the
// emulator): reads lag writes by 0-2 s (visibility moves forward per policy,
// never back), names are unique per account whatever the path, at most 5
// versions, DeletePolicy refused with DeleteConflict while non-default versions
// remain, documents over 6,144 characters refused, documents URL-encoded in
// answers. Faults: throttling before the effect, an answer lost after it.
import { DeleteConflictException, EntityAlreadyExistsException, LimitExceededException, NoSuchEntityException } from '@aws-sdk/client-iam';
import type { Proc, Scheduler } from './scheduler.js';

export const SIM_ACCOUNT = '123456789012';

interface PolicyState {
  name: string;
  path: string;
  versions: { id: string; document: string; isDefault: boolean }[];
  nextVersion: number;
  tags: Record<string, string>;
  description: string | undefined;
}

export interface IamFaults {
  throttle: number;
  lostAnswer: number;
  /** Upper bound of read lag, ms. */
  lagMs: number;
}

const meta = { $metadata: { httpStatusCode: 400 } };

/** An SDK command as the simulated client reads it: its name, its input, and its own middleware (a guard at dispatch). */
interface SimCommand {
  constructor: { name: string };
  input: unknown;
  middlewareStack?: { resolve: (handler: (args: any) => Promise<{ output: unknown; response: unknown }>, context: object) => (args: any) => Promise<{ output: unknown }> };
}

export class SimIam {
  private readonly current = new Map<string, PolicyState>();
  /** Per name: the states readers see, each from a time on. */
  private readonly views = new Map<string, { at: number; state: PolicyState | undefined }[]>();
  /** Every IAM effect, in order (for the trace). */
  writes = 0;

  constructor(
    private readonly scheduler: Scheduler,
    public faults: IamFaults,
  ) {}

  /** A client for one process: each call is sent, lands and is answered at points the scheduler picks. */
  client(proc: Proc | undefined): { send: (command: SimCommand) => Promise<unknown> } {
    return {
      send: async (command) => {
        const name = command.constructor.name.replace(/Command$/, '');
        const input = command.input as Record<string, any>;
        // A process may pause here, after its code sent the call and before the call goes on the
        // wire. Dispatch then runs what the command's own middleware does at the wire, as the
        // SDK's handler step would, before the request leaves.
        if (proc) await this.scheduler.point(proc, `send ${name} ${input.PolicyArn ?? input.PolicyName ?? ''}`);
        if (!command.middlewareStack) return this.wire(proc, name, input);
        const dispatch = command.middlewareStack.resolve(async () => ({ output: await this.wire(proc, name, input), response: {} }), {});
        return (await dispatch({ input })).output;
      },
    };
  }

  /** A call on the wire: it lands, may be throttled before its effect, takes effect, and its answer may be lost. */
  private async wire(proc: Proc | undefined, name: string, input: Record<string, any>): Promise<unknown> {
    await this.scheduler.landing(`land ${name}`);
    if (proc && this.scheduler.chance(this.faults.throttle)) {
      if (proc) await this.scheduler.point(proc, `throttled ${name}`);
      throw Object.assign(new Error('Rate exceeded'), { name: 'Throttling', ...meta });
    }
    let answer: unknown;
    let failure: unknown;
    try {
      answer = this.handle(name, input);
    } catch (error) {
      failure = error;
    }
    if (proc) {
      if (this.scheduler.chance(this.faults.lostAnswer)) {
        this.scheduler.log(`${proc.id} answer lost: ${name}`);
        await this.scheduler.point(proc, `lost ${name}`);
        throw Object.assign(new Error('socket hang up'), { name: 'Error', code: 'ECONNRESET' });
      }
      await this.scheduler.point(proc, `answer ${name}`);
    }
    if (failure) throw failure;
    return answer;
  }

  /** The checker's client: answered at once, as IAM stands once every write is visible (call settle() first). */
  direct(): { send: (command: { constructor: { name: string }; input: unknown }) => Promise<unknown> } {
    return { send: async (command) => this.handle(command.constructor.name.replace(/Command$/, ''), command.input as Record<string, any>) };
  }

  /** Reads see every write from now on (the end of a run). */
  settle(): void {
    for (const [name, views] of this.views) views.push({ at: this.scheduler.now, state: clone(this.current.get(name)) });
  }

  private handle(action: string, input: Record<string, any>): unknown {
    switch (action) {
      case 'GetCallerIdentity':
        return { Account: SIM_ACCOUNT, Arn: `arn:aws:iam::${SIM_ACCOUNT}:user/sim` };
      case 'CreatePolicy': {
        const name = input.PolicyName as string;
        const path = (input.Path as string | undefined) ?? '/';
        if (this.current.has(name)) throw new EntityAlreadyExistsException({ message: `A policy called ${name} already exists. Duplicate names are not allowed.`, ...meta });
        this.checkSize(input.PolicyDocument);
        const tags = Object.fromEntries(((input.Tags ?? []) as { Key: string; Value: string }[]).map((tag) => [tag.Key, tag.Value]));
        const state: PolicyState = { name, path, versions: [{ id: 'v1', document: input.PolicyDocument, isDefault: true }], nextVersion: 2, tags, description: input.Description };
        this.write(state.name, state);
        return { Policy: this.policyOf(state) };
      }
      case 'CreatePolicyVersion': {
        const state = this.mutable(input.PolicyArn);
        this.checkSize(input.PolicyDocument);
        if (state.versions.length >= 5)
          throw new LimitExceededException({ message: 'A managed policy can have up to 5 versions. Before you create a new version, you must delete an existing version.', ...meta });
        const id = `v${state.nextVersion++}`;
        if (input.SetAsDefault) for (const version of state.versions) version.isDefault = false;
        state.versions.push({ id, document: input.PolicyDocument, isDefault: input.SetAsDefault === true });
        this.write(state.name, state);
        return { PolicyVersion: { VersionId: id, IsDefaultVersion: input.SetAsDefault === true } };
      }
      case 'DeletePolicyVersion': {
        const state = this.mutable(input.PolicyArn);
        const version = state.versions.find((v) => v.id === input.VersionId);
        if (!version) throw new NoSuchEntityException({ message: `Policy version ${input.VersionId} does not exist`, ...meta });
        if (version.isDefault) throw new DeleteConflictException({ message: 'Cannot delete the default version of a policy.', ...meta });
        state.versions = state.versions.filter((v) => v !== version);
        this.write(state.name, state);
        return {};
      }
      case 'DeletePolicy': {
        const state = this.mutable(input.PolicyArn);
        if (state.versions.length > 1)
          throw new DeleteConflictException({ message: "This policy has more than one version. Before you delete a policy, you must delete the policy's versions.", ...meta });
        this.write(state.name, undefined);
        return {};
      }
      case 'TagPolicy': {
        const state = this.mutable(input.PolicyArn);
        for (const tag of input.Tags as { Key: string; Value: string }[]) state.tags[tag.Key] = tag.Value;
        this.write(state.name, state);
        return {};
      }
      case 'UntagPolicy': {
        const state = this.mutable(input.PolicyArn);
        for (const key of input.TagKeys as string[]) delete state.tags[key];
        this.write(state.name, state);
        return {};
      }
      case 'GetPolicy':
        return { Policy: this.policyOf(this.visible(input.PolicyArn)) };
      case 'GetPolicyVersion': {
        const version = this.visible(input.PolicyArn).versions.find((v) => v.id === input.VersionId);
        if (!version) throw new NoSuchEntityException({ message: `Policy version ${input.VersionId} does not exist`, ...meta });
        return { PolicyVersion: { VersionId: version.id, IsDefaultVersion: version.isDefault, Document: encodeURIComponent(version.document) } };
      }
      case 'ListPolicyVersions':
        return { Versions: this.visible(input.PolicyArn).versions.map((v) => ({ VersionId: v.id, IsDefaultVersion: v.isDefault, Document: encodeURIComponent(v.document) })), IsTruncated: false };
      case 'ListEntitiesForPolicy':
        this.visible(input.PolicyArn);
        return { PolicyGroups: [], PolicyUsers: [], PolicyRoles: [], IsTruncated: false };
      case 'ListPolicies': {
        const prefix = (input.PathPrefix as string | undefined) ?? '/';
        const policies = [...this.names()].map((name) => this.seen(name)).filter((state): state is PolicyState => state?.path.startsWith(prefix) === true);
        return { Policies: policies.map((state) => this.policyOf(state)), IsTruncated: false };
      }
      default:
        throw new Error(`the simulated IAM does not know ${action}`);
    }
  }

  private names(): Set<string> {
    return new Set([...this.current.keys(), ...this.views.keys()]);
  }

  private checkSize(document: string): void {
    if (document.replace(/\s/g, '').length > 6_144) throw new LimitExceededException({ message: 'Cannot exceed quota for PolicySize: 6144', ...meta });
  }

  private parse(arn: string): { name: string; path: string } {
    const resource = arn.split(':policy')[1] ?? '/';
    const cut = resource.lastIndexOf('/');
    return { path: resource.slice(0, cut + 1), name: resource.slice(cut + 1) };
  }

  /** The policy at the ARN as the primary holds it (writes act on it). */
  private mutable(arn: string): PolicyState {
    const { name, path } = this.parse(arn);
    const state = this.current.get(name);
    if (!state || state.path !== path) throw new NoSuchEntityException({ message: `Policy ${arn} does not exist or is not attachable.`, ...meta });
    return clone(state)!;
  }

  /** The policy at the ARN as a read sees it now (lagging). */
  private visible(arn: string): PolicyState {
    const { name, path } = this.parse(arn);
    const state = this.seen(name);
    if (!state || state.path !== path) throw new NoSuchEntityException({ message: `Policy ${arn} does not exist or is not attachable.`, ...meta });
    return state;
  }

  private seen(name: string): PolicyState | undefined {
    const views = this.views.get(name) ?? [];
    let state: PolicyState | undefined;
    for (const view of views) if (view.at <= this.scheduler.now) state = view.state;
    return clone(state);
  }

  private write(name: string, state: PolicyState | undefined): void {
    this.writes++;
    if (state) this.current.set(name, clone(state)!);
    else this.current.delete(name);
    const views = this.views.get(name) ?? [];
    const last = views[views.length - 1]?.at ?? 0;
    views.push({ at: Math.max(last, this.scheduler.now + this.scheduler.int(this.faults.lagMs + 1)), state: clone(state) });
    this.views.set(name, views);
  }

  private policyOf(state: PolicyState) {
    return {
      PolicyName: state.name,
      Path: state.path,
      Arn: `arn:aws:iam::${SIM_ACCOUNT}:policy${state.path}${state.name}`,
      DefaultVersionId: state.versions.find((v) => v.isDefault)?.id,
      Tags: Object.entries(state.tags).map(([Key, Value]) => ({ Key, Value })),
      AttachmentCount: 0,
      ...(state.description !== undefined ? { Description: state.description } : {}),
    };
  }
}

function clone<T>(value: T): T {
  return value === undefined ? value : structuredClone(value);
}
