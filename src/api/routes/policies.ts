/** Deployment policies: list, one (a version of it), and saving a new version (admin). Every save is audited by savePolicy. */
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { getPolicy, listPolicies, savePolicy } from '../../db/policies';
import { authorizeRequest } from '../auth';
import type { ApiDeps } from '../deps';
import { AUTH_ERRORS } from '../schemas';

const tags = ['policies'];
const Stored = z.object({
  name: z.string(),
  version: z.number().int(),
  policy: z.record(z.string(), z.unknown()).describe('the policy with defaults filled in'),
  createdBy: z.string(),
  createdAt: z.string(),
});

export function policyRoutes(app: FastifyInstance, deps: ApiDeps): void {
  const r = app.withTypeProvider<ZodTypeProvider>();
  r.get(
    '/policies',
    {
      schema: {
        summary: 'The latest version of every policy',
        tags,
        response: {
          200: z.object({
            policies: z.array(
              z.object({
                name: z.string(),
                version: z.number().int(),
                description: z.string(),
                createdBy: z.string(),
                createdAt: z.string(),
              }),
            ),
          }),
          ...AUTH_ERRORS,
        },
      },
    },
    async (req) => {
      await authorizeRequest(deps.db, req, 'viewer');
      return { policies: await listPolicies(deps.db) };
    },
  );
  r.get(
    '/policies/:name',
    {
      schema: {
        summary: 'A policy (its latest version, or ?version=N)',
        tags,
        params: z.object({ name: z.string().min(1).max(200) }),
        querystring: z.object({ version: z.coerce.number().int().min(1).optional() }),
        response: { 200: Stored, ...AUTH_ERRORS },
      },
    },
    async (req) => {
      await authorizeRequest(deps.db, req, 'viewer');
      return getPolicy(deps.db, req.params.name, req.query.version) as Promise<z.infer<typeof Stored>>;
    },
  );
  r.post(
    '/policies',
    {
      schema: {
        summary: 'Validate a policy document and store it as the next version of its name',
        tags,
        body: z.record(z.string(), z.unknown()).describe('a policy document ({ "name": "servers", … })'),
        response: { 200: Stored, ...AUTH_ERRORS },
      },
    },
    async (req) => {
      const c = await authorizeRequest(deps.db, req, 'admin');
      return savePolicy(deps.db, req.body, c.identity) as Promise<z.infer<typeof Stored>>;
    },
  );
}
