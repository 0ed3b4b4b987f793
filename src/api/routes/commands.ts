/**
 * POST /commands {words}: one command-core verb, the same words as `/patch …` in chat, run as the token's person.
 * The CLI sends every operational verb here, so chat, API and CLI share one parser, one role check and one executor.
 */
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { parseCommand } from '../../commands/grammar';
import { CodedError, ErrorCode } from '../../domain/errors';
import { authorizeRequest } from '../auth';
import type { ApiDeps } from '../deps';
import { runCommand } from '../run-command';
import { AUTH_ERRORS, CommandReply } from '../schemas';

export function commandRoutes(app: FastifyInstance, deps: ApiDeps): void {
  app.withTypeProvider<ZodTypeProvider>().post(
    '/commands',
    {
      schema: {
        summary: 'Run one command, in the words of `/patch …` in chat (e.g. "approve C-12")',
        tags: ['commands'],
        body: z.object({ words: z.string().min(1).max(4000) }),
        response: { 200: CommandReply, ...AUTH_ERRORS },
      },
    },
    async (req) => {
      const caller = await authorizeRequest(deps.db, req, null);
      const parsed = parseCommand(req.body.words);
      if (!parsed.ok) throw new CodedError(ErrorCode.InvalidInput, `${parsed.error}\n\n${parsed.usage}`);
      return runCommand(deps, caller, parsed.command);
    },
  );
}
