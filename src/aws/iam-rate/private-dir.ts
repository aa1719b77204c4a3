// The folder the host limiter's socket lives in. A socket in the shared
// temporary folder could be reached, or bound first, by any local process,
// which could then starve every IAM call of the host. So the socket lies in a
// folder of the user's own, mode 0700, and a follower proves itself to the
// holder with a secret kept there, readable by the user alone: Node's `net`
// does not expose a Unix socket peer's credentials, and reading the secret
// needs exactly what connecting needs, the user's own rights.
//
// A folder already at that path is used only if it is a real folder (not a
// link, which could lead anywhere), owned by this user and closed to others;
// otherwise nothing is made or bound there (PrivateDirRefused).
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { linkSync, lstatSync, mkdirSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export class PrivateDirRefused extends Error {
  override name = 'PrivateDirRefused';
}

/** The user's folder under `parent` (the temporary folder): one per user, so users never share a gate. */
export function privateDirPath(parent: string): string {
  return join(parent, `ips-iam-limiter-${process.getuid?.() ?? 'user'}`);
}

const SECRET_BYTES = 32;

/** The secret as a follower sends it: hex, then a newline. */
export const SECRET_LINE_LENGTH = SECRET_BYTES * 2 + 1;

/**
 * Makes (or checks) the private folder and its secret; returns the secret.
 * Throws PrivateDirRefused when what is there is not the user's and private.
 */
export function openPrivateDir(dir: string): Buffer {
  try {
    mkdirSync(dir, { mode: 0o700 });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw new PrivateDirRefused(`cannot make ${dir}: ${(error as Error).message}`);
  }
  checkPrivate(dir, 'directory');
  const path = join(dir, 'secret');
  try {
    return readSecret(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  // Written under a name of its own, then linked into place: link fails if another
  // process was first, so every process of the host ends up reading the same secret.
  const draft = join(dir, `secret.${process.pid}.${randomBytes(4).toString('hex')}`);
  writeFileSync(draft, randomBytes(SECRET_BYTES).toString('hex'), { mode: 0o600, flag: 'wx' });
  try {
    linkSync(draft, path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
  } finally {
    unlinkSync(draft);
  }
  return readSecret(path);
}

function readSecret(path: string): Buffer {
  checkPrivate(path, 'file');
  const secret = Buffer.from(readFileSync(path, 'utf8').trim(), 'utf8');
  if (secret.length !== SECRET_BYTES * 2) throw new PrivateDirRefused(`${path} does not hold a secret`);
  return secret;
}

/** lstat, never stat: a link planted at the path is refused, not followed. */
function checkPrivate(path: string, kind: 'directory' | 'file'): void {
  const stat = lstatSync(path);
  const uid = process.getuid?.();
  if (kind === 'directory' ? !stat.isDirectory() : !stat.isFile()) throw new PrivateDirRefused(`${path} is not a ${kind} (a link or something else was there)`);
  if (uid !== undefined && stat.uid !== uid) throw new PrivateDirRefused(`${path} belongs to uid ${stat.uid}, not to this user (${uid})`);
  if ((stat.mode & 0o077) !== 0) throw new PrivateDirRefused(`${path} is open to other users (mode ${(stat.mode & 0o777).toString(8)})`);
}

/** Whether a follower's line is the secret (compared in constant time). */
export function isSecret(line: Buffer, secret: Buffer): boolean {
  return line.length === secret.length && timingSafeEqual(line, secret);
}
