/**
 * Cycles and scans as REST resources. Each route builds the command-core Command it stands for and runs it through
 * runCommand, so the role check, the vote validator and the audit are the ones chat and the CLI go through.
 */
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Command } from '../../commands/grammar';
import type { CycleScope } from '../../domain/cycle';
import { authorizeRequest } from '../auth';
import type { ApiDeps } from '../deps';
import { runCommand } from '../run-command';
import { AUTH_ERRORS, CommandReply, CycleId, Reason, Scope } from '../schemas';

const tags = ['cycles'];
const response = { 200: CommandReply, ...AUTH_ERRORS };

export function cycleRoutes(app: FastifyInstance, deps: ApiDeps): void {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const run = async (req: Parameters<typeof authorizeRequest>[1], command: Command) =>
    runCommand(deps, await authorizeRequest(deps.db, req, null), command);

  r.get('/cycles', { schema: { summary: 'Recent cycles', tags, response } }, async (req) =>
    run(req, { verb: 'cycles' }),
  );
  r.get(
    '/cycles/:id',
    { schema: { summary: "A cycle's stage, approvals, waves and reasons", tags, params: CycleId, response } },
    async (req) => run(req, { verb: 'status', cycleId: req.params.id }),
  );
  r.post(
    '/cycles',
    {
      schema: {
        summary: 'Start a patch cycle under a policy',
        tags,
        body: z.object({
          policy: z.string().min(1).max(200),
          scope: Scope.default({}),
          emergency: z.boolean().default(false),
        }),
        response,
      },
    },
    async (req) =>
      run(req, {
        verb: 'start',
        policy: req.body.policy,
        scope: req.body.scope as CycleScope,
        emergency: req.body.emergency,
      }),
  );
  r.post(
    '/cycles/:id/approve',
    { schema: { summary: 'Approve a cycle waiting for approval', tags, params: CycleId, response } },
    async (req) => run(req, { verb: 'approve', cycleId: req.params.id }),
  );
  r.post(
    '/cycles/:id/reject',
    {
      schema: {
        summary: 'Reject a cycle (a reason is required)',
        tags,
        params: CycleId,
        body: z.object({ reason: z.string().min(1).max(2000) }),
        response,
      },
    },
    async (req) => run(req, { verb: 'reject', cycleId: req.params.id, reason: req.body.reason }),
  );
  r.post(
    '/cycles/:id/pause',
    { schema: { summary: 'Pause a running cycle', tags, params: CycleId, body: Reason.default({}), response } },
    async (req) =>
      run(req, { verb: 'pause', cycleId: req.params.id, ...(req.body.reason ? { reason: req.body.reason } : {}) }),
  );
  r.post(
    '/cycles/:id/resume',
    { schema: { summary: 'Resume a paused cycle', tags, params: CycleId, response } },
    async (req) => run(req, { verb: 'resume', cycleId: req.params.id }),
  );
  r.post(
    '/cycles/:id/cancel',
    { schema: { summary: 'Cancel a cycle', tags, params: CycleId, body: Reason.default({}), response } },
    async (req) =>
      run(req, { verb: 'cancel', cycleId: req.params.id, ...(req.body.reason ? { reason: req.body.reason } : {}) }),
  );
  r.post(
    '/cycles/:id/rollback',
    {
      schema: {
        summary: 'Roll back a cycle, or one endpoint of it',
        tags,
        params: CycleId,
        body: z.object({ endpointId: z.string().min(1).max(200).optional() }).default({}),
        response,
      },
    },
    async (req) =>
      run(req, {
        verb: 'rollback',
        cycleId: req.params.id,
        ...(req.body.endpointId ? { endpointId: req.body.endpointId } : {}),
      }),
  );

  r.post(
    '/scans',
    {
      schema: {
        summary: 'Scan endpoints for missing patches now',
        tags: ['scans'],
        body: z.object({ scope: Scope.default({}) }),
        response,
      },
    },
    async (req) => run(req, { verb: 'scan', scope: req.body.scope as CycleScope }),
  );
}
