/** GET /patches: the patch catalog with where each patch is missing or failed, filtered as on the dashboard's patches page (one db read). */
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { listPatches } from '../../db/dashboard';
import { SEVERITIES } from '../../domain/patch';
import { authorizeRequest } from '../auth';
import type { ApiDeps } from '../deps';
import { AUTH_ERRORS } from '../schemas';

const PatchItem = z.object({
  id: z.string(),
  title: z.string(),
  vendor: z.string(),
  type: z.string(),
  severity: z.string(),
  cvss: z.number().nullable(),
  cves: z.array(z.string()),
  knownExploited: z.boolean(),
  osFamily: z.string(),
  supersededBy: z.string().nullable(),
  missing: z.number().int().describe('endpoints the patch is missing on'),
  failed: z.number().int().describe('endpoints where installing it failed'),
});

export function patchRoutes(app: FastifyInstance, deps: ApiDeps): void {
  app.withTypeProvider<ZodTypeProvider>().get(
    '/patches',
    {
      schema: {
        summary: 'The patch catalog: known exploited first, then by severity and how many endpoints miss it',
        tags: ['patches'],
        querystring: z.object({
          q: z.string().max(200).optional().describe('part of the id or title, or a CVE id'),
          severity: z.enum(SEVERITIES as [string, ...string[]]).optional(),
          limit: z.coerce.number().int().min(1).max(1000).default(200),
        }),
        response: { 200: z.object({ patches: z.array(PatchItem) }), ...AUTH_ERRORS },
      },
    },
    async (req) => {
      await authorizeRequest(deps.db, req, 'viewer');
      const { q, severity, limit } = req.query;
      return { patches: await listPatches(deps.db, { ...(q ? { q } : {}), ...(severity ? { severity } : {}), limit }) };
    },
  );
}
