/**
 * People: GET /people, POST /people/links {person, identity, email?}, DELETE /people/links/:identity, each through
 * the command core (runCommand) so the role check and the audit are those of `people …` in chat and the CLI.
 */
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { authorizeRequest } from '../auth';
import type { ApiDeps } from '../deps';
import { runCommand } from '../run-command';
import { AUTH_ERRORS, CommandReply } from '../schemas';

const response = { 200: CommandReply, ...AUTH_ERRORS };
const tags = ['people'];
const Identity = z
  .string()
  .min(3)
  .max(300)
  .regex(/^[a-z]+:\S+$/)
  .describe('slack:U0123, teams:<aad id>, web:alice');

export function peopleRoutes(app: FastifyInstance, deps: ApiDeps): void {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const caller = (req: Parameters<typeof authorizeRequest>[1]) => authorizeRequest(deps.db, req, null);

  r.get('/people', { schema: { summary: 'People and the identities linked to each', tags, response } }, async (req) =>
    runCommand(deps, await caller(req), { verb: 'people', action: 'list' }),
  );

  r.post(
    '/people/links',
    {
      schema: {
        summary:
          "Link an identity to a person (quorum counts people; a cycle's starter cannot approve it from another identity)",
        tags,
        body: z.object({ person: z.string().min(1).max(64), identity: Identity, email: z.email().max(320).optional() }),
        response,
      },
    },
    async (req) => {
      const { person, identity, email } = req.body;
      return runCommand(deps, await caller(req), {
        verb: 'people',
        action: 'link',
        person,
        identity,
        ...(email ? { email } : {}),
      });
    },
  );

  r.delete(
    '/people/links/:identity',
    {
      schema: {
        summary: 'Unlink an identity: it is its own person again',
        tags,
        params: z.object({ identity: Identity }),
        response,
      },
    },
    async (req) =>
      runCommand(deps, await caller(req), { verb: 'people', action: 'unlink', identity: req.params.identity }),
  );
}
