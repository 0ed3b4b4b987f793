/**
 * Content verification (The Update Framework's threats, reduced): every file an install job carries is
 * checked against a manifest signed with ed25519 by the key pinned at enrolment. A bad signature, an
 * expired manifest (freeze attack), a manifest older than the last one seen (rollback attack), a file the
 * manifest does not list or whose bytes do not hash to the listed sha256 → refused, nothing installed.
 */
import { createHash, createPublicKey, verify } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { manifestBodySchema, type ManifestBody, type SignedManifest } from '../shared/agent-protocol';

export class VerificationError extends Error {
  constructor(
    readonly reason: 'bad_signature' | 'expired' | 'older_manifest' | 'malformed' | 'not_in_manifest' | 'bad_hash' | 'download_failed',
    message: string,
  ) {
    super(message);
    this.name = 'VerificationError';
  }
}

/** Verifies a signed manifest against the pinned key; returns its body. */
export function verifyManifest(signed: SignedManifest, pinnedPublicKeyPem: string, opts: { now: Date; lastSeenVersion: number }): ManifestBody {
  let ok = false;
  try {
    ok = verify(null, Buffer.from(signed.body, 'utf8'), createPublicKey(pinnedPublicKeyPem), Buffer.from(signed.signature, 'base64'));
  } catch {
    ok = false;
  }
  if (!ok) throw new VerificationError('bad_signature', 'the repository manifest signature does not verify with the key pinned at enrolment');
  let body: ManifestBody;
  try {
    body = manifestBodySchema.parse(JSON.parse(signed.body));
  } catch (e) {
    throw new VerificationError('malformed', `the repository manifest is malformed: ${(e as Error).message}`);
  }
  const expires = Date.parse(body.expiresAt);
  if (!Number.isFinite(expires) || expires <= opts.now.getTime()) {
    throw new VerificationError('expired', `the repository manifest (version ${body.version}) expired at ${body.expiresAt}`);
  }
  if (body.version < opts.lastSeenVersion) {
    throw new VerificationError('older_manifest', `the repository manifest is version ${body.version}, older than version ${opts.lastSeenVersion} seen before`);
  }
  return body;
}

export const sha256OfBuffer = (b: Buffer | Uint8Array): string => createHash('sha256').update(b).digest('hex');

export interface DownloadOptions {
  /** Base URLs to try in order: the site's distribution points, then the central server. */
  sources: string[];
  destDir: string;
  /**
   * The Authorization header for a source, or undefined to send none: the node key for the central server only,
   * the download token from the last poll for distribution points (which must never see the node key).
   */
  authFor?: (source: string) => string | undefined;
  fetchImpl?: typeof fetch;
  timeoutMs?: number;
}

/**
 * Downloads one file listed in the manifest from the first source that serves bytes with the right hash.
 * A source that is down or serves wrong bytes is skipped; when none serves the right bytes, refuses.
 */
export async function downloadVerified(file: { name: string; sha256: string }, manifest: ManifestBody, o: DownloadOptions): Promise<string> {
  const listed = manifest.files.find((f) => f.sha256 === file.sha256);
  if (!listed) throw new VerificationError('not_in_manifest', `${file.name} (sha256 ${file.sha256.slice(0, 12)}…) is not in the signed manifest version ${manifest.version}`);
  const f = o.fetchImpl ?? fetch;
  const problems: string[] = [];
  for (const base of o.sources) {
    const url = `${base.replace(/\/+$/, '')}/agent/v1/files/${file.sha256}`;
    try {
      const authorization = o.authFor?.(base);
      const headers: Record<string, string> = authorization ? { authorization } : {};
      const res = await f(url, { headers, signal: AbortSignal.timeout(o.timeoutMs ?? 10 * 60_000) });
      if (!res.ok) {
        problems.push(`${base}: HTTP ${res.status}`);
        continue;
      }
      const bytes = Buffer.from(await res.arrayBuffer());
      const got = sha256OfBuffer(bytes);
      if (got !== listed.sha256) {
        problems.push(`${base}: sha256 ${got.slice(0, 12)}… does not match the manifest's ${listed.sha256.slice(0, 12)}…`);
        continue;
      }
      await fs.mkdir(o.destDir, { recursive: true });
      const dest = path.join(o.destDir, `${listed.sha256}-${path.basename(listed.name)}`);
      await fs.writeFile(dest, bytes, { mode: 0o600 });
      return dest;
    } catch (e) {
      problems.push(`${base}: ${(e as Error).message}`);
    }
  }
  const anyBadHash = problems.some((p) => p.includes('does not match'));
  throw new VerificationError(anyBadHash ? 'bad_hash' : 'download_failed', `could not get a verified copy of ${file.name}: ${problems.join('; ')}`);
}
