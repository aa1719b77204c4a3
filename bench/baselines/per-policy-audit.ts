// The drift audit's IAM reads as they were before it read IAM through
// GetAccountAuthorizationDetails: ListPolicies for the names, then for every
// ledger entry of a present policy GetPolicy (path, tags, default version),
// GetPolicyVersion (its document) and ListPolicyVersions (the version
// count). It judges what those reads show (document, tags, ownership tag,
// version count) so that its reads are the audit's, not a loop of calls;
// the bench runs it beside `ips drift`'s audit on the same ledger and IAM.
import { GetPolicyCommand, GetPolicyVersionCommand, ListPolicyVersionsCommand } from '@aws-sdk/client-iam';
import type { IAMClient } from '@aws-sdk/client-iam';
import { ownedBy } from '../../src/contract/ownership.js';
import { decodePolicyVersionDocument, documentsEqual } from '../../src/iam/document.js';
import { listPolicies } from '../../src/iam/policies.js';
import type { DynamoDbLedger } from '../../src/ledger/dynamodb-ledger.js';
import { tagDifferences } from '../../src/ops/drift-audit.js';

/** Policies looked at concurrently, as the audit did. */
const CONCURRENCY = 4;

export interface PerPolicyAuditResult {
  ledgerEntries: number;
  drifted: number;
}

export async function perPolicyAudit(iam: IAMClient, ledger: DynamoDbLedger, appName: string): Promise<PerPolicyAuditResult> {
  const byName = new Map((await listPolicies(iam)).map((policy) => [policy.PolicyName ?? '', policy]));
  let ledgerEntries = 0;
  let drifted = 0;
  const running = new Set<Promise<void>>();
  for await (const entry of ledger.entries()) {
    ledgerEntries++;
    const listed = byName.get(entry.policy);
    if (!listed?.Arn || entry.state !== 'present' || !entry.desired) continue;
    const task = (async () => {
      const policy = (await iam.send(new GetPolicyCommand({ PolicyArn: listed.Arn }))).Policy!;
      const version = await iam.send(new GetPolicyVersionCommand({ PolicyArn: listed.Arn, VersionId: policy.DefaultVersionId }));
      const versions = (await iam.send(new ListPolicyVersionsCommand({ PolicyArn: listed.Arn }))).Versions ?? [];
      const tags = new Map((policy.Tags ?? []).map((tag) => [tag.Key ?? '', tag.Value ?? '']));
      const documentDrift = entry.desired!.document !== undefined && !documentsEqual(decodePolicyVersionDocument(version.PolicyVersion?.Document ?? '{}'), entry.desired!.document);
      if (documentDrift || !ownedBy(policy.Tags, appName) || tagDifferences(entry.desired!.tags ?? {}, tags).length > 0 || versions.length > 5) drifted++;
    })().finally(() => running.delete(task));
    running.add(task);
    if (running.size >= CONCURRENCY) await Promise.race(running);
  }
  await Promise.all(running);
  return { ledgerEntries, drifted };
}
