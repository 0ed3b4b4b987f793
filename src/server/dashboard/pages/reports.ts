/** Reports: the list of downloads, and each report rendered as CSV or PDF (the same ones `patchops report` writes). */
import type { FastifyPluginAsync } from 'fastify';
import { ErrorCode } from '../../../domain/errors';
import { collectReport, parseReportScope, renderReport } from '../../../reports/report';
import { httpStatusOf } from '../../errors';
import { html, layout } from '../html';
import { actionError, type DashboardContext } from '../page';
import { errorPage, sendPage } from '../respond';
import { pageUser, sessionOf } from '../session';

export const reportsPage: FastifyPluginAsync<DashboardContext> = async (app, o) => {
  app.get('/reports', { preHandler: o.guard.page }, async (req, reply) => {
    const links = (scopeName: string, label: string) =>
      html`<li>${label}: <a href="/reports/${scopeName}.csv">CSV</a> · <a href="/reports/${scopeName}.pdf">PDF</a></li>`;
    const body = html`<ul data-testid="reports">${links('all', 'Everything')}${links('compliance', 'Compliance by group and OS')}${links('sla', 'SLA breaches')}${links('cycles', 'Cycle results')}</ul>
<p class="muted">The same reports from the command line: <code>patchops report --format csv|pdf --scope all|compliance|sla|cycles --out FILE</code>.</p>`;
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
