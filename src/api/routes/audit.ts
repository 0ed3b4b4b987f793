/** The audit log: recent entries (admin) and a verification of the whole hash chain (admin). */
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { desc, lt } from 'drizzle-orm';
import { z } from 'zod';
import { verifyAuditLog } from '../../db/audit';
import { auditLog } from '../../db/schema/index';
import { authorizeRequest } from '../auth';
import type { ApiDeps } from '../deps';
import { AUTH_ERRORS } from '../schemas';

const tags = ['audit'];

export function auditRoutes(app: FastifyInstance, deps: ApiDeps): void {
  const r = app.withTypeProvider<ZodTypeProvider>();
  r.get('/audit', {
    schema: {
      summary: 'Audit entries, newest first (page with ?before=<id>)',
      tags,
      querystring: z.object({ limit: z.coerce.number().int().min(1).max(1000).default(100), before: z.coerce.number().int().min(1).optional() }),
      response: {
        200: z.object({
          entries: z.array(z.object({ id: z.number().int(), at: z.string(), actor: z.string(), action: z.string(), subjectType: z.string(), subjectId: z.string(), details: z.unknown(), hash: z.string() })),
        }),
        ...AUTH_ERRORS,
      },
    },
  }, async (req) => {
    await authorizeRequest(deps.db, req, 'admin');
    const rows = await deps.db
      .select()
      .from(auditLog)
      .where(req.query.before ? lt(auditLog.id, req.query.before) : undefined)
      .orderBy(desc(auditLog.id))
      .limit(req.query.limit);
    return { entries: rows.map((e) => ({ id: e.id, at: e.at.toISOString(), actor: e.actor, action: e.action, subjectType: e.subjectType, subjectId: e.subjectId, details: e.details, hash: e.hash })) };
  });
  r.post('/audit/verify', {
    schema: {
      summary: 'Walk the hash chain and name the first row that does not hold',
      tags,
      response: {
        200: z.object({ ok: z.boolean(), rows: z.number().int(), unkeyedRows: z.number().int(), keyedFrom: z.number().int().nullable(), head: z.object({ id: z.number().int(), hash: z.string() }).nullable(), problem: z.object({ id: z.number().int(), reason: z.string() }).optional() }),
        ...AUTH_ERRORS,
      },
    },
  }, async (req) => {
    await authorizeRequest(deps.db, req, 'admin');
    return verifyAuditLog(deps.db);
  });
}
