import { generateKeyPairSync, sign } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { DownloadTokenError, signDownloadToken, verifyDownloadToken } from './download-token';

const keys = () =>
  generateKeyPairSync('ed25519', {
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  });
const server = keys();
const other = keys();
const now = new Date('2026-11-27T10:00:00Z');
const nowS = now.getTime() / 1000;
const token = (over: { sub?: string; site?: string; exp?: number } = {}, key = server.privateKey) =>
  signDownloadToken({ sub: 'ep-1', site: 'branch-1', exp: nowS + 900, ...over }, key);

/** A token with a payload of our choosing, signed properly (to reach the checks after the signature). */
const withPayload = (payload: unknown) => {
  const p = Buffer.from(JSON.stringify(payload)).toString('base64url');
  return `v1.${p}.${sign(null, Buffer.from(`patchops-download-token-v1\n${p}`), server.privateKey).toString('base64url')}`;
};

const reason = (f: () => unknown) => {
  try {
    f();
  } catch (e) {
    if (e instanceof DownloadTokenError) return e.reason;
    throw e;
  }
  return 'accepted';
};

describe('download tokens', () => {
  it('round-trips the claims', () => {
    const t = token();
    expect(t).toMatch(/^v1\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/);
    expect(verifyDownloadToken(t, server.publicKey, { now, site: 'branch-1' })).toEqual({
      sub: 'ep-1',
      site: 'branch-1',
      exp: nowS + 900,
      aud: 'distribution-point',
    });
  });

  it.each<[string, () => string, string | undefined, string]>([
    ['a good token', () => token(), 'branch-1', 'accepted'],
    ['any site when none is asked for', () => token({ site: 'elsewhere' }), undefined, 'accepted'],
    ['expired, within the 60 s skew', () => token({ exp: nowS - 59 }), 'branch-1', 'accepted'],
    ['expired past the skew', () => token({ exp: nowS - 61 }), 'branch-1', 'expired'],
    ['another site', () => token({ site: 'branch-2' }), 'branch-1', 'wrong_site'],
    ['signed by another key', () => token({}, other.privateKey), 'branch-1', 'bad_signature'],
    [
      'a tampered payload',
      () => {
        const [v, , s] = token().split('.');
        const forged = Buffer.from(
          JSON.stringify({ sub: 'ep-1', site: 'branch-2', exp: nowS + 900, aud: 'distribution-point' }),
        ).toString('base64url');
        return `${v}.${forged}.${s}`;
      },
      'branch-2',
      'bad_signature',
    ],
    [
      'a manifest-style signature (no domain prefix)',
      () => {
        const p = token().split('.')[1]!;
        return `v1.${p}.${sign(null, Buffer.from(p), server.privateKey).toString('base64url')}`;
      },
      'branch-1',
      'bad_signature',
    ],
    [
      'another audience',
      () => withPayload({ sub: 'ep-1', site: 'branch-1', exp: nowS + 900, aud: 'central' }),
      'branch-1',
      'wrong_audience',
    ],
    ['claims missing', () => withPayload({ sub: 'ep-1', aud: 'distribution-point' }), 'branch-1', 'malformed'],
    ['a node key', () => 'Zm9vYmFyYmF6cXV4Zm9vYmFyYmF6cXV4Zm9vYmFyYmF6', 'branch-1', 'malformed'],
    ['another version', () => token().replace(/^v1\./, 'v2.'), 'branch-1', 'malformed'],
    ['a garbage signature', () => `${token().split('.').slice(0, 2).join('.')}.AAAA`, 'branch-1', 'bad_signature'],
  ])('%s → %s', (_name, make, site, expected) => {
    expect(reason(() => verifyDownloadToken(make(), server.publicKey, { now, site }))).toBe(expected);
  });
});
