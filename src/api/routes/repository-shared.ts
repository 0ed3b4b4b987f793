/** What the repository's routes (./repository.ts, ./repository-upload.ts) share: the file entry and the manifest's lifetime. */
import { z } from 'zod';
import { CodedError, ErrorCode } from '../../domain/errors';
import type { ApiDeps } from '../deps';

export const FileEntry = z.object({ name: z.string(), sha256: z.string(), size: z.number().int() });
export const DEFAULT_TTL_HOURS = 24 * 7;
export const MAX_TTL_HOURS = 24 * 366;

/** The server's repository (signing key and folder), or 409 when this server runs without one. */
export function repositoryOf(deps: ApiDeps): NonNullable<ApiDeps['repository']> {
  if (!deps.repository)
    throw new CodedError(
      ErrorCode.Conflict,
      'this server has no repository configured (no signing key or folder): run it with `patchops up`',
    );
  return deps.repository;
}
