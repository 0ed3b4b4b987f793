/**
 * Files: the compliance report as CSV or PDF (src/reports, the same as `patchops report`) and the audit log as CSV
 * (the same columns as `patchops audit export`), streamed in batches.
 */
import { Readable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { iterateAudit } from '../../db/dashboard';
import { csvLine } from '../../reports/csv';
import { collectReport, renderReport, REPORT_SCOPES } from '../../reports/report';
import { authorizeRequest } from '../auth';
import type { ApiDeps } from '../deps';
import { AUTH_ERRORS } from '../schemas';

/** A file body: Fastify sends a Buffer or a stream as it is (no serializer); the schema is for the document. */
const FileBody = z.string();

export function reportRoutes(app: FastifyInstance, deps: ApiDeps): void {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const { db } = deps;

  r.get(
    '/reports',
    {
      schema: {
        summary: 'The compliance report (compliance by group and OS, SLA breaches, cycle results) as CSV or PDF',
        tags: ['reports'],
        querystring: z.object({
          format: z.enum(['csv', 'pdf']).default('csv'),
          scope: z.enum(REPORT_SCOPES).default('all'),
        }),
        response: { 200: FileBody.describe('text/csv or application/pdf'), ...AUTH_ERRORS },
      },
    },
    async (req, reply) => {
      await authorizeRequest(db, req, 'viewer');
      const data = await collectReport(db, req.query.scope);
      const body = await renderReport(data, req.query.format);
      const csv = req.query.format === 'csv';
      return reply
        .type(csv ? 'text/csv; charset=utf-8' : 'application/pdf')
        .header('content-disposition', `attachment; filename="patchops-report-${req.query.scope}.${req.query.format}"`)
        .send(body as unknown as string);
    },
  );

  r.get(
    '/audit/export',
    {
      schema: {
        summary: 'The audit log as CSV (filters: actor contains, action starts with, since a date)',
        tags: ['audit'],
        querystring: z.object({
          actor: z.string().max(300).optional(),
          action: z.string().max(200).optional(),
          since: z.iso.date().optional(),
        }),
        response: { 200: FileBody.describe('text/csv'), ...AUTH_ERRORS },
      },
    },
    async (req, reply) => {
      await authorizeRequest(db, req, 'admin');
      const filter = {
        actor: req.query.actor,
        action: req.query.action,
        from: req.query.since ? new Date(req.query.since) : undefined,
      };
      async function* lines() {
        yield csvLine(['id', 'at', 'actor', 'action', 'subject_type', 'subject_id', 'details', 'prev_hash', 'hash']);
        for await (const batch of iterateAudit(db, filter)) {
          yield batch
            .map((e) =>
              csvLine([e.id, e.at, e.actor, e.action, e.subjectType, e.subjectId, e.details, e.prevHash, e.hash]),
            )
            .join('');
        }
      }
      return reply
        .type('text/csv; charset=utf-8')
        .header('content-disposition', 'attachment; filename="patchops-audit.csv"')
        .send(Readable.from(lines()) as unknown as string);
    },
  );
}
