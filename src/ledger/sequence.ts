// Kinesis sequence numbers are decimal strings: 56 digits in practice, and
// the API allows up to 129 (pattern 0|([1-9]\d{0,128})). Far too large for
// JavaScript numbers and for DynamoDB numbers (38 digits). The ledger stores
// them zero-padded to a fixed width, so that string order is numeric order,
// both here and in DynamoDB condition expressions.
const WIDTH = 129;
const DIGITS = /^\d{1,129}$/;

export function toLedgerSequence(sequenceNumber: string): string {
  if (!DIGITS.test(sequenceNumber)) throw new Error(`not a Kinesis sequence number: ${JSON.stringify(sequenceNumber)}`);
  return sequenceNumber.padStart(WIDTH, '0');
}

export function fromLedgerSequence(stored: string): string {
  const trimmed = stored.replace(/^0+(?=\d)/, '');
  return trimmed;
}

/**
 * Compares two raw sequence numbers numerically. Kinesis writes them without
 * leading zeros, so a longer one is larger and equal lengths compare as
 * strings: no padding, no allocation (this runs for every cached record).
 */
export function compareSequence(a: string, b: string): number {
  if (hasLeadingZero(a) || hasLeadingZero(b)) {
    const pa = toLedgerSequence(a);
    const pb = toLedgerSequence(b);
    return pa < pb ? -1 : pa > pb ? 1 : 0;
  }
  if (a.length !== b.length) return a.length < b.length ? -1 : 1;
  return a < b ? -1 : a > b ? 1 : 0;
}

function hasLeadingZero(sequenceNumber: string): boolean {
  return sequenceNumber.length > 1 && sequenceNumber.charCodeAt(0) === 48;
}
