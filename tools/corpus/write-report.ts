// Rewrites the list of AWS managed policies the default guardrail refuses in
// docs/event-contract.md (a unit test checks the list is current):
//   npx tsx tools/corpus/write-report.ts
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { projectRoot } from '../../src/config/paths.js';
import { DocumentGuard } from '../../src/policy/document-guard.js';
import { REPORT_BEGIN, REPORT_END, fittingManagedPolicies, judge, refusedReport } from './aws-managed-policies.js';

const file = join(projectRoot(), 'docs', 'event-contract.md');
const text = readFileSync(file, 'utf8');
const start = text.indexOf(REPORT_BEGIN);
const end = text.indexOf(REPORT_END);
if (start < 0 || end < 0) throw new Error(`${file} has no ${REPORT_BEGIN} ... ${REPORT_END} section`);
writeFileSync(file, text.slice(0, start) + refusedReport(judge(fittingManagedPolicies(), new DocumentGuard())) + text.slice(end + REPORT_END.length));
