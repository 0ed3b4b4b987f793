/**
 * Changing the central repository (admin). Adding a file: POST /repository/files in ./repository-upload.ts.
 * DELETE /repository/files publishes a new signed manifest without the named
 * files (by name or sha256) and deletes their bytes from the server's repository folder unless another entry still
 * lists them; `patchops repo remove` calls it. removeManifestFiles audits the change as the token's person.
 * (Reading the manifest: GET /repository in ./agents.ts.)
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { removeManifestFiles } from '../../db/repository';
import { authorizeRequest } from '../auth';
import type { ApiDeps } from '../deps';
import { AUTH_ERRORS } from '../schemas';
import { DEFAULT_TTL_HOURS, FileEntry, MAX_TTL_HOURS, repositoryOf } from './repository-shared';
import { repositoryUploadRoutes } from './repository-upload';

export function repositoryRoutes(app: FastifyInstance, deps: ApiDeps): void {
  repositoryUploadRoutes(app, deps);
  app.withTypeProvider<ZodTypeProvider>().delete(
    '/repository/files',
    {
      schema: {
        summary:
          'Publish a new signed manifest without these files (by name or sha256); their bytes are deleted unless still listed',
        tags: ['repository'],
        body: z.object({
          files: z
            .array(z.string().min(1).max(300))
            .min(1)
            .max(1000)
            .describe('file names or sha256 digests; all or nothing'),
          ttlHours: z
            .number()
            .positive()
            .max(MAX_TTL_HOURS)
            .default(DEFAULT_TTL_HOURS)
            .describe('how long the new manifest stays valid'),
        }),
        response: {
          200: z.object({
            version: z.number().int(),
            previousVersion: z.number().int(),
            removed: z.array(
              FileEntry.extend({
                bytesDeleted: z.boolean().describe('false: another entry still lists the same bytes'),
              }),
            ),
            files: z.array(FileEntry).describe('what the new manifest lists'),
          }),
          ...AUTH_ERRORS,
        },
      },
    },
    async (req) => {
      const c = await authorizeRequest(deps.db, req, 'admin');
      const repo = repositoryOf(deps);
      const r = await removeManifestFiles(deps.db, repo.box, req.body.files, {
        ttlHours: req.body.ttlHours,
        by: c.identity,
      });
      const kept = new Set(r.files.map((f) => f.sha256));
      const removed = [];
      for (const f of r.removed) {
        const bytesDeleted = !kept.has(f.sha256);
        if (bytesDeleted) await fs.rm(path.join(repo.dir, f.sha256), { force: true });
        removed.push({ name: f.name, sha256: f.sha256, size: f.size, bytesDeleted });
      }
      return {
        version: r.version,
        previousVersion: r.previousVersion,
        removed,
        files: r.files.map((f) => ({ name: f.name, sha256: f.sha256, size: f.size })),
      };
    },
  );
}
