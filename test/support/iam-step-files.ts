// The modules of the IAM step (src/iam/): every IAM command the worker sends is
// imported in one of them, so the grant tests read the calls from here.
export const IAM_STEP_FILES = ['src/iam/reconciler.ts', 'src/iam/policy-access.ts', 'src/iam/delete-step.ts', 'src/iam/policies.ts', 'src/iam/tags.ts'];
