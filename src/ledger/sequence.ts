// Kinesis sequence numbers are decimal strings of up to 128 bits (39 digits):
// too large for JavaScript numbers and for DynamoDB numbers (38 digits). The
// ledger stores them zero-padded to a fixed width, so that string order is
// numeric order, both here and in DynamoDB condition expressions.
const WIDTH = 40;
const DIGITS = /^\d{1,40}$/;

export function toLedgerSequence(sequenceNumber: string): string {
  if (!DIGITS.test(sequenceNumber)) throw new Error(`not a Kinesis sequence number: ${JSON.stringify(sequenceNumber)}`);
  return sequenceNumber.padStart(WIDTH, '0');
}

export function fromLedgerSequence(stored: string): string {
  const trimmed = stored.replace(/^0+(?=\d)/, '');
  return trimmed;
}

/** Compares two raw sequence numbers numerically. */
export function compareSequence(a: string, b: string): number {
  const pa = toLedgerSequence(a);
  const pb = toLedgerSequence(b);
  return pa < pb ? -1 : pa > pb ? 1 : 0;
}
