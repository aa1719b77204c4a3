// A managed policy's tags, synced as a set, `managed-by` always kept. Two
// ways: from what IAM shows and the ledger last applied together (the read
// path), or from the ledger's word alone (a direct write).
import { TagPolicyCommand, UntagPolicyCommand } from '@aws-sdk/client-iam';
import type { Tag } from '@aws-sdk/client-iam';
import { OWNER_TAG } from '../contract/ownership.js';

/** How the reconciler sends an IAM call (within its step's guard). */
type Send = (command: TagPolicyCommand | UntagPolicyCommand) => Promise<unknown>;

/**
 * Tags as a set. IAM's read may lag our own last tag write (a tag just
 * removed still shown, one just set not yet): a tag is written when it
 * differs from what IAM shows or from what the ledger last applied
 * (`applied`), and every tag either knows of that is not wanted is removed.
 * Removing a tag the policy does not carry is harmless.
 */
export async function syncTags(send: Send, arn: string, current: Tag[], wanted: Tag[], applied: Record<string, string> | undefined): Promise<void> {
  const have = new Map(current.map((tag) => [tag.Key, tag.Value]));
  const want = new Map(wanted.map((tag) => [tag.Key, tag.Value]));
  const lags = (key: string | undefined, value: string | undefined) => applied !== undefined && key !== OWNER_TAG && applied[key ?? ''] !== value;
  const toSet = wanted.filter((tag) => have.get(tag.Key) !== tag.Value || lags(tag.Key, tag.Value));
  const known = new Set([...have.keys(), ...Object.keys(applied ?? {})]);
  const toRemove = [...known].filter((key): key is string => key !== undefined && !want.has(key) && key !== OWNER_TAG);
  if (toSet.length > 0) await send(new TagPolicyCommand({ PolicyArn: arn, Tags: toSet }));
  if (toRemove.length > 0) await send(new UntagPolicyCommand({ PolicyArn: arn, TagKeys: toRemove }));
}

/** The tags that differ from what the ledger last applied, set and removed without reading them first. */
export async function writeTagChanges(send: Send, arn: string, applied: Record<string, string>, wanted: Record<string, string>): Promise<void> {
  const toSet = Object.entries(wanted)
    .filter(([key, value]) => applied[key] !== value)
    .map(([Key, Value]) => ({ Key, Value }));
  const toRemove = Object.keys(applied).filter((key) => !(key in wanted) && key !== OWNER_TAG);
  if (toSet.length > 0) await send(new TagPolicyCommand({ PolicyArn: arn, Tags: toSet }));
  if (toRemove.length > 0) await send(new UntagPolicyCommand({ PolicyArn: arn, TagKeys: toRemove }));
}
