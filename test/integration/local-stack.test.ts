// Two stacks one after the other in one run: free ports, no state carried over.
import test from 'ava';
import { ListTablesCommand } from '@aws-sdk/client-dynamodb';
import { GetCallerIdentityCommand } from '@aws-sdk/client-sts';
import { CreatePolicyCommand, ListPoliciesCommand } from '@aws-sdk/client-iam';
import { isAlive } from '../../src/daemon/processes.js';
import { LOCAL_ACCOUNT_ID } from '../../tools/local/stack.js';
import { startTestStack } from '../../tools/harness/stack.js';

test('two stacks in a row work, share nothing, and leave no process behind', async (t) => {
  const seenPorts = new Set<number>();
  for (const round of [1, 2]) {
    const { stack, config, clients } = await startTestStack();
    try {
      const aws = clients();
      const identity = await aws.sts.send(new GetCallerIdentityCommand({}));
      t.is(identity.Account, LOCAL_ACCOUNT_ID);
      const tables = await aws.dynamodb.send(new ListTablesCommand({}));
      t.deepEqual(tables.TableNames?.sort(), [config.deadLetterTable, config.eventArchiveTable, config.ledgerTable].sort());
      const before = await aws.iam.send(new ListPoliciesCommand({ Scope: 'Local' }));
      t.is(before.Policies?.length ?? 0, 0, `round ${round}: a new stack starts empty`);
      await aws.iam.send(new CreatePolicyCommand({ PolicyName: 'left-behind', PolicyDocument: '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}]}' }));
      for (const emulator of stack.emulators) seenPorts.add(emulator.port);
    } finally {
      await stack.stop();
    }
    for (const emulator of stack.emulators) t.false(isAlive(emulator.pid), `${emulator.name} stopped`);
  }
  t.is(seenPorts.size, 6, 'each stack got its own ports');
});
