// The escalation set of the `admin-equivalent` guardrail: actions that make
// whoever holds them, on all the resources they act on, an administrator of
// the account, or able to become one. docs/guardrails.md carries this table
// with the published privilege-escalation paths it closes.
//
// The set is IAM's own, plus `*`. Escalation paths through other services
// (lambda:UpdateFunctionCode on a function that runs as a privileged role,
// sts:AssumeRole of a role that trusts the account, ssm:SendCommand on an
// instance with a privileged profile) need a privileged role to exist
// already, and PowerUser-like grants, which the processor must accept, hold
// them all; an operator who wants them refused too lists them in
// IPS_DENIED_ACTIONS.

export interface EscalationEntry {
  /** An action name, or a pattern over IAM's actions. */
  action: string;
  why: string;
}

export const ESCALATION_ACTIONS: readonly EscalationEntry[] = [
  { action: '*', why: 'every action of every service' },
  // Permissions: what a principal may do.
  { action: 'iam:AttachUserPolicy', why: 'attaches any managed policy (AdministratorAccess) to a user' },
  { action: 'iam:AttachGroupPolicy', why: 'attaches any managed policy to a group' },
  { action: 'iam:AttachRolePolicy', why: 'attaches any managed policy to a role' },
  { action: 'iam:PutUserPolicy', why: 'writes an inline policy granting anything to a user' },
  { action: 'iam:PutGroupPolicy', why: 'writes an inline policy granting anything to a group' },
  { action: 'iam:PutRolePolicy', why: 'writes an inline policy granting anything to a role' },
  { action: 'iam:CreatePolicyVersion', why: 'rewrites a managed policy that principals already hold' },
  { action: 'iam:SetDefaultPolicyVersion', why: 'makes an older, broader version of a managed policy the one in force' },
  { action: 'iam:DetachUserPolicy', why: 'removes a managed policy that denies, from a user' },
  { action: 'iam:DetachGroupPolicy', why: 'removes a managed policy that denies, from a group' },
  { action: 'iam:DetachRolePolicy', why: 'removes a managed policy that denies, from a role' },
  { action: 'iam:DeleteUserPolicy', why: 'removes an inline policy that denies, from a user' },
  { action: 'iam:DeleteGroupPolicy', why: 'removes an inline policy that denies, from a group' },
  { action: 'iam:DeleteRolePolicy', why: 'removes an inline policy that denies, from a role' },
  { action: 'iam:PutUserPermissionsBoundary', why: 'replaces the boundary that caps a user' },
  { action: 'iam:PutRolePermissionsBoundary', why: 'replaces the boundary that caps a role' },
  { action: 'iam:DeleteUserPermissionsBoundary', why: 'lifts the boundary that caps a user' },
  { action: 'iam:DeleteRolePermissionsBoundary', why: 'lifts the boundary that caps a role' },
  { action: 'iam:AddUserToGroup', why: 'joins a user to a group with broader policies' },
  // Trust: who may become a principal.
  { action: 'iam:UpdateAssumeRolePolicy', why: "rewrites a role's trust policy so that anyone named may assume it" },
  { action: 'iam:CreateOpenIDConnectProvider', why: 'adds an identity provider that role trust policies may already name' },
  { action: 'iam:UpdateOpenIDConnectProviderThumbprint', why: "points a trusted identity provider at another issuer's certificate" },
  { action: 'iam:AddClientIDToOpenIDConnectProvider', why: 'lets another audience use a trusted identity provider' },
  { action: 'iam:CreateSAMLProvider', why: 'adds a SAML identity provider that role trust policies may already name' },
  { action: 'iam:UpdateSAMLProvider', why: "replaces a trusted SAML provider's metadata with another identity provider's" },
  { action: 'iam:PassRole', why: 'hands any role, an administrator role included, to a service that then acts as it (EC2, Lambda, Glue, CloudFormation, ...)' },
  { action: 'iam:AddRoleToInstanceProfile', why: 'puts any role in an instance profile that instances run as' },
  // Credentials: signing in as another principal.
  { action: 'iam:CreateAccessKey', why: 'creates access keys for another user, administrators included' },
  { action: 'iam:UpdateAccessKey', why: "reactivates another user's disabled access key" },
  { action: 'iam:CreateLoginProfile', why: 'sets a console password for a user that had none' },
  { action: 'iam:UpdateLoginProfile', why: "changes another user's console password" },
  { action: 'iam:CreateServiceSpecificCredential', why: 'creates service credentials (CodeCommit, Keyspaces) for another user' },
  { action: 'iam:ResetServiceSpecificCredential', why: "resets another user's service credential and reveals the new one" },
  { action: 'iam:UpdateServiceSpecificCredential', why: "reactivates another user's service credential" },
  { action: 'iam:UploadSSHPublicKey', why: 'adds an SSH key to another user (CodeCommit access as that user)' },
  { action: 'iam:UpdateSSHPublicKey', why: "reactivates another user's SSH key" },
  { action: 'iam:UploadSigningCertificate', why: 'adds a signing certificate to another user' },
  { action: 'iam:UpdateSigningCertificate', why: "reactivates another user's signing certificate" },
  { action: 'iam:EnableMFADevice', why: "binds an MFA device of one's own to another user" },
  { action: 'iam:DeactivateMFADevice', why: "removes another user's MFA device" },
  { action: 'iam:ResyncMFADevice', why: "resynchronises another user's MFA device" },
  // Attributes that attribute-based policies read.
  { action: 'iam:TagUser', why: 'sets the principal tags that attribute-based policies grant on' },
  { action: 'iam:TagRole', why: 'sets the principal tags that attribute-based policies grant on' },
  { action: 'iam:UntagUser', why: 'removes principal tags that attribute-based policies deny on' },
  { action: 'iam:UntagRole', why: 'removes principal tags that attribute-based policies deny on' },
];

/**
 * IAM actions of the access level "Permissions management" that are not in
 * the set, and why: a test checks that every such action of the catalogue is
 * either in the set or here, so a new one is a decision, not an oversight.
 */
export const PERMISSIONS_ACTIONS_NOT_ESCALATING: readonly EscalationEntry[] = [
  { action: 'iam:CreatePolicy', why: 'a new managed policy grants nothing until it is attached, which is in the set' },
  { action: 'iam:DeletePolicy', why: 'IAM refuses to delete an attached policy; detaching is in the set' },
  { action: 'iam:DeletePolicyVersion', why: 'only a version that is not in force can be deleted' },
  { action: 'iam:DeleteAccountPasswordPolicy', why: 'weakens password rules; grants no permission' },
];
