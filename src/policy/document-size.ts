// A policy document's size as IAM counts it against its quota of 6,144
// characters. IAM does not count white space; the processor sends the
// document as JSON.stringify writes it, which has none outside strings and
// escapes tab, CR and LF inside them. What is left to strip is the ASCII
// space inside string values, the one character every reading of "white
// space" shares (JSON's, Java's, Unicode's). Anything else is counted: a
// no-break space (U+00A0) or an em space (U+2003) inside a string is part of
// the value, and refusing a document IAM would take by a few characters is
// better than one IAM refuses after the claim (docs/event-contract.md).
// Characters are UTF-16 code units, as IAM's own string length counts them.

/** IAM's limit for a managed policy document, white space not counted. */
export const MAX_DOCUMENT_CHARS = 6_144;

/** The document as the processor sends it to IAM. */
export function documentText(document: unknown): string {
  return JSON.stringify(document);
}

export function documentSize(document: unknown): number {
  const text = documentText(document);
  let spaces = 0;
  for (let i = text.indexOf(' '); i >= 0; i = text.indexOf(' ', i + 1)) spaces++;
  return text.length - spaces;
}
