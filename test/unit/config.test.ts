import test from 'ava';
import { ConfigError, loadConfig } from '../../src/config/config.js';

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
