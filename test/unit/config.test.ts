import test from 'ava';
import { ConfigError, DEFAULT_TARGET_AUDIT_ROLE_NAME, DEFAULT_TARGET_ROLE_NAME, loadConfig } from '../../src/config/config.js';

test('defaults are documented values', (t) => {
  const config = loadConfig({});
  t.is(config.managedPathPrefix, '/stream-managed/');
  t.is(config.appName, 'iam-policy-stream');
  t.is(config.ledgerTable, 'iam-policy-stream-ledger');
  t.is(config.leaseTable, 'iam-policy-stream');
  t.is(config.guardrail, 'admin-equivalent');
  t.deepEqual(config.deniedActions, []);
  t.is(config.unknownActions, 'apply');
});

test('the guardrail is chosen by IPS_GUARDRAIL; the older IPS_REFUSE_ADMIN_GRANT=false still turns it off', (t) => {
  t.is(loadConfig({ IPS_GUARDRAIL: 'literal' }).guardrail, 'literal');
  t.is(loadConfig({ IPS_REFUSE_ADMIN_GRANT: 'false' }).guardrail, 'off');
  t.is(loadConfig({ IPS_REFUSE_ADMIN_GRANT: 'false', IPS_GUARDRAIL: 'admin-equivalent' }).guardrail, 'admin-equivalent');
  t.deepEqual(loadConfig({ IPS_DENIED_ACTIONS: ' sts:AssumeRole, lambda:UpdateFunctionCode ,' }).deniedActions, ['sts:AssumeRole', 'lambda:UpdateFunctionCode']);
  t.throws(() => loadConfig({ IPS_GUARDRAIL: 'strict' }), { instanceOf: ConfigError, message: /IPS_GUARDRAIL/ });
  t.throws(() => loadConfig({ IPS_UNKNOWN_ACTIONS: 'drop' }), { instanceOf: ConfigError, message: /IPS_UNKNOWN_ACTIONS/ });
});

test('bad values fail with the variable named', (t) => {
  t.throws(() => loadConfig({ IPS_MAX_CONCURRENT_POLICIES: '0' }), { instanceOf: ConfigError, message: /IPS_MAX_CONCURRENT_POLICIES/ });
  t.throws(() => loadConfig({ IPS_MANAGED_PATH_PREFIX: 'stream' }), { instanceOf: ConfigError, message: /IPS_MANAGED_PATH_PREFIX/ });
  t.throws(() => loadConfig({ IPS_REFUSE_ADMIN_GRANT: 'maybe' }), { instanceOf: ConfigError });
});

test('stream and table names are checked at start-up, naming the variable (and the one a default is derived from)', (t) => {
  t.throws(() => loadConfig({ IPS_STREAM_NAME: 'bad name!' }), { instanceOf: ConfigError, message: /^IPS_STREAM_NAME must be a Kinesis stream name.*"bad name!"/ });
  t.throws(() => loadConfig({ IPS_LEDGER_TABLE: 'x' }), { instanceOf: ConfigError, message: /^IPS_LEDGER_TABLE must be a DynamoDB table name/ });
  t.throws(() => loadConfig({ IPS_DEAD_LETTER_TABLE: 'a/b' }), { instanceOf: ConfigError, message: /^IPS_DEAD_LETTER_TABLE/ });
  t.throws(() => loadConfig({ IPS_EVENT_ARCHIVE_TABLE: 'a b' }), { instanceOf: ConfigError, message: /^IPS_EVENT_ARCHIVE_TABLE must be a DynamoDB table name/ });
  // The archive has a key schema of its own, and apart it stays out of the ledger's scans.
  t.throws(() => loadConfig({ IPS_LEDGER_TABLE: 'shared', IPS_EVENT_ARCHIVE_TABLE: 'shared' }), {
    instanceOf: ConfigError,
    message: /^IPS_EVENT_ARCHIVE_TABLE must name another table than IPS_LEDGER_TABLE/,
  });
  t.is(loadConfig({ IPS_APP_NAME: 'ips-prod' }).eventArchiveTable, 'ips-prod-event-archive');
  t.throws(() => loadConfig({ IPS_APP_NAME: 'my app' }), { instanceOf: ConfigError, message: /^IPS_APP_NAME must be/ });
  t.throws(() => loadConfig({ IPS_LOG_LEVEL: 'loud' }), { instanceOf: ConfigError, message: /^IPS_LOG_LEVEL must be one of/ });
  // A ledger name derived from a long application name: the message says where it came from.
  t.throws(() => loadConfig({ IPS_APP_NAME: 'a'.repeat(250) }), { instanceOf: ConfigError, message: /^IPS_LEDGER_TABLE .*derived from IPS_APP_NAME/ });
  t.is(loadConfig({ IPS_STREAM_NAME: 'orders.v2_events-1' }).streamName, 'orders.v2_events-1');
});

test('an IPS_ variable no part of the product reads is warned about, with the name it most likely meant', async (t) => {
  const { configWarnings, knownSettings } = await import('../../src/config/config.js');
  t.deepEqual(configWarnings({ IPS_STREAM_NAME: 'a', IPS_KCL_MAX_RECORDS: '10', IPS_LOCAL_SHARDS: '2', PATH: '/bin' }), []);
  const [warning, ...rest] = configWarnings({ IPS_STREM_NAME: 'orders' });
  t.is(rest.length, 0);
  t.regex(warning!, /^IPS_STREM_NAME is not a setting .* did you mean IPS_STREAM_NAME\?$/);
  t.regex(configWarnings({ IPS_FROBNICATE: '1' })[0]!, /^IPS_FROBNICATE is not a setting[^?]*$/, 'no guess when nothing is near');
  t.true(knownSettings().includes('IPS_PROGRESS_REPORT_MS'), "the loader's own names are known");
});

test('every IPS_ setting the product reads is in docs/configuration.md, and every one documented is read', async (t) => {
  const { readFileSync } = await import('node:fs');
  const { knownSettings } = await import('../../src/config/config.js');
  const doc = readFileSync('docs/configuration.md', 'utf8');
  const rows = [...doc.matchAll(/^\| `(IPS_[A-Z0-9_]+)`/gm)].map((m) => m[1]!);
  const mentioned = new Set([...doc.matchAll(/`(IPS_[A-Z0-9_]+)[`=]/g)].map((m) => m[1]!));
  t.deepEqual(
    rows.filter((name) => !knownSettings().includes(name)),
    [],
    'a documented setting nothing reads',
  );
  t.deepEqual(
    knownSettings().filter((name) => !mentioned.has(name)),
    [],
    'a setting the docs do not name',
  );
});

test('every IPS_ variable the daemon properties and the local stack read is a known setting (no warning for them)', async (t) => {
  const { readFileSync, readdirSync } = await import('node:fs');
  const { knownSettings } = await import('../../src/config/config.js');
  const files = [
    ...readdirSync('properties').map((name) => `properties/${name}`),
    ...readdirSync('tools/local')
      .filter((name) => name.endsWith('.ts'))
      .map((name) => `tools/local/${name}`),
  ];
  const read = new Set(files.flatMap((file) => [...readFileSync(file, 'utf8').matchAll(/\b(IPS_[A-Z0-9_]+)\b/g)].map((m) => m[1]!)));
  t.true(read.has('IPS_KCL_SHUTDOWN_GRACE_MILLIS'), 'the scan sees the properties files');
  t.deepEqual([...read].filter((name) => !knownSettings().includes(name)).sort(), []);
});

test("target accounts: an allow-list of 12-digit ids (none: only the worker's own), a role name with its default, an optional ExternalId", (t) => {
  const defaults = loadConfig({});
  t.deepEqual(defaults.targetAccounts, []);
  t.is(defaults.targetRoleName, 'iam-policy-stream-target');
  t.is(defaults.targetExternalId, undefined);
  const set = loadConfig({ IPS_TARGET_ACCOUNTS: ' 111111111111,222222222222 ,111111111111,', IPS_TARGET_ROLE_NAME: 'ips-writer', IPS_TARGET_EXTERNAL_ID: 'org-7f3a' });
  t.deepEqual(set.targetAccounts, ['111111111111', '222222222222']);
  t.is(set.targetRoleName, 'ips-writer');
  t.is(set.targetExternalId, 'org-7f3a');
  for (const bad of ['11111111111', '111111111111;222222222222', 'prod', '1111111111111']) {
    t.throws(() => loadConfig({ IPS_TARGET_ACCOUNTS: bad }), { instanceOf: ConfigError, message: /^IPS_TARGET_ACCOUNTS must be 12-digit/ }, bad);
  }
  t.throws(() => loadConfig({ IPS_TARGET_ROLE_NAME: 'a/b' }), { instanceOf: ConfigError, message: /^IPS_TARGET_ROLE_NAME must be a role name/ });
  t.throws(() => loadConfig({ IPS_TARGET_ROLE_NAME: 'r'.repeat(65) }), { instanceOf: ConfigError, message: /^IPS_TARGET_ROLE_NAME/ });
  t.throws(() => loadConfig({ IPS_TARGET_EXTERNAL_ID: 'x' }), { instanceOf: ConfigError, message: /^IPS_TARGET_EXTERNAL_ID/ });
  t.throws(() => loadConfig({ IPS_TARGET_EXTERNAL_ID: 'has space' }), { instanceOf: ConfigError, message: /^IPS_TARGET_EXTERNAL_ID/ });
});

test("shadow mode reads target accounts through their read-only audit role, never the workers' write role", (t) => {
  // The audit role's name by default; the one the deployment names (as it does for the drift audit) otherwise.
  t.is(loadConfig({ IPS_MODE: 'shadow' }).targetRoleName, DEFAULT_TARGET_AUDIT_ROLE_NAME);
  t.is(loadConfig({ IPS_MODE: 'shadow', IPS_TARGET_ROLE_NAME: 'ops-reader' }).targetRoleName, 'ops-reader');
  t.is(loadConfig({ IPS_MODE: 'shadow', IPS_TARGET_ROLE_NAME: '' }).targetRoleName, DEFAULT_TARGET_AUDIT_ROLE_NAME);
  // The live workers' environment copied into a shadow names the write role: refused, with what to set instead.
  const copied = { IPS_TARGET_ACCOUNTS: '111111111111', IPS_TARGET_ROLE_NAME: DEFAULT_TARGET_ROLE_NAME, IPS_MODE: 'shadow' };
  t.throws(() => loadConfig(copied), {
    instanceOf: ConfigError,
    message: /^IPS_TARGET_ROLE_NAME must name the target accounts' read-only audit role in shadow mode \(default iam-policy-stream-target-audit\)/,
  });
  // A live worker keeps the write role's default.
  t.is(loadConfig({ IPS_MODE: 'live' }).targetRoleName, DEFAULT_TARGET_ROLE_NAME);
  t.is(DEFAULT_TARGET_ROLE_NAME, 'iam-policy-stream-target');
  t.is(DEFAULT_TARGET_AUDIT_ROLE_NAME, 'iam-policy-stream-target-audit');
});

test('shadow mode: its own KCL application and tables beside the live ones, the live application name for ownership', (t) => {
  const live = loadConfig({ IPS_APP_NAME: 'ips-prod' });
  const shadow = loadConfig({ IPS_APP_NAME: 'ips-prod', IPS_MODE: 'shadow' });
  t.is(live.mode, 'live');
  t.is(shadow.mode, 'shadow');
  t.is(shadow.appName, 'ips-prod', 'the managed-by tag value it judges ownership by');
  t.deepEqual(
    [shadow.leaseTable, shadow.ledgerTable, shadow.eventArchiveTable, shadow.deadLetterTable],
    ['ips-prod-shadow', 'ips-prod-shadow-ledger', 'ips-prod-shadow-event-archive', 'ips-prod-shadow-dead-letters'],
  );
  t.deepEqual([live.leaseTable, live.ledgerTable], ['ips-prod', 'ips-prod-ledger']);
  t.throws(() => loadConfig({ IPS_MODE: 'dry-run' }), { message: /IPS_MODE/ });
});
