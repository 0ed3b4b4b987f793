/**
 * Reports: the list of downloads, the most overdue SLA breaches (one page, read through the outstanding-rows
 * index: tens of milliseconds at 100,000 endpoints × 200 patches), and each report rendered as CSV or PDF (the
 * same ones `patchops report` writes).
 */
import type { FastifyPluginAsync } from 'fastify';
import { overview, slaBreaches } from '../../../db/dashboard';
import { ErrorCode } from '../../../domain/errors';
import { collectReport, MAX_BREACH_ROWS, parseReportScope, renderReport } from '../../../reports/report';
import { httpStatusOf } from '../../errors';
import { badge, cell, html, layout, table } from '../html';
import { actionError, type DashboardContext } from '../page';
import { errorPage, sendPage } from '../respond';
import { pageUser, sessionOf } from '../session';

/** SLA breaches listed on the page; the CSV and PDF have the rest. */
const SLA_ROWS = 50;

export const reportsPage: FastifyPluginAsync<DashboardContext> = async (app, o) => {
  app.get('/reports', { preHandler: o.guard.page }, async (req, reply) => {
    const now = o.now();
    const [ov, breaches] = await Promise.all([overview(o.db, { now }), slaBreaches(o.db, { now, limit: SLA_ROWS })]);
    const links = (scopeName: string, label: string) =>
      html`<li>${label}: <a href="/reports/${scopeName}.csv">CSV</a> · <a href="/reports/${scopeName}.pdf">PDF</a></li>`;
    const body = html`<ul data-testid="reports">${links('all', 'Everything')}${links('compliance', 'Compliance by group and OS')}${links('sla', 'SLA breaches')}${links('cycles', 'Cycle results')}</ul>
<p class="muted">The same reports from the command line: <code>patchops report --format csv|pdf --scope all|compliance|sla|cycles --out FILE</code>.</p>
<h2>SLA breaches</h2>
<p data-testid="sla-total">${ov.overdue.toLocaleString('en')} outstanding past their SLA${ov.overdue > breaches.length ? html`; the ${breaches.length} most overdue below, up to ${MAX_BREACH_ROWS.toLocaleString('en')} in the <a href="/reports/sla.csv">CSV</a>` : ''}.</p>
${table(
  ['endpoint', 'patch', 'severity', 'state', 'detected', 'due', 'days overdue'],
  breaches.map((b) => [
    html`<a href="/endpoints/${encodeURIComponent(b.endpointId)}">${b.hostname}</a>`,
    cell(b.patchId),
    html`${badge(b.severity)} ${b.knownExploited ? badge('known exploited', 'kev') : ''}`,
    cell(b.state),
    cell(b.detectedAt.slice(0, 10)),
    cell(b.dueAt.slice(0, 10)),
    cell(b.daysOverdue),
  ]),
  { testid: 'sla-breaches', empty: 'No outstanding patch is past its SLA.' },
)}`;
    return sendPage(reply, layout({ title: 'Reports', user: pageUser(sessionOf(req)), active: '/reports', body }));
  });

  app.get('/reports/:file', { preHandler: o.guard.page }, async (req, reply) => {
    const u = pageUser(sessionOf(req));
    const notFound = (text: string) =>
      sendPage(reply, errorPage(u, 'No such report', text), httpStatusOf(ErrorCode.NotFound));
    const m = /^([a-z]+)\.(csv|pdf)$/.exec((req.params as { file: string }).file);
    if (!m) return notFound('Reports are /reports/<scope>.csv or .pdf; see the Reports page.');
    let scopeName;
    try {
      scopeName = parseReportScope(m[1]);
    } catch (e) {
      return notFound(actionError(o.log, e));
    }
    const format = m[2] as 'csv' | 'pdf';
    const data = await collectReport(o.db, scopeName, { now: o.now() });
    const buf = await renderReport(data, format);
    return reply
      .header('content-type', format === 'csv' ? 'text/csv; charset=utf-8' : 'application/pdf')
      .header(
        'content-disposition',
        `attachment; filename="patchops-${scopeName}-${data.generatedAt.slice(0, 10)}.${format}"`,
      )
      .send(buf);
  });
};
