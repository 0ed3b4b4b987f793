/**
 * Loads the CISA Known Exploited Vulnerabilities catalog. The product bundles a copy
 * (assets/kev/known_exploited_vulnerabilities.json, CC0); pass a path to use an updated one.
 */
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { CodedError, ErrorCode } from '../domain/errors';
import { KevIndex } from '../domain/kev';

export const BUNDLED_KEV_PATH = fileURLToPath(
  new URL('../../assets/kev/known_exploited_vulnerabilities.json', import.meta.url),
);

export async function loadKev(path: string = BUNDLED_KEV_PATH): Promise<KevIndex> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    throw new CodedError(
      ErrorCode.NotFound,
      `The KEV catalog could not be read from ${path} (${(e as Error).message}). Check the path, or leave it unset to use the bundled copy.`,
      { cause: e },
    );
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new CodedError(
      ErrorCode.InvalidInput,
      `The KEV catalog at ${path} is not valid JSON (${(e as Error).message}). Download it again from cisa.gov.`,
      { cause: e },
    );
  }
  try {
    return KevIndex.fromCatalog(json);
  } catch (e) {
    if (e instanceof CodedError) throw new CodedError(e.code, `${path}: ${e.message}`, { cause: e });
    throw e;
  }
}

/**
 * The catalog as an activity dependency: a loader that reads it on first use and keeps it for the life of the
 * activities it is given to (one per worker process); a failed read is tried again on the next call.
 */
export function kevCatalog(path: string = BUNDLED_KEV_PATH): () => Promise<KevIndex> {
  let index: Promise<KevIndex> | undefined;
  return () => {
    index ??= loadKev(path).catch((e: unknown) => {
      index = undefined;
      throw e;
    });
    return index;
  };
}
