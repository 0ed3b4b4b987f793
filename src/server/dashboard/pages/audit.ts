/** The audit log: filters, paging by id, and the filtered log as CSV. */
import type { FastifyPluginAsync } from 'fastify';
import { iterateAudit, listAudit, type AuditFilter } from '../../../db/dashboard';
import { csvLine } from '../../../reports/csv';
import { clampedInt, dateParam } from '../../input';
import { cell, html, layout, qs, table, when } from '../html';
import { type DashboardContext } from '../page';
import { sendPage } from '../respond';
import { pageUser, sessionOf } from '../session';

const PAGE_SIZE = 100;

type Query = Record<string, string | undefined>;

const auditFilter = (q: Query): AuditFilter => ({
  actor: q.actor || undefined,
  action: q.action || undefined,
  subjectType: q.subjectType || undefined,
  subjectId: q.subjectId || undefined,
  from: dateParam(q.from, 'From'),
  to: dateParam(q.to, 'To', 'end'),
});

export const auditPage: FastifyPluginAsync<DashboardContext> = async (app, o) => {
  app.get('/audit', { preHandler: o.guard.page }, async (req, reply) => {
    const q = req.query as Query;
    const f = auditFilter(q);
    const before = clampedInt(q.before, { min: 0, max: Number.MAX_SAFE_INTEGER, fallback: 0 }) || undefined;
    const rows = await listAudit(o.db, { ...f, limit: PAGE_SIZE, beforeId: before });
    const keep = {
      actor: q.actor,
      action: q.action,
      subjectType: q.subjectType,
      subjectId: q.subjectId,
      from: q.from,
      to: q.to,
    };
    const input = (name: keyof typeof keep, label: string, type = 'text') =>
      html`<label>${label} <input name="${name}" type="${type}" value="${keep[name] ?? ''}"></label>`;
    const body = html`<form class="filters" method="get" action="/audit">${input('actor', 'Actor')}${input('action', 'Action (prefix)')}${input('subjectType', 'Subject type')}${input('subjectId', 'Subject id')}${input('from', 'From', 'date')}${input('to', 'To', 'date')}<button type="submit">Filter</button>
<a href="/audit.csv${qs(keep)}" data-testid="audit-csv">Export CSV</a></form>
${table(
  ['#', 'when', 'actor', 'action', 'subject', 'details'],
  rows.map((r) => [
    cell(r.id),
    when(r.at),
    cell(r.actor),
    cell(r.action),
    cell(`${r.subjectType} ${r.subjectId}`),
    html`<code>${JSON.stringify(r.details)}</code>`,
  ]),
  { testid: 'audit', empty: 'No audit entries match.' },
)}
${rows.length === PAGE_SIZE ? html`<a href="/audit${qs({ ...keep, before: rows[rows.length - 1]!.id })}">older →</a>` : ''}
<p class="muted">The log is hash-chained and append-only; <code>patchops audit verify</code> checks the whole chain.</p>`;
    return sendPage(reply, layout({ title: 'Audit log', user: pageUser(sessionOf(req)), active: '/audit', body }));
  });

  app.get('/audit.csv', { preHandler: o.guard.page }, async (req, reply) => {
    const f = auditFilter(req.query as Query);
    let out = csvLine(['id', 'at', 'actor', 'action', 'subject_type', 'subject_id', 'details', 'hash']);
    for await (const batch of iterateAudit(o.db, f))
      for (const r of batch)
        out += csvLine([r.id, r.at, r.actor, r.action, r.subjectType, r.subjectId, r.details, r.hash]);
    return reply
      .header('content-type', 'text/csv; charset=utf-8')
      .header('content-disposition', 'attachment; filename="patchops-audit.csv"')
      .send(out);
  });
};
