/** The endpoint list (search, filters, paging) and one endpoint's patches. */
import type { FastifyPluginAsync } from 'fastify';
import { endpointDetail, facets, listEndpoints } from '../../../db/dashboard';
import { ErrorCode } from '../../../domain/errors';
import { httpStatusOf } from '../../errors';
import { clampedInt } from '../../input';
import { badge, cell, html, layout, qs, raw, table, when } from '../html';
import { type DashboardContext } from '../page';
import { errorPage, sendPage } from '../respond';
import { pageUser, sessionOf } from '../session';

const PAGE_SIZE = 50;

export const endpointsPage: FastifyPluginAsync<DashboardContext> = async (app, o) => {
  app.get('/endpoints', { preHandler: o.guard.page }, async (req, reply) => {
    const q = req.query as Record<string, string | undefined>;
    const page = clampedInt(q.page, { min: 0, max: 100_000, fallback: 0 });
    const f = { q: q.q, os: q.os, group: q.group, compliance: q.compliance };
    const [{ items, total }, fc] = await Promise.all([
      listEndpoints(o.db, { ...f, limit: PAGE_SIZE, offset: page * PAGE_SIZE }),
      facets(o.db),
    ]);
    const opt = (v: string, label: string, cur: string | undefined) =>
      html`<option value="${v}"${cur === v ? raw(' selected') : ''}>${label}</option>`;
    const body = html`<form class="filters" method="get" action="/endpoints">
<label>Search <input name="q" value="${q.q ?? ''}" placeholder="host name or id"></label>
<label>OS <select name="os">${opt('', 'any', q.os)}${fc.osFamilies.map((x) => opt(x, x, q.os))}</select></label>
<label>Group <select name="group">${opt('', 'any', q.group)}${fc.groups.map((x) => opt(x, x, q.group))}</select></label>
<label>Compliance <select name="compliance">${opt('', 'any', q.compliance)}${opt('noncompliant', 'missing patches', q.compliance)}${opt('compliant', 'compliant', q.compliance)}</select></label>
<button type="submit">Filter</button></form>
<p class="muted">${total} endpoints${total > PAGE_SIZE ? `, page ${page + 1} of ${Math.ceil(total / PAGE_SIZE)}` : ''}</p>
${table(
  ['host', 'OS', 'status', 'missing', 'failed', 'pending reboot', 'last seen'],
  items.map((e) => [
    html`<a href="/endpoints/${encodeURIComponent(e.id)}">${e.hostname}</a>`,
    cell(`${e.osFamily} ${e.osName}`),
    cell(e.status),
    cell(e.outstanding - e.failed),
    cell(e.failed),
    cell(e.pendingReboot ? 'yes' : ''),
    when(e.lastSeenAt),
  ]),
  { testid: 'endpoints', empty: 'No endpoints match.' },
)}
${page > 0 ? html`<a href="/endpoints${qs({ ...f, page: page - 1 })}">← previous</a> ` : ''}${(page + 1) * PAGE_SIZE < total ? html`<a href="/endpoints${qs({ ...f, page: page + 1 })}">next →</a>` : ''}`;
    return sendPage(reply, layout({ title: 'Endpoints', user: pageUser(sessionOf(req)), active: '/endpoints', body }));
  });

  app.get('/endpoints/:id', { preHandler: o.guard.page }, async (req, reply) => {
    const u = pageUser(sessionOf(req));
    const { id } = req.params as { id: string };
    const e = await endpointDetail(o.db, id);
    if (!e)
      return sendPage(
        reply,
        errorPage(u, 'Endpoint not found', `There is no endpoint "${id}". Search for it on the Endpoints page.`),
        httpStatusOf(ErrorCode.NotFound),
      );
    const byState = (states: string[]) => e.patches.filter((p) => states.includes(p.state));
    const rows = (list: typeof e.patches, withError: boolean) =>
      list.map((p) => [
        html`<a href="/patches${qs({ q: p.patchId })}">${p.patchId}</a>`,
        cell(p.title),
        badge(p.severity),
        cell(p.knownExploited ? badge('known exploited', 'kev') : ''),
        when(p.detectedAt),
        withError ? cell(p.lastError ?? '') : when(p.installedAt),
      ]);
    const body = html`<dl class="cards" data-testid="endpoint-facts">
<div class="card">OS<div>${e.osFamily} ${e.osName} ${e.osVersion}</div></div>
<div class="card">Status<div>${e.status}</div></div>
<div class="card">Last seen<div>${when(e.lastSeenAt)}</div></div>
<div class="card">Last scan<div>${when(e.lastScanAt)}</div></div>
<div class="card">Pending reboot<div data-testid="pending-reboot">${e.pendingReboot ? 'yes' : 'no'}</div></div>
<div class="card">Groups<div>${e.groups.join(', ') || '—'}</div></div></dl>
<h2>Missing (${byState(['missing']).length})</h2>${table(['patch', 'title', 'severity', '', 'detected', 'installed'], rows(byState(['missing']), false), { testid: 'missing', empty: 'None missing.' })}
<h2>Failed (${byState(['failed']).length})</h2>${table(['patch', 'title', 'severity', '', 'detected', 'reason'], rows(byState(['failed']), true), { testid: 'failed', empty: 'No failures.' })}
<h2>Installed (${byState(['installed', 'pending_reboot']).length})</h2>${table(['patch', 'title', 'severity', '', 'detected', 'installed'], rows(byState(['installed', 'pending_reboot']), false), { testid: 'installed', empty: 'None installed yet.' })}`;
    return sendPage(reply, layout({ title: e.hostname, user: u, active: '/endpoints', body }));
  });
};
