/** Starting a scan or a cycle (admins): the forms the overview and the cycles list show, and their POST routes. */
import type { FastifyPluginAsync } from 'fastify';
import type { Role } from '../../../db/identities';
import type { CycleScope } from '../../../domain/cycle';
import { roleAtLeast } from '../auth';
import { csrfField, html, type Html, type PageUser } from '../html';
import { actionError, back, NO_CYCLE_SERVICE, str, type DashboardContext } from '../page';
import { formOf, sessionOf, type Form } from '../session';

/** The start forms for an admin; nothing for other roles. */
export function startForms(o: Pick<DashboardContext, 'cycles'>, u: PageUser): Html {
  if (!roleAtLeast(u.role as Role, 'admin')) return html``;
  if (!o.cycles) return html`<p class="muted" data-testid="actions-unavailable">${NO_CYCLE_SERVICE}</p>`;
  return html`<div class="actions">
<form method="post" action="/actions/scan" class="inline">${csrfField(u)}<input name="groups" placeholder="groups (comma-separated, empty = all)"><button type="submit">Start a scan</button></form>
<form method="post" action="/actions/cycle" class="inline" data-confirm="Start a patch cycle?">${csrfField(u)}<input name="policy" placeholder="policy" value="default" required><input name="groups" placeholder="groups (comma-separated)"><label class="inline"><span><input type="checkbox" name="emergency" value="1"> emergency</span></label><button type="submit" data-testid="start-cycle">Start a cycle</button></form>
</div>`;
}

const scopeFromForm = (form: Form): CycleScope => {
  const groups = str(form.groups)
    .split(',')
    .map((g) => g.trim())
    .filter(Boolean);
  return groups.length ? { groups } : {};
};

export const startActions: FastifyPluginAsync<DashboardContext> = async (app, o) => {
  app.post('/actions/scan', { preHandler: o.guard.action('admin', 'start a scan') }, async (req, reply) => {
    if (!o.cycles) return back(reply, '/', { error: NO_CYCLE_SERVICE });
    try {
      const r = await o.cycles.scan(scopeFromForm(formOf(req)), sessionOf(req).identity);
      return back(reply, '/', { ok: `Scan started (${r.workflowId}).` });
    } catch (e) {
      return back(reply, '/', { error: actionError(o.log, e) });
    }
  });

  app.post('/actions/cycle', { preHandler: o.guard.action('admin', 'start a cycle') }, async (req, reply) => {
    if (!o.cycles) return back(reply, '/', { error: NO_CYCLE_SERVICE });
    const form = formOf(req);
    try {
      const r = await o.cycles.start({
        policyName: str(form.policy) || 'default',
        scope: scopeFromForm(form),
        requestedBy: sessionOf(req).identity,
        emergency: form.emergency === '1',
      });
      return back(reply, `/cycles/${encodeURIComponent(r.cycleId)}`, { ok: `Cycle ${r.cycleId} started.` });
    } catch (e) {
      return back(reply, '/', { error: actionError(o.log, e) });
    }
  });
};
