import test from 'ava';
import { ConfigError, loadConfig } from '../../src/config/config.js';

test('defaults are documented values', (t) => {
  const config = loadConfig({});
  t.is(config.managedPathPrefix, '/stream-managed/');
  t.is(config.appName, 'iam-policy-stream');
  t.is(config.ledgerTable, 'iam-policy-stream-ledger');
  t.is(config.leaseTable, 'iam-policy-stream');
  t.true(config.refuseAdminGrant);
});

test('bad values fail with the variable named', (t) => {
  t.throws(() => loadConfig({ IPS_MAX_CONCURRENT_POLICIES: '0' }), { instanceOf: ConfigError, message: /IPS_MAX_CONCURRENT_POLICIES/ });
  t.throws(() => loadConfig({ IPS_MANAGED_PATH_PREFIX: 'stream' }), { instanceOf: ConfigError, message: /IPS_MANAGED_PATH_PREFIX/ });
  t.throws(() => loadConfig({ IPS_REFUSE_ADMIN_GRANT: 'maybe' }), { instanceOf: ConfigError });
});
