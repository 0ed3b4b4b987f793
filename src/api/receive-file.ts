/**
 * An uploaded file's bytes, from the request body to a temporary file in the folder it is meant for: streamed,
 * hashed (sha256) and counted as they arrive, never held in memory. Past `maxBytes` the upload stops with 413 and
 * the temporary file is deleted; the caller renames the file into place (same folder, so the rename is atomic) or
 * deletes it with discard().
 */
import { createHash, randomUUID } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { HttpError, HttpErrorCode } from '../server/errors';

export interface ReceivedFile {
  /** Where the bytes are now: `<dir>/.upload-<uuid>.part` (never a sha256, so nothing serves it). */
  tempPath: string;
  sha256: string;
  size: number;
}

const megabytes = (n: number) => `${Math.round((n / 1048576) * 10) / 10} MB`;

/** The 413 of an upload past the limit. The connection is closed: the rest of the body is not read. */
export function uploadTooLarge(maxBytes: number, size?: number): HttpError {
  const got = size === undefined ? 'it is larger' : `it is ${megabytes(size)}`;
  return new HttpError(
    HttpErrorCode.PayloadTooLarge,
    `the file is larger than this server accepts (${megabytes(maxBytes)}, PATCHOPS_REPO_MAX_UPLOAD_MB); ${got}. Nothing was stored. Raise PATCHOPS_REPO_MAX_UPLOAD_MB on the server, or add a smaller file.`,
    { connection: 'close' },
  );
}

/**
 * Streams `body` to a new temporary file in `dir` (created if missing). Throws uploadTooLarge past `maxBytes`, or
 * the stream's own error (the client went away); either way the temporary file is gone. The request stream is
 * left open on a refusal, so the server can still answer on it.
 */
export async function receiveFile(body: Readable, o: { dir: string; maxBytes: number }): Promise<ReceivedFile> {
  await fs.mkdir(o.dir, { recursive: true });
  const tempPath = path.join(o.dir, `.upload-${randomUUID()}.part`);
  const hash = createHash('sha256');
  let size = 0;
  async function* metered(): AsyncGenerator<Buffer> {
    for await (const chunk of body.iterator({ destroyOnReturn: false }) as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > o.maxBytes) throw uploadTooLarge(o.maxBytes);
      hash.update(chunk);
      yield chunk;
    }
  }
  try {
    await pipeline(metered, createWriteStream(tempPath, { flags: 'wx', mode: 0o644 }));
  } catch (e) {
    await discard(tempPath);
    throw e;
  }
  return { tempPath, sha256: hash.digest('hex'), size };
}

/** Deletes a temporary file receiveFile made (no error when it is already gone). */
export async function discard(tempPath: string): Promise<void> {
  await fs.rm(tempPath, { force: true });
}
