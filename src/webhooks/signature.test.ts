import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { signatureHeader, verifySignature } from './signature';

const SECRET = 'whsec_test';
const BODY = '{"id":"evt_1","type":"cycle.completed"}';
const AT = new Date('2026-12-05T06:00:00Z');

describe('webhook signature', () => {
  it('is t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>, computed here from the documented scheme', () => {
    const t = Math.floor(AT.getTime() / 1000);
    const expected = createHmac('sha256', SECRET).update(`${t}.${BODY}`).digest('hex');
    expect(signatureHeader(SECRET, BODY, AT)).toBe(`t=${t},v1=${expected}`);
  });

  it.each([
    ['the signed body', BODY, SECRET, 0, true],
    ['a tampered body', BODY.replace('completed', 'failed'), SECRET, 0, false],
    ['another secret', BODY, 'whsec_other', 0, false],
    ['a signature older than the tolerance', BODY, SECRET, 301, false],
    ['a signature within the tolerance', BODY, SECRET, 299, true],
  ])('verifies %s: %s', (_what, body, secret, secondsLater, ok) => {
    const header = signatureHeader(SECRET, BODY, AT);
    expect(verifySignature(secret, header, body, { now: new Date(AT.getTime() + secondsLater * 1000) })).toBe(ok);
  });

  it('refuses a missing or malformed header, and a timestamp changed after signing', () => {
    const header = signatureHeader(SECRET, BODY, AT);
    expect(verifySignature(SECRET, undefined, BODY, { now: AT })).toBe(false);
    expect(verifySignature(SECRET, 'v1=abc', BODY, { now: AT })).toBe(false);
    const t = Math.floor(AT.getTime() / 1000);
    expect(verifySignature(SECRET, header.replace(`t=${t}`, `t=${t + 1}`), BODY, { now: AT })).toBe(false);
  });
});
