/**
 * The overview: compliance cards, the charts and the by-group / by-OS tables. A visit also records a trend
 * point (at most hourly). With no endpoints enrolled it is the first-run page instead (./first-run.ts).
 */
import type { FastifyPluginAsync } from 'fastify';
import { complianceTrend, overview, takeComplianceSnapshot } from '../../../db/dashboard';
import { renderChartSvg } from '../../../reports/charts';
import { complianceByGroupChart, complianceByOsChart, overdueChart, severityChart } from '../../../reports/report';
import { cell, html, layout, qs, raw, table } from '../html';
import { flashOf, type DashboardContext } from '../page';
import { sendPage } from '../respond';
import { pageUser, sessionOf } from '../session';
import { firstRunBody } from './first-run';
import { startForms } from './start-actions';

const chart = (spec: Parameters<typeof renderChartSvg>[0]) => raw(renderChartSvg(spec));

export const overviewPage: FastifyPluginAsync<DashboardContext> = async (app, o) => {
  app.get('/', { preHandler: o.guard.page }, async (req, reply) => {
    const ov = await overview(o.db, { now: o.now() });
    await takeComplianceSnapshot(o.db, { now: o.now(), overview: ov }).catch((err: unknown) =>
      o.log.warn({ err }, 'compliance snapshot failed'),
    );
    const trend = await complianceTrend(o.db, { limit: 30 });
    const u = pageUser(sessionOf(req));
    if (ov.endpoints === 0) {
      const body = firstRunBody({
        serverUrl: o.publicUrl ?? `${req.protocol}://${req.host}`,
        envEnrollSecret: o.envEnrollSecret ?? false,
      });
      return sendPage(reply, layout({ title: 'Welcome to patchops', user: u, active: '/', flash: flashOf(req), body }));
    }
    const totalOutstanding = Object.values(ov.bySeverity).reduce((a, b) => a + b, 0);
    const body = html`
<div class="cards" data-testid="overview-cards">
  <div class="card"><div class="n" data-testid="compliance-pct">${ov.compliancePct}%</div>compliant (${ov.compliant} of ${ov.endpoints} endpoints)</div>
  <div class="card"><div class="n" data-testid="outstanding">${totalOutstanding}</div>missing patches (endpoint × patch)</div>
  <div class="card"><div class="n" data-testid="known-exploited">${ov.knownExploited}</div>known exploited</div>
  <div class="card"><div class="n" data-testid="overdue">${ov.overdue}</div>overdue vs SLA</div>
  <div class="card"><div class="n" data-testid="failed">${ov.failed}</div>failed installs</div>
</div>
${startForms(o, u)}
<div class="charts">
${chart(complianceByGroupChart(ov))}
${chart(complianceByOsChart(ov))}
${chart(severityChart(ov))}
${chart(overdueChart(ov))}
${chart({ kind: 'line', title: 'Compliance trend', labels: trend.map((t) => t.at.slice(5, 16).replace('T', ' ')), series: [{ name: 'compliant %', values: trend.map((t) => t.compliancePct) }], unit: '%' })}
</div>
<h2>By group</h2>
${table(
  ['group', 'endpoints', 'compliant', '%'],
  ov.byGroup.map((g) => [
    html`<a href="/endpoints${qs({ group: g.key })}">${g.key}</a>`,
    cell(g.endpoints),
    cell(g.compliant),
    cell(`${g.pct}%`),
  ]),
  { testid: 'by-group', empty: 'No groups yet.' },
)}
<h2>By OS</h2>
${table(
  ['OS', 'endpoints', 'compliant', '%'],
  ov.byOs.map((g) => [
    html`<a href="/endpoints${qs({ os: g.key })}">${g.key}</a>`,
    cell(g.endpoints),
    cell(g.compliant),
    cell(`${g.pct}%`),
  ]),
  { testid: 'by-os', empty: 'No endpoints enrolled yet.' },
)}`;
    return sendPage(reply, layout({ title: 'Overview', user: u, active: '/', flash: flashOf(req), body }));
  });
};
