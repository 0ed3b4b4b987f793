/**
 * The audit log: recent entries (admin) and a verification of the whole keyed hash chain against the server's signed
 * checkpoint (admin; what `patchops audit verify` calls): an intact log moves the checkpoint to its head.
 */
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { desc, lt } from 'drizzle-orm';
import { z } from 'zod';
import { currentAuditKeys, verifyAuditLog } from '../../db/audit';
import { readAuditCheckpoint, writeAuditCheckpoint } from '../../db/audit-checkpoint';
import { auditLog } from '../../db/schema/index';
import { authorizeRequest } from '../auth';
import type { ApiDeps } from '../deps';
import { AUTH_ERRORS } from '../schemas';

const tags = ['audit'];

export function auditRoutes(app: FastifyInstance, deps: ApiDeps): void {
  const r = app.withTypeProvider<ZodTypeProvider>();
  r.get(
    '/audit',
    {
      schema: {
        summary: 'Audit entries, newest first (page with ?before=<id>)',
        tags,
        querystring: z.object({
          limit: z.coerce.number().int().min(1).max(1000).default(100),
          before: z.coerce.number().int().min(1).optional(),
        }),
        response: {
          200: z.object({
            entries: z.array(
              z.object({
                id: z.number().int(),
                at: z.string(),
                actor: z.string(),
                action: z.string(),
                subjectType: z.string(),
                subjectId: z.string(),
                details: z.unknown(),
                hash: z.string(),
              }),
            ),
          }),
          ...AUTH_ERRORS,
        },
      },
    },
    async (req) => {
      await authorizeRequest(deps.db, req, 'admin');
      const rows = await deps.db
        .select()
        .from(auditLog)
        .where(req.query.before ? lt(auditLog.id, req.query.before) : undefined)
        .orderBy(desc(auditLog.id))
        .limit(req.query.limit);
      return {
        entries: rows.map((e) => ({
          id: e.id,
          at: e.at.toISOString(),
          actor: e.actor,
          action: e.action,
          subjectType: e.subjectType,
          subjectId: e.subjectId,
          details: e.details,
          hash: e.hash,
        })),
      };
    },
  );
  const Checkpoint = z.object({ headId: z.number().int(), writtenAt: z.string() });
  r.post(
    '/audit/verify',
    {
      schema: {
        summary:
          "Walk the keyed hash chain, compare it with the server's signed checkpoint and name the first row that does not hold",
        tags,
        response: {
          200: z.object({
            ok: z.boolean(),
            rows: z.number().int(),
            unkeyedRows: z.number().int(),
            keyedFrom: z.number().int().nullable(),
            head: z.object({ id: z.number().int(), hash: z.string() }).nullable(),
            problem: z.object({ id: z.number().int(), reason: z.string() }).optional(),
            checkpoint: z
              .object({
                previous: Checkpoint.nullable().describe('the checkpoint compared with (null: none yet)'),
                movedTo: z.number().int().nullable().describe('the head row it was moved to, null when not moved'),
              })
              .nullable()
              .describe('null when this server keeps no checkpoint'),
          }),
          ...AUTH_ERRORS,
        },
      },
    },
    async (req) => {
      await authorizeRequest(deps.db, req, 'admin');
      const file = deps.auditCheckpointFile;
      if (!file) return { ...(await verifyAuditLog(deps.db)), checkpoint: null };
      const keys = currentAuditKeys();
      const anchor = await readAuditCheckpoint(file, keys);
      const report = await verifyAuditLog(deps.db, { anchor, keys });
      const written = report.ok ? (await writeAuditCheckpoint(deps.db, file, keys)).written : null;
      const previous = anchor ? { headId: anchor.headId, writtenAt: anchor.writtenAt } : null;
      return {
        ...report,
        checkpoint: { previous, movedTo: written && written.headId !== anchor?.headId ? written.headId : null },
      };
    },
  );
}
