/**
 * Endpoints, exceptions, roles and the compliance report as REST resources, each through the command core
 * (runCommand) so the role check and the audit are the chat's and the CLI's.
 */
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Command } from '../../commands/grammar';
import type { Role } from '../../db/identities';
import type { CycleScope } from '../../domain/cycle';
import { authorizeRequest } from '../auth';
import type { ApiDeps } from '../deps';
import { runCommand } from '../run-command';
import { AUTH_ERRORS, CommandReply, RoleName, Scope } from '../schemas';

const response = { 200: CommandReply, ...AUTH_ERRORS };

export function fleetRoutes(app: FastifyInstance, deps: ApiDeps): void {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const run = async (req: Parameters<typeof authorizeRequest>[1], command: Command) =>
    runCommand(deps, await authorizeRequest(deps.db, req, null), command);

  r.get(
    '/endpoints',
    {
      schema: {
        summary: 'Find endpoints by hostname, id or tag',
        tags: ['endpoints'],
        querystring: z.object({ q: z.string().max(200).default('') }),
        response,
      },
    },
    async (req) => run(req, { verb: 'endpoints', query: req.query.q }),
  );

  r.get(
    '/exceptions',
    { schema: { summary: 'Active patch exceptions', tags: ['exceptions'], response } },
    async (req) => run(req, { verb: 'exceptions', action: 'list' }),
  );
  r.post(
    '/exceptions',
    {
      schema: {
        summary: 'Add a patch exception with an expiry',
        tags: ['exceptions'],
        body: z.object({
          patchId: z.string().min(1).max(200).optional(),
          endpointId: z.string().min(1).max(200).optional(),
          group: z.string().min(1).max(200).optional(),
          until: z
            .string()
            .regex(/^\d{4}-\d{2}-\d{2}$/)
            .describe('YYYY-MM-DD'),
          reason: z.string().min(1).max(2000),
        }),
        response,
      },
    },
    async (req) => {
      const b = req.body;
      return run(req, {
        verb: 'exceptions',
        action: 'add',
        ...(b.patchId ? { patchId: b.patchId } : {}),
        ...(b.endpointId ? { endpointId: b.endpointId } : {}),
        ...(b.group ? { group: b.group } : {}),
        until: b.until,
        reason: b.reason,
      });
    },
  );
  r.delete(
    '/exceptions/:code',
    {
      schema: {
        summary: 'Remove a patch exception',
        tags: ['exceptions'],
        params: z.object({ code: z.string().min(1).max(100) }),
        response,
      },
    },
    async (req) => run(req, { verb: 'exceptions', action: 'remove', code: req.params.code }),
  );

  r.get(
    '/roles',
    {
      schema: {
        summary: 'The roles an identity holds (yours when none is given)',
        tags: ['roles'],
        querystring: z.object({ identity: z.string().min(1).max(300).optional() }),
        response,
      },
    },
    async (req) =>
      run(req, { verb: 'roles', action: 'list', ...(req.query.identity ? { identity: req.query.identity } : {}) }),
  );
  const grant = z.object({
    identity: z.string().min(1).max(300),
    role: RoleName,
    group: z.string().min(1).max(200).optional(),
  });
  r.post('/roles', { schema: { summary: 'Grant a role', tags: ['roles'], body: grant, response } }, async (req) =>
    run(req, {
      verb: 'roles',
      action: 'grant',
      identity: req.body.identity,
      role: req.body.role as Role,
      ...(req.body.group ? { group: req.body.group } : {}),
    }),
  );
  r.delete('/roles', { schema: { summary: 'Revoke a role', tags: ['roles'], body: grant, response } }, async (req) =>
    run(req, {
      verb: 'roles',
      action: 'revoke',
      identity: req.body.identity,
      role: req.body.role as Role,
      ...(req.body.group ? { group: req.body.group } : {}),
    }),
  );

  r.post(
    '/reports/compliance',
    {
      schema: {
        summary: 'Compliance, outstanding patches by severity and past-SLA counts, for the fleet or a scope',
        tags: ['reports'],
        body: z.object({ scope: Scope.optional() }).default({}),
        response,
      },
    },
    async (req) => run(req, { verb: 'report', ...(req.body.scope ? { scope: req.body.scope as CycleScope } : {}) }),
  );
}
