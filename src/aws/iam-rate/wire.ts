// The host limiter's wire protocol over its Unix socket. A follower sends the
// secret (private-dir.ts) and a newline; the holder answers `o` (welcome).
// Then one byte a message: a follower sends `a` (a token, please), `t` (IAM
// throttled a call), `s` (IAM answered); the holder sends `g` per token
// granted, in the order asked, `h` when an ask waits its turn at the learned
// rate (the account is rate-bound), and `k` (keep-alive) while tokens are
// owed. The holder also tells each follower the rate its gate allows, on
// welcoming it and on every beat: `r`, the calls per second in hundredths as
// decimal digits, and `;` (`r;`: no limit learned yet). A follower ignores a
// byte it does not know (a follower of an earlier version skips a rate
// whole: none of its bytes is one of the messages it knows).
export const BYTE = { ask: 0x61, throttled: 0x74, answered: 0x73, grant: 0x67, held: 0x68, keepAlive: 0x6b, welcome: 0x6f, newline: 0x0a, rate: 0x72, rateEnd: 0x3b } as const;

/** The holder's word of the rate its gate allows (calls per second; undefined: no limit learned). */
export function rateMessage(perSecond: number | undefined): string {
  return `r${perSecond === undefined ? '' : Math.round(perSecond * 100)};`;
}

/**
 * Reads the holder's rate messages out of the bytes a follower hears, across
 * chunks: `heard` is told each rate whole (Infinity: no limit learned).
 */
export class RateReader {
  private digits: string | undefined; // while inside a rate message

  constructor(private readonly heard: (perSecond: number) => void) {}

  /** Whether `byte` belongs to a rate message (the follower reads it no further). */
  read(byte: number): boolean {
    if (this.digits === undefined) {
      if (byte !== BYTE.rate) return false;
      this.digits = '';
      return true;
    }
    if (byte >= 0x30 && byte <= 0x39 && this.digits.length < 12) {
      this.digits += String.fromCharCode(byte);
      return true;
    }
    const digits = this.digits;
    this.digits = undefined;
    if (byte !== BYTE.rateEnd) return false; // not a rate after all: the byte is read as itself
    this.heard(digits === '' ? Infinity : Number(digits) / 100);
    return true;
  }
}
