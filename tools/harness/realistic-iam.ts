// An HTTP layer in front of the IAM emulator (moto) that answers the way real
// IAM does where moto does not, so the tests can see what only real IAM shows:
//
//   - Reads lag writes. Each write to a policy (create, new or deleted version,
//     tags, attach/detach, delete) becomes visible to GetPolicy,
//     GetPolicyVersion, ListPolicyVersions and ListEntitiesForPolicy only after
//     a random lag (seeded; 0-2 s by default). Until then those reads answer
//     from the state before the write: NoSuchEntity for a policy just created,
//     the old default and version list for a version just made, no entity for
//     an attachment just made. Visibility moves forward per policy, never back.
//     Writes themselves act on the current state, as IAM's primary does.
//   - DeletePolicy is refused with DeleteConflict (409) while the policy is
//     attached or still has non-default versions (moto deletes it anyway).
//   - CreatePolicy is refused with EntityAlreadyExists (409) when the name is
//     taken under another path: names are unique per account (moto allows it).
//   - GetPolicyVersion, ListPolicyVersions and GetAccountAuthorizationDetails
//     return documents URL-encoded (once: moto encodes some of them itself).
//   - GetAccountAuthorizationDetails pages as IAM does: MaxItems policies per
//     page (100 by default, 1,000 at most), IsTruncated and an opaque Marker
//     (moto returns everything at once), and names each policy (PolicyName,
//     which moto leaves out).
//   - IAM's limits, with IAM's error code and messages (moto checks only the
//     versions): a document over 6,144 characters, white space not counted
//     as Java's \s counts it (a no-break space counts), is refused with
//     LimitExceeded "Cannot exceed quota for PolicySize: 6144"; a sixth
//     version with LimitExceeded "A managed policy can have up to 5
//     versions..."; a policy past the account's quota (1,500 by default) with
//     LimitExceeded "Cannot exceed quota for PoliciesPerAccount: 1500".
//   - With `policyAccess`, the caller's role is scoped by policy path, as an
//     identity policy whose resource is `arn:aws:iam::<account>:policy<path>*`
//     (and perhaps a Deny on a narrower path): a call naming a policy outside
//     what is allowed is answered AccessDenied (403), the way IAM answers it,
//     without reaching the emulator. ListPolicies and
//     GetAccountAuthorizationDetails (account-wide: no policy resource) are
//     granted on "*" unless `list` is false. moto answers every caller as if
//     it were an administrator.
//   - With `enforceTrust`, STS AssumeRole answers as STS does (moto lets any
//     caller assume any role ARN, existing or not): AccessDenied (403) unless
//     the role exists in the account its ARN names and its trust policy
//     allows sts:AssumeRole to the caller's account (its root, or the
//     account id), with the ExternalId its `sts:ExternalId` condition asks
//     for. The caller is the emulator's own account (the stack's static keys).
//   - Every call is counted by action (`stats.calls`), so a test can count
//     what a command costs in IAM calls.
//
// How: before a write, the layer reads the policy's state from moto (the same
// read calls the SDK makes) and keeps those answers as the view readers get
// until the write's lag has passed. A read the layer holds no old answer for
// (another page, another filter, ListPolicies, GetAccountAuthorizationDetails)
// is answered fresh.
//
// Only the Query protocol as the SDK speaks it: form-encoded POST bodies with
// Action=..., XML answers. Anything else (STS on the same port) passes through.
import { createServer, request } from 'node:http';
import type { IncomingHttpHeaders, IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { LOCAL_ACCOUNT_ID } from '../local/stack.js';
import { seededRandom } from '../../src/ops/load.js';

export interface RealisticIamOptions {
  /** The IAM emulator's endpoint. */
  target: string;
  seed?: number;
  /** Lag of reads behind a write, drawn uniformly per write: [min, max] ms. Default [0, 2000]. */
  lagMs?: [number, number];
  /** Account of the emulator (builds a new policy's ARN). Default moto's. */
  account?: string;
  /** Customer-managed policies the account may hold (IAM's quota). Default 1,500. */
  maxPoliciesPerAccount?: number;
  /** The caller's permissions by policy path (see the header); absent: everything allowed. */
  policyAccess?: PolicyAccess;
  /** STS AssumeRole checks the role's existence and trust policy (see the header). Default false. */
  enforceTrust?: boolean;
}

export interface PolicyAccess {
  /** Paths whose policies (and those below them) the caller may act on, e.g. the managed path prefix. */
  allow: string[];
  /** Paths denied even under an allowed one (a Deny statement wins). */
  deny?: string[];
  /** Whether the account-wide listings (ListPolicies, GetAccountAuthorizationDetails) are allowed. Default true. */
  list?: boolean;
}

/** IAM's size limit of a managed policy document. */
const POLICY_SIZE_QUOTA = 6_144;
const MAX_VERSIONS = 5;

export interface RealisticIam {
  endpoint: string;
  /** Changes the lag range for writes from now on. */
  setLag(minMs: number, maxMs: number): void;
  /** Resolves once every write made so far is visible to reads. */
  settled(): Promise<void>;
  /** What the layer did, for logs and assertions. */
  stats: { laggedReads: number; deleteConflicts: number; nameConflicts: number; writes: number; limitsExceeded: number; accessDenied: number; calls: Record<string, number> };
  /** Changes the caller's permissions from now on (undefined: everything allowed). */
  setPolicyAccess(access: PolicyAccess | undefined): void;
  close(): Promise<void>;
}

interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

/** A view readers get until `until`: the answers to the policy's reads before a write. */
interface View {
  until: number;
  answers: Map<string, Answer>;
}

interface PolicyState {
  views: View[];
  /** Writes to one policy go one at a time: a view is the state between two of them. */
  queue: Promise<unknown>;
}

const IAM_VERSION = '2010-05-08';
/** Reads of the whole account, which IAM grants on "*" only. */
const ACCOUNT_LISTINGS = new Set(['ListPolicies', 'GetAccountAuthorizationDetails']);
const LAGGED_READS = new Set(['GetPolicy', 'GetPolicyVersion', 'ListPolicyVersions', 'ListEntitiesForPolicy']);
const POLICY_WRITES = new Set([
  'CreatePolicy',
  'CreatePolicyVersion',
  'DeletePolicyVersion',
  'SetDefaultPolicyVersion',
  'DeletePolicy',
  'TagPolicy',
  'UntagPolicy',
  'AttachRolePolicy',
  'DetachRolePolicy',
  'AttachUserPolicy',
  'DetachUserPolicy',
  'AttachGroupPolicy',
  'DetachGroupPolicy',
]);

/** The read as a key: the action and its parameters, in a fixed order, without the API version. */
function readKey(params: URLSearchParams): string {
  return [...params.entries()]
    .filter(([key]) => key !== 'Version')
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([key, value]) => `${key}=${value}`)
    .join('&');
}

export function iamErrorBody(code: string, message: string, type: 'Sender' | 'Receiver' = 'Sender'): string {
  return `<ErrorResponse xmlns="https://iam.amazonaws.com/doc/${IAM_VERSION}/"><Error><Type>${type}</Type><Code>${code}</Code><Message>${message}</Message></Error><RequestId>realistic-iam</RequestId></ErrorResponse>`;
}

function xmlUnescape(text: string): string {
  return text.replace(/&(lt|gt|quot|apos|amp|#\d+|#x[0-9a-f]+);/gi, (_, entity: string) => {
    const named: Record<string, string> = { lt: '<', gt: '>', quot: '"', apos: "'", amp: '&' };
    if (entity.toLowerCase() in named) return named[entity.toLowerCase()]!;
    return String.fromCodePoint(entity[1] === 'x' || entity[1] === 'X' ? parseInt(entity.slice(2), 16) : parseInt(entity.slice(1), 10));
  });
}

/** Real IAM URL-encodes policy documents in its answers; moto sends most of them raw (a JSON document starts with `{`, an encoded one never does). */
function encodeDocuments(body: string): string {
  return body.replace(/<Document>([\s\S]*?)<\/Document>/g, (whole, raw: string) => {
    const text = xmlUnescape(raw);
    return text.trimStart().startsWith('{') ? `<Document>${encodeURIComponent(text)}</Document>` : whole;
  });
}

/** IAM's page size of GetAccountAuthorizationDetails: 100 unless MaxItems asks for another, at most 1,000. */
const DETAILS_PAGE = { default: 100, max: 1_000 };

/** The top-level `<member>` elements of an XML list (their own lists hold `<member>`s too). */
function topLevelMembers(list: string): string[] {
  const members: string[] = [];
  let depth = 0;
  let start = 0;
  for (const match of list.matchAll(/<(\/?)member>/g)) {
    if (match[1] === '') {
      if (depth === 0) start = match.index;
      depth++;
    } else {
      depth--;
      if (depth === 0) members.push(list.slice(start, match.index + match[0].length));
    }
  }
  return members;
}

/**
 * moto's GetAccountAuthorizationDetails answer as IAM gives it: one page of
 * policies from `Marker` (an opaque token: here the index of the first), each
 * with its PolicyName, and IsTruncated with the next Marker while more remain.
 */
function pageOfDetails(body: string, params: URLSearchParams): string {
  const policies = /<Policies>([\s\S]*)<\/Policies>/.exec(body);
  if (!policies) return body;
  const size = Math.min(DETAILS_PAGE.max, Math.max(1, Number(params.get('MaxItems') ?? DETAILS_PAGE.default) || DETAILS_PAGE.default));
  const marker = params.get('Marker');
  const from = marker
    ? Number(
        Buffer.from(marker, 'base64url')
          .toString('utf8')
          .replace(/^page:/, ''),
      ) || 0
    : 0;
  const all = topLevelMembers(policies[1]!);
  const page = all.slice(from, from + size).map((member) => {
    if (member.includes('<PolicyName>')) return member;
    const arn = /<Arn>([^<]*)<\/Arn>/.exec(member)?.[1] ?? '';
    return member.replace('<member>', `<member><PolicyName>${arn.slice(arn.lastIndexOf('/') + 1)}</PolicyName>`);
  });
  const more = from + size < all.length;
  const next = more ? `<IsTruncated>true</IsTruncated><Marker>${Buffer.from(`page:${from + size}`).toString('base64url')}</Marker>` : '<IsTruncated>false</IsTruncated>';
  return body.replace(/<Policies>[\s\S]*<\/Policies>/, `<Policies>${page.join('')}</Policies>`).replace(/<IsTruncated>[^<]*<\/IsTruncated>(<Marker>[^<]*<\/Marker>)?/, next);
}

export async function startRealisticIam(options: RealisticIamOptions): Promise<RealisticIam> {
  const target = new URL(options.target);
  const random = seededRandom(options.seed ?? 1);
  const account = options.account ?? LOCAL_ACCOUNT_ID;
  let [minLag, maxLag] = options.lagMs ?? [0, 2_000];
  const policies = new Map<string, PolicyState>();
  const stats = { laggedReads: 0, deleteConflicts: 0, nameConflicts: 0, writes: 0, limitsExceeded: 0, accessDenied: 0, calls: {} as Record<string, number> };
  const maxPolicies = options.maxPoliciesPerAccount ?? 1_500;
  let access = options.policyAccess;

  /** IAM's answer to a call the caller's role does not allow, or undefined when it does. */
  function denied(action: string, arn: string | undefined): Answer | undefined {
    if (!access) return undefined;
    let allowed: boolean;
    if (arn === undefined) allowed = !ACCOUNT_LISTINGS.has(action) || access.list !== false;
    else {
      const under = (path: string) => arn.startsWith(`arn:aws:iam::${account}:policy${path}`);
      allowed = access.allow.some(under) && !(access.deny ?? []).some(under);
    }
    if (allowed) return undefined;
    stats.accessDenied++;
    const resource = arn ?? '*';
    return {
      status: 403,
      headers: { 'content-type': 'text/xml' },
      body: iamErrorBody(
        'AccessDenied',
        `User: arn:aws:sts::${account}:assumed-role/scoped/session is not authorized to perform: iam:${action} on resource: ${resource} because no identity-based policy allows the iam:${action} action`,
      ),
    };
  }

  /** Why STS would refuse this AssumeRole, as STS answers it; undefined: the role trusts the caller. */
  async function untrusted(params: URLSearchParams, headers: IncomingHttpHeaders): Promise<Answer | undefined> {
    const roleArn = params.get('RoleArn') ?? '';
    const refuse = (): Answer => {
      stats.accessDenied++;
      return {
        status: 403,
        headers: { 'content-type': 'text/xml' },
        body: `<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>User: arn:aws:sts::${account}:user/moto is not authorized to perform: sts:AssumeRole on resource: ${roleArn}</Message></Error><RequestId>realistic-iam</RequestId></ErrorResponse>`,
      };
    };
    const match = /^arn:aws:iam::(\d{12}):role\/(?:.*\/)?([\w+=,.@-]+)$/.exec(roleArn);
    if (!match) return refuse();
    const [, roleAccount, roleName] = match;
    // moto routes a call by its signature's service: the STS call's headers, re-scoped to IAM, in the role's account.
    const authorization = String(headers.authorization ?? '').replace('/sts/aws4_request', '/iam/aws4_request');
    const role = await call('GetRole', { RoleName: roleName! }, { ...headers, authorization, 'x-moto-account-id': roleAccount! });
    if (role.status !== 200) return refuse();
    const encoded = /<AssumeRolePolicyDocument>([\s\S]*?)<\/AssumeRolePolicyDocument>/.exec(role.body)?.[1] ?? '';
    let trust: { Statement?: unknown };
    try {
      const text = xmlUnescape(encoded);
      trust = JSON.parse(text.trimStart().startsWith('{') ? text : decodeURIComponent(text)) as { Statement?: unknown };
    } catch {
      return refuse();
    }
    const statements = (Array.isArray(trust.Statement) ? trust.Statement : [trust.Statement]) as Record<string, unknown>[];
    const list = (value: unknown) => (value === undefined ? [] : Array.isArray(value) ? value : [value]) as unknown[];
    const externalId = params.get('ExternalId') ?? undefined;
    const allows = statements.some((statement) => {
      if (statement?.Effect !== 'Allow' || !list(statement.Action).includes('sts:AssumeRole')) return false;
      const principals = list((statement.Principal as { AWS?: unknown } | undefined)?.AWS);
      if (!principals.some((p) => p === `arn:aws:iam::${account}:root` || p === account)) return false;
      const wanted = (statement.Condition as { StringEquals?: Record<string, unknown> } | undefined)?.StringEquals?.['sts:ExternalId'];
      return wanted === undefined || list(wanted).includes(externalId);
    });
    return allows ? undefined : refuse();
  }

  function stateOf(arn: string): PolicyState {
    let state = policies.get(arn);
    if (!state) policies.set(arn, (state = { views: [], queue: Promise.resolve() }));
    return state;
  }

  /** One call to the emulator, answer buffered. */
  function send(body: string, headers: IncomingHttpHeaders = {}): Promise<Answer> {
    return new Promise((resolve, reject) => {
      const upstream = request(
        {
          host: target.hostname,
          port: target.port,
          method: 'POST',
          path: '/',
          headers: {
            ...headers,
            host: target.host,
            'content-type': 'application/x-www-form-urlencoded; charset=utf-8',
            'content-length': Buffer.byteLength(body),
          },
        },
        (answer) => {
          const chunks: Buffer[] = [];
          answer.on('data', (chunk: Buffer) => chunks.push(chunk));
          answer.on('end', () => {
            const { 'content-length': _length, 'transfer-encoding': _encoding, connection: _connection, ...rest } = answer.headers;
            resolve({ status: answer.statusCode ?? 502, headers: rest, body: Buffer.concat(chunks).toString('utf8') });
          });
          answer.on('error', reject);
        },
      );
      upstream.on('error', reject);
      upstream.end(body);
    });
  }

  function call(action: string, params: Record<string, string>, headers?: IncomingHttpHeaders): Promise<Answer> {
    return send(new URLSearchParams({ Action: action, Version: IAM_VERSION, ...params }).toString(), headers);
  }

  function keyOf(action: string, params: Record<string, string>): string {
    return readKey(new URLSearchParams({ Action: action, Version: IAM_VERSION, ...params }));
  }

  /** The policy's reads as they stand now, kept as the view before a write. */
  async function capture(arn: string, headers: IncomingHttpHeaders): Promise<Map<string, Answer>> {
    const answers = new Map<string, Answer>();
    const read = async (action: string, params: Record<string, string>) => {
      const answer = await call(action, params, headers);
      answers.set(keyOf(action, params), answer);
      return answer;
    };
    const policy = await read('GetPolicy', { PolicyArn: arn });
    if (policy.status !== 200) return answers; // absent: every read of it is NoSuchEntity
    const versions = await read('ListPolicyVersions', { PolicyArn: arn });
    const ids = [...versions.body.matchAll(/<VersionId>([^<]+)<\/VersionId>/g)].map((match) => match[1]!);
    await Promise.all(ids.map((id) => read('GetPolicyVersion', { PolicyArn: arn, VersionId: id })));
    await read('ListEntitiesForPolicy', { PolicyArn: arn });
    return answers;
  }

  /** What a read gets while `view` is what readers see; undefined: ask the emulator. */
  function fromView(view: View, params: URLSearchParams): Answer | undefined {
    const held = view.answers.get(readKey(params));
    if (held) return held;
    const policy = view.answers.get(keyOf('GetPolicy', { PolicyArn: params.get('PolicyArn') ?? '' }));
    const absent = policy !== undefined && policy.status !== 200;
    if (absent) return policy;
    if (params.get('Action') === 'GetPolicyVersion') {
      return {
        status: 404,
        headers: { 'content-type': 'text/xml' },
        body: iamErrorBody('NoSuchEntity', `Policy ${params.get('PolicyArn')} version ${params.get('VersionId')} does not exist or is not attachable.`),
      };
    }
    return undefined;
  }

  function arnOf(action: string, params: URLSearchParams): string | undefined {
    if (action === 'CreatePolicy') return `arn:aws:iam::${account}:policy${params.get('Path') ?? '/'}${params.get('PolicyName') ?? ''}`;
    return params.get('PolicyArn') ?? undefined;
  }

  /** IAM refuses to delete a policy that is attached or still has non-default versions. */
  async function deleteConflict(arn: string, headers: IncomingHttpHeaders): Promise<string | undefined> {
    let marker: string | undefined;
    do {
      const page = await call('ListEntitiesForPolicy', { PolicyArn: arn, ...(marker ? { Marker: marker } : {}) }, headers);
      if (page.status !== 200) return undefined; // let DeletePolicy answer for itself
      if (/<(PolicyRoles|PolicyUsers|PolicyGroups)>\s*<member>/.test(page.body)) return 'Cannot delete a policy attached to entities.';
      marker = /<IsTruncated>true<\/IsTruncated>/.test(page.body) ? /<Marker>([^<]+)<\/Marker>/.exec(page.body)?.[1] : undefined;
    } while (marker);
    const versions = await call('ListPolicyVersions', { PolicyArn: arn }, headers);
    if (versions.status === 200 && /<IsDefaultVersion>false<\/IsDefaultVersion>/.test(versions.body)) {
      return "This policy has more than one version. Before you delete a policy, you must delete the policy's versions. The default version is deleted with the policy.";
    }
    return undefined;
  }

  /** The account's policies: whether the name is taken under another ARN (names are unique per account, whatever the path), and how many there are. */
  async function accountPolicies(name: string, arn: string, headers: IncomingHttpHeaders): Promise<{ nameTaken: boolean; count: number }> {
    let marker: string | undefined;
    let nameTaken = false;
    let count = 0;
    do {
      const page = await call('ListPolicies', { Scope: 'Local', ...(marker ? { Marker: marker } : {}) }, headers);
      if (page.status !== 200) return { nameTaken, count };
      for (const [, policyName, policyArn] of page.body.matchAll(/<PolicyName>([^<]*)<\/PolicyName>[\s\S]*?<Arn>([^<]*)<\/Arn>/g)) {
        count++;
        if (policyName === name && policyArn !== arn) nameTaken = true;
      }
      marker = /<IsTruncated>true<\/IsTruncated>/.test(page.body) ? /<Marker>([^<]+)<\/Marker>/.exec(page.body)?.[1] : undefined;
    } while (marker);
    return { nameTaken, count };
  }

  /** IAM's LimitExceeded for a write past one of its limits; undefined when the write is within them. */
  async function limitExceeded(action: string, arn: string, params: URLSearchParams, headers: IncomingHttpHeaders): Promise<string | undefined> {
    const document = params.get('PolicyDocument');
    // IAM does not count white space: Java's \s, which a no-break space is not.
    if (document !== null && document.replace(/[ \t\n\x0b\f\r]/g, '').length > POLICY_SIZE_QUOTA) return `Cannot exceed quota for PolicySize: ${POLICY_SIZE_QUOTA}`;
    if (action === 'CreatePolicyVersion') {
      const versions = await call('ListPolicyVersions', { PolicyArn: arn }, headers);
      if (versions.status === 200 && [...versions.body.matchAll(/<VersionId>/g)].length >= MAX_VERSIONS) {
        return 'A managed policy can have up to 5 versions. Before you create a new version, you must delete an existing version.';
      }
    }
    return undefined;
  }

  async function write(action: string, arn: string, body: string, headers: IncomingHttpHeaders): Promise<Answer> {
    const state = stateOf(arn);
    const run = state.queue.then(async () => {
      stats.writes++;
      const params = new URLSearchParams(body);
      const name = params.get('PolicyName') ?? '';
      const refuseLimit = (message: string): Answer => {
        stats.limitsExceeded++;
        return { status: 409, headers: { 'content-type': 'text/xml' }, body: iamErrorBody('LimitExceeded', message) };
      };
      const limit = await limitExceeded(action, arn, params, headers);
      if (limit) return refuseLimit(limit);
      if (action === 'CreatePolicy') {
        const account = await accountPolicies(name, arn, headers);
        if (account.nameTaken) {
          stats.nameConflicts++;
          return { status: 409, headers: { 'content-type': 'text/xml' }, body: iamErrorBody('EntityAlreadyExists', `A policy called ${name} already exists. Duplicate names are not allowed.`) };
        }
        if (account.count >= maxPolicies) return refuseLimit(`Cannot exceed quota for PoliciesPerAccount: ${maxPolicies}`);
      }
      if (action === 'DeletePolicy') {
        const conflict = await deleteConflict(arn, headers);
        if (conflict) {
          stats.deleteConflicts++;
          return { status: 409, headers: { 'content-type': 'text/xml' }, body: iamErrorBody('DeleteConflict', conflict) };
        }
      }
      const now = Date.now();
      const last = state.views.at(-1)?.until ?? 0;
      const view: View = { until: Math.max(now + minLag + random() * (maxLag - minLag), last), answers: await capture(arn, headers) };
      state.views.push(view);
      const answer = await send(body, headers);
      // A refused write changed nothing: nothing new to become visible.
      if (answer.status >= 300) state.views.splice(state.views.indexOf(view), 1);
      return answer;
    });
    state.queue = run.catch(() => undefined);
    return run;
  }

  async function read(arn: string, params: URLSearchParams, body: string, headers: IncomingHttpHeaders): Promise<Answer> {
    const state = policies.get(arn);
    if (state) {
      const now = Date.now();
      while (state.views.length > 0 && state.views[0]!.until <= now) state.views.shift();
      const view = state.views[0];
      const held = view && fromView(view, params);
      if (held) {
        stats.laggedReads++;
        return held;
      }
    }
    return send(body, headers);
  }

  async function answer(req: IncomingMessage, body: string): Promise<Answer> {
    const params = new URLSearchParams(body);
    const action = params.get('Action') ?? '';
    const headers = { ...req.headers };
    delete headers['content-length'];
    if (action.length > 0) stats.calls[action] = (stats.calls[action] ?? 0) + 1;
    if (action === 'AssumeRole' && options.enforceTrust) {
      const refusal = await untrusted(params, headers);
      if (refusal) return refusal;
      return send(body, headers);
    }
    const arn = arnOf(action, params);
    const refused = action.length > 0 ? denied(action, arn) : undefined;
    if (refused) return refused;
    if (arn && POLICY_WRITES.has(action)) return write(action, arn, body, headers);
    if (arn && LAGGED_READS.has(action)) return read(arn, params, body, headers);
    if (action === 'GetAccountAuthorizationDetails') {
      const answer = await send(body, headers);
      return answer.status === 200 ? { ...answer, body: pageOfDetails(answer.body, params) } : answer;
    }
    return send(body, headers);
  }

  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      answer(req, Buffer.concat(chunks).toString('utf8')).then(
        (result) => {
          const text = encodeDocuments(result.body);
          res.writeHead(result.status, { ...result.headers, 'content-length': Buffer.byteLength(text) });
          res.end(text);
        },
        () => res.destroy(),
      );
    });
  });

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    stats,
    setPolicyAccess(next) {
      access = next;
    },
    setLag(minMs, maxMs) {
      [minLag, maxLag] = [minMs, Math.max(minMs, maxMs)];
    },
    async settled() {
      await Promise.all([...policies.values()].map((state) => state.queue));
      const until = Math.max(0, ...[...policies.values()].map((state) => state.views.at(-1)?.until ?? 0));
      const wait = until - Date.now();
      if (wait > 0) await sleep(wait + 1);
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
