/**
 * Content verification (The Update Framework's threats, reduced): every file an install job carries is
 * checked against a manifest signed with ed25519 by the key pinned at enrolment. A bad signature, an
 * expired manifest (freeze attack), a manifest older than the last one seen (rollback attack), a file the
 * manifest does not list, whose bytes do not hash to the listed sha256 or outgrow its listed size → refused,
 * nothing installed.
 */
import { createHash, createPublicKey, randomBytes, verify } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { manifestBodySchema, type ManifestBody, type SignedManifest } from '../shared/agent-protocol';

export class VerificationError extends Error {
  constructor(
    readonly reason:
      | 'bad_signature'
      | 'expired'
      | 'older_manifest'
      | 'malformed'
      | 'not_in_manifest'
      | 'bad_hash'
      | 'bad_size'
      | 'download_failed',
    message: string,
  ) {
    super(message);
    this.name = 'VerificationError';
  }
}

/** Verifies a signed manifest against the pinned key; returns its body. */
export function verifyManifest(
  signed: SignedManifest,
  pinnedPublicKeyPem: string,
  opts: { now: Date; lastSeenVersion: number },
): ManifestBody {
  let ok = false;
  try {
    ok = verify(
      null,
      Buffer.from(signed.body, 'utf8'),
      createPublicKey(pinnedPublicKeyPem),
      Buffer.from(signed.signature, 'base64'),
    );
  } catch {
    ok = false;
  }
  if (!ok)
    throw new VerificationError(
      'bad_signature',
      'the repository manifest signature does not verify with the key pinned at enrolment',
    );
  let body: ManifestBody;
  try {
    body = manifestBodySchema.parse(JSON.parse(signed.body));
  } catch (e) {
    throw new VerificationError('malformed', `the repository manifest is malformed: ${(e as Error).message}`);
  }
  const expires = Date.parse(body.expiresAt);
  if (!Number.isFinite(expires) || expires <= opts.now.getTime()) {
    throw new VerificationError(
      'expired',
      `the repository manifest (version ${body.version}) expired at ${body.expiresAt}`,
    );
  }
  if (body.version < opts.lastSeenVersion) {
    throw new VerificationError(
      'older_manifest',
      `the repository manifest is version ${body.version}, older than version ${opts.lastSeenVersion} seen before`,
    );
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
 * The body is streamed to a temporary file and hashed as it comes; more bytes than the manifest's size (an
 * endless body, a bigger file) ends the transfer at once. A source that is down or serves wrong bytes is
 * skipped and its partial file deleted; when none serves the right bytes, refuses with nothing left behind.
 */
export async function downloadVerified(
  file: { name: string; sha256: string },
  manifest: ManifestBody,
  o: DownloadOptions,
): Promise<string> {
  const listed = manifest.files.find((f) => f.sha256 === file.sha256);
  if (!listed)
    throw new VerificationError(
      'not_in_manifest',
      `${file.name} (sha256 ${file.sha256.slice(0, 12)}…) is not in the signed manifest version ${manifest.version}`,
    );
  const f = o.fetchImpl ?? fetch;
  await fs.mkdir(o.destDir, { recursive: true });
  const dest = path.join(o.destDir, `${listed.sha256}-${path.basename(listed.name)}`);
  const problems: Array<{ reason: 'bad_hash' | 'bad_size' | 'download_failed'; text: string }> = [];
  for (const base of o.sources) {
    const url = `${base.replace(/\/+$/, '')}/agent/v1/files/${file.sha256}`;
    const part = path.join(o.destDir, `.${listed.sha256}.${process.pid}.${randomBytes(4).toString('hex')}.part`);
    const stop = new AbortController();
    try {
      const authorization = o.authFor?.(base);
      const headers: Record<string, string> = authorization ? { authorization } : {};
      const res = await f(url, {
        headers,
        signal: AbortSignal.any([stop.signal, AbortSignal.timeout(o.timeoutMs ?? 10 * 60_000)]),
      });
      if (!res.ok) {
        problems.push({ reason: 'download_failed', text: `${base}: HTTP ${res.status}` });
        stop.abort();
        continue;
      }
      const announced = res.headers.get('content-length');
      if (announced !== null && Number(announced) > listed.size) {
        problems.push({
          reason: 'bad_size',
          text: `${base}: announces ${announced} bytes, the manifest lists ${listed.size}`,
        });
        stop.abort();
        continue;
      }
      const got = await streamCapped(res, part, listed.size, stop);
      if (got.tooLarge) {
        problems.push({
          reason: 'bad_size',
          text: `${base}: sent more than the ${listed.size} bytes the manifest lists; stopped reading`,
        });
        continue;
      }
      if (got.sha256 !== listed.sha256) {
        problems.push({
          reason: 'bad_hash',
          text: `${base}: sha256 ${got.sha256.slice(0, 12)}… does not match the manifest's ${listed.sha256.slice(0, 12)}…`,
        });
        continue;
      }
      await fs.rename(part, dest);
      return dest;
    } catch (e) {
      stop.abort();
      problems.push({ reason: 'download_failed', text: `${base}: ${(e as Error).message}` });
    } finally {
      await fs.rm(part, { force: true });
    }
  }
  const reason =
    problems.find((p) => p.reason === 'bad_size')?.reason ??
    problems.find((p) => p.reason === 'bad_hash')?.reason ??
    'download_failed';
  throw new VerificationError(
    reason,
    `could not get a verified copy of ${file.name}: ${problems.map((p) => p.text).join('; ')}`,
  );
}

/**
 * Writes the response body to `part` (mode 0600), hashing it on the way, and stops reading (aborting the request)
 * as soon as it passes `cap` bytes: a source cannot fill the disk or keep the agent reading for ever.
 */
async function streamCapped(
  res: Response,
  part: string,
  cap: number,
  stop: AbortController,
): Promise<{ sha256: string; tooLarge: boolean }> {
  const hash = createHash('sha256');
  const out = await fs.open(part, 'wx', 0o600);
  let bytes = 0;
  try {
    if (!res.body) return { sha256: hash.digest('hex'), tooLarge: false };
    const reader = res.body.getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      bytes += value.byteLength;
      if (bytes > cap) {
        stop.abort();
        await reader.cancel().catch(() => undefined);
        return { sha256: '', tooLarge: true };
      }
      hash.update(value);
      await out.write(value);
    }
    return { sha256: hash.digest('hex'), tooLarge: false };
  } finally {
    await out.close();
  }
}
