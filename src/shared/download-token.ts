/**
 * Download tokens: short-lived, audience-limited credentials an agent shows a distribution point instead of its
 * node key. Issued by the gateway with every poll that names distribution points; verified offline by the point
 * with the manifest-signing public key it gets from its upstream.
 *
 *   v1.<payload>.<sig>
 *   payload = base64url(JSON { sub: endpointId, site, exp: unix seconds, aud: 'distribution-point' })
 *   sig     = base64url(ed25519 over UTF-8 "patchops-download-token-v1\n" + payload)
 *
 * The signed text starts with a domain-separation prefix, so no token signature can pass as a manifest signature
 * (manifest bodies are JSON, starting with "{") and no manifest signature as a token's.
 */
import { createPrivateKey, createPublicKey, sign, verify, type KeyObject } from 'node:crypto';

export const DOWNLOAD_TOKEN_AUDIENCE = 'distribution-point';
const PREFIX = 'v1';
const DOMAIN = 'patchops-download-token-v1\n';

export interface DownloadTokenClaims {
  /** The endpoint id. */
  sub: string;
  site: string;
  /** Expiry, unix seconds. */
  exp: number;
  aud: string;
}

export type DownloadTokenRefusal = 'malformed' | 'bad_signature' | 'wrong_audience' | 'expired' | 'wrong_site';

export class DownloadTokenError extends Error {
  constructor(
    readonly reason: DownloadTokenRefusal,
    message: string,
  ) {
    super(message);
    this.name = 'DownloadTokenError';
  }
}

const signedText = (payload: string) => Buffer.from(DOMAIN + payload, 'utf8');

/** Signs a token with the manifest-signing private key (PKCS#8 PEM or a KeyObject). */
export function signDownloadToken(
  claims: { sub: string; site: string; exp: number },
  privateKey: string | KeyObject,
): string {
  const key = typeof privateKey === 'string' ? createPrivateKey(privateKey) : privateKey;
  const payload = Buffer.from(
    JSON.stringify({
      sub: claims.sub,
      site: claims.site,
      exp: claims.exp,
      aud: DOWNLOAD_TOKEN_AUDIENCE,
    } satisfies DownloadTokenClaims),
    'utf8',
  ).toString('base64url');
  const sig = sign(null, signedText(payload), key).toString('base64url');
  return `${PREFIX}.${payload}.${sig}`;
}

/**
 * Verifies a token offline: shape, signature (with the manifest-signing public key, SPKI PEM or a KeyObject),
 * audience, expiry (with `skewSeconds` of slack, default 60) and, when `site` is given, the site.
 * Throws DownloadTokenError with the reason; returns the claims.
 */
export function verifyDownloadToken(
  token: string,
  publicKey: string | KeyObject,
  opts: { now: Date; site?: string; skewSeconds?: number },
): DownloadTokenClaims {
  const parts = token.split('.');
  if (parts.length !== 3 || parts[0] !== PREFIX || !parts[1] || !parts[2])
    throw new DownloadTokenError('malformed', 'not a download token (expected v1.<payload>.<signature>)');
  const [, payload, sig] = parts as [string, string, string];
  let ok = false;
  try {
    const key = typeof publicKey === 'string' ? createPublicKey(publicKey) : publicKey;
    ok = verify(null, signedText(payload), key, Buffer.from(sig, 'base64url'));
  } catch {
    ok = false;
  }
  if (!ok)
    throw new DownloadTokenError('bad_signature', "the download token signature does not verify with the server's key");
  let claims: DownloadTokenClaims;
  try {
    const parsed = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as Record<string, unknown>;
    if (
      typeof parsed.sub !== 'string' ||
      typeof parsed.site !== 'string' ||
      typeof parsed.exp !== 'number' ||
      typeof parsed.aud !== 'string'
    )
      throw new Error('missing claims');
    claims = { sub: parsed.sub, site: parsed.site, exp: parsed.exp, aud: parsed.aud };
  } catch (e) {
    throw new DownloadTokenError('malformed', `the download token payload is malformed: ${(e as Error).message}`);
  }
  if (claims.aud !== DOWNLOAD_TOKEN_AUDIENCE)
    throw new DownloadTokenError(
      'wrong_audience',
      `the download token is for "${claims.aud}", not "${DOWNLOAD_TOKEN_AUDIENCE}"`,
    );
  const nowSeconds = opts.now.getTime() / 1000;
  if (claims.exp + (opts.skewSeconds ?? 60) <= nowSeconds)
    throw new DownloadTokenError(
      'expired',
      `the download token expired at ${new Date(claims.exp * 1000).toISOString()}: poll the server for a new one`,
    );
  if (opts.site !== undefined && claims.site !== opts.site)
    throw new DownloadTokenError('wrong_site', `the download token is for site ${claims.site}, not ${opts.site}`);
  return claims;
}
