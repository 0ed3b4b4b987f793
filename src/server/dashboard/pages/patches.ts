/** The patch catalog with where each patch is missing or failed. */
import type { FastifyPluginAsync } from 'fastify';
import { listPatches } from '../../../db/dashboard';
import { badge, cell, html, layout, raw, table } from '../html';
import { type DashboardContext } from '../page';
import { sendPage } from '../respond';
import { pageUser, sessionOf } from '../session';

const SEVERITIES = ['critical', 'important', 'moderate', 'low', 'unspecified'];

export const patchesPage: FastifyPluginAsync<DashboardContext> = async (app, o) => {
  app.get('/patches', { preHandler: o.guard.page }, async (req, reply) => {
    const q = req.query as Record<string, string | undefined>;
    const list = await listPatches(o.db, { q: q.q, severity: q.severity });
    const body = html`<form class="filters" method="get" action="/patches"><label>Search <input name="q" value="${q.q ?? ''}" placeholder="id, title or CVE"></label>
<label>Severity <select name="severity"><option value="">any</option>${SEVERITIES.map((v) => html`<option${q.severity === v ? raw(' selected') : ''}>${v}</option>`)}</select></label><button type="submit">Filter</button></form>
${table(
  ['patch', 'title', 'type', 'severity', 'CVSS', 'CVEs', 'OS', 'missing on', 'failed on', 'superseded by'],
  list.map((p) => [
    cell(p.id),
    cell(p.title),
    cell(p.type),
    html`${badge(p.severity)} ${p.knownExploited ? badge('known exploited', 'kev') : ''}`,
    cell(p.cvss ?? ''),
    cell(p.cves.join(', ')),
    cell(p.osFamily),
    cell(p.missing),
    cell(p.failed),
    cell(p.supersededBy ?? ''),
  ]),
  { testid: 'patches', empty: 'No patches in the catalog match.' },
)}`;
    return sendPage(reply, layout({ title: 'Patches', user: pageUser(sessionOf(req)), active: '/patches', body }));
  });
};
