// The host limiter's wire protocol over its Unix socket. A follower sends the
// secret (private-dir.ts) and a newline; the holder answers `o` (welcome).
// Then one byte a message: a follower sends `a` (a token, please), `t` (IAM
// throttled a call), `s` (IAM answered); the holder sends `g` per token
// granted, in the order asked, `h` when an ask waits its turn at the learned
// rate (the account is rate-bound), and `k` (keep-alive) while tokens are
// owed. A follower ignores a byte it does not know.
export const BYTE = { ask: 0x61, throttled: 0x74, answered: 0x73, grant: 0x67, held: 0x68, keepAlive: 0x6b, welcome: 0x6f, newline: 0x0a } as const;
