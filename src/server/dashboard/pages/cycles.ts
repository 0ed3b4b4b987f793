/**
 * Cycles: the list, one cycle (stored state, and the workflow's live status while it runs) and the cycle
 * actions (approve and reject for approvers; pause, resume and cancel for admins), through the CycleService.
 */
import type { FastifyPluginAsync } from 'fastify';
import { cycleDetail, listCycles } from '../../../db/dashboard';
import type { Role } from '../../../db/identities';
import { type CycleStage, TERMINAL_STAGES } from '../../../domain/cycle';
import { CodedError, ErrorCode } from '../../../domain/errors';
import type { CycleService } from '../../../services/cycle-service';
import { httpStatusOf } from '../../errors';
import { roleAtLeast, type WebSession } from '../auth';
import { badge, cell, csrfField, html, layout, raw, table, when, type Html } from '../html';
import { actionError, back, flashOf, NO_CYCLE_SERVICE, str, type DashboardContext } from '../page';
import { errorPage, sendPage } from '../respond';
import { formOf, pageUser, sessionOf, type Form } from '../session';
import { startForms } from './start-actions';

type LiveStatus = Awaited<ReturnType<CycleService['status']>>;

interface CycleAction {
  path: string;
  needed: Role;
  what: string;
  run(svc: CycleService, id: string, s: WebSession, form: Form): Promise<string>;
}

const ACTIONS: CycleAction[] = [
  {
    path: 'approve',
    needed: 'approver',
    what: 'approve a cycle',
    async run(svc, id, s) {
      const r = await svc.approve(id, { identity: s.identity, channel: 'web' });
      return `Approved (${r.approvalsReceived} of ${r.approvalsNeeded}; the cycle is ${r.outcome}).`;
    },
  },
  {
    path: 'reject',
    needed: 'approver',
    what: 'reject a cycle',
    async run(svc, id, s, form) {
      const reason = str(form.reason);
      if (!reason) throw new CodedError(ErrorCode.InvalidInput, 'A rejection needs a reason.');
      await svc.reject(id, { identity: s.identity, channel: 'web', reason });
      return 'Rejected.';
    },
  },
  {
    path: 'pause',
    needed: 'admin',
    what: 'pause a cycle',
    async run(svc, id, s, form) {
      await svc.pause(id, s.identity, str(form.reason) || undefined);
      return 'Pause requested.';
    },
  },
  {
    path: 'resume',
    needed: 'admin',
    what: 'resume a cycle',
    async run(svc, id, s) {
      await svc.resume(id, s.identity);
      return 'Resume requested.';
    },
  },
  {
    path: 'cancel',
    needed: 'admin',
    what: 'cancel a cycle',
    async run(svc, id, s, form) {
      await svc.cancel(id, s.identity, str(form.reason) || undefined);
      return 'Cancel requested.';
    },
  },
];

export const cyclesPage: FastifyPluginAsync<DashboardContext> = async (app, o) => {
  app.get('/cycles', { preHandler: o.guard.page }, async (req, reply) => {
    const list = await listCycles(o.db);
    const u = pageUser(sessionOf(req));
    const body = html`${startForms(o, u)}${table(
      ['cycle', 'policy', 'stage', 'change', 'requested by', 'started', 'updated'],
      list.map((c) => [
        html`<a href="/cycles/${encodeURIComponent(c.cycleId)}">${c.cycleId}</a>${c.emergency ? html` ${badge('emergency', 'critical')}` : ''}`,
        cell(c.policyName),
        badge(c.stage),
        cell(c.changeNumber ?? ''),
        cell(c.requestedBy),
        when(c.createdAt),
        when(c.updatedAt),
      ]),
      { testid: 'cycles', empty: 'No cycles yet.' },
    )}`;
    return sendPage(reply, layout({ title: 'Cycles', user: u, active: '/cycles', flash: flashOf(req), body }));
  });

  app.get('/cycles/:id', { preHandler: o.guard.page }, async (req, reply) => {
    const s = sessionOf(req);
    const u = pageUser(s);
    const { id } = req.params as { id: string };
    const c = await cycleDetail(o.db, id);
    if (!c)
      return sendPage(
        reply,
        errorPage(u, 'Cycle not found', `There is no cycle "${id}". See the Cycles page.`),
        httpStatusOf(ErrorCode.NotFound),
      );
    let live: LiveStatus | null = null;
    if (o.cycles && !TERMINAL_STAGES.includes(c.stage as CycleStage)) {
      live = await o.cycles.status(id).catch((err: unknown) => {
        o.log.debug({ err, cycleId: id }, 'live status unavailable');
        return null;
      });
    }
    const link = o.workflowUrl(c.workflowId);
    const terminal = TERMINAL_STAGES.includes((live?.stage ?? c.stage) as CycleStage);
    const act = (path: string, label: string, extra: Html = html``, confirm?: string) =>
      html`<form method="post" action="/cycles/${encodeURIComponent(id)}/${path}" class="inline"${confirm ? raw(` data-confirm="${confirm}"`) : ''}>${csrfField(u)}${extra}<button type="submit" data-testid="${`action-${path}`}">${label}</button></form>`;
    const actions = !o.cycles
      ? html`<p class="muted" data-testid="actions-unavailable">${NO_CYCLE_SERVICE}</p>`
      : terminal
        ? html``
        : html`<div class="actions">
${roleAtLeast(s.role, 'approver') ? html`${act('approve', 'Approve')}${act('reject', 'Reject', html`<input name="reason" placeholder="reason (required)" required>`)}` : ''}
${roleAtLeast(s.role, 'admin') ? html`${live?.paused ? act('resume', 'Resume') : act('pause', 'Pause', html`<input name="reason" placeholder="reason">`)}${act('cancel', 'Cancel', html`<input name="reason" placeholder="reason">`, 'Cancel this cycle?')}` : ''}
${s.role === 'viewer' ? html`<p class="muted">Read-only: your role is viewer.</p>` : ''}</div>`;
    const waves = live?.waves.length
      ? live.waves.map((w) => [
          cell(`${w.index} ${w.name}`),
          cell(w.state),
          cell(w.total),
          cell(w.succeeded),
          cell(w.failed),
          cell(w.unreachable),
          cell(w.pending),
        ])
      : c.waves.map((w) => [
          cell(w.wave === 0 ? '0 (test ring)' : String(w.wave)),
          cell(''),
          cell(w.total),
          cell(w.succeeded),
          cell(w.failed),
          cell(w.unreachable),
          cell(w.pending),
        ]);
    const body = html`<div class="cards">
<div class="card">Stage<div data-testid="cycle-stage">${badge(live?.stage ?? c.stage)}${live?.paused ? html` ${badge('paused', 'failed')}` : ''}</div></div>
<div class="card">Policy<div>${c.policyName}${c.emergency ? ' (emergency)' : ''}</div></div>
<div class="card">Change<div data-testid="change-number">${live?.changeNumber ?? c.changeNumber ?? '—'}</div></div>
<div class="card">Requested by<div>${c.requestedBy}</div></div>
<div class="card">Workflow<div>${link ? html`<a href="${link}" data-testid="temporal-link">${c.workflowId}</a>` : c.workflowId}</div></div>
</div>
${actions}
${!terminal ? html`<span data-refresh="15"></span>` : ''}
<h2>Stage timeline</h2>
${c.timeline.length ? html`<ol class="timeline" data-testid="timeline">${c.timeline.map((t) => html`<li>${when(t.at)} ${badge(t.stage)} ${Object.keys(t.detail).length ? html`<span class="muted">${JSON.stringify(t.detail)}</span>` : ''}</li>`)}</ol>` : html`<p class="empty">No stage events yet.</p>`}
<h2>Approvals</h2>
${table(
  ['who', 'decision', 'where', 'when', 'reason'],
  c.approvals.map((a) => [cell(a.identity), badge(a.decision), cell(a.channel), when(a.at), cell(a.reason ?? '')]),
  {
    testid: 'approvals',
    empty: live ? `No votes yet (${live.approvals.received} of ${live.approvals.needed} needed).` : 'No votes.',
  },
)}
<h2>Waves</h2>
${table(['wave', 'state', 'total', 'succeeded', 'failed', 'unreachable', 'pending'], waves, { testid: 'waves', empty: 'No waves have run yet.' })}
<h2>Failures</h2>
${table(
  ['endpoint', 'wave', 'state', 'reason', 'when'],
  c.failures.map((f) => [
    html`<a href="/endpoints/${encodeURIComponent(f.endpointId)}">${f.hostname}</a>`,
    cell(f.wave ?? ''),
    badge(f.state),
    cell(f.error ?? ''),
    when(f.finishedAt),
  ]),
  { testid: 'failures', empty: 'No failures.' },
)}
${live?.reasons.length ? html`<h2>Decisions</h2><ul>${live.reasons.map((r) => html`<li>${r}</li>`)}</ul>` : ''}
${c.reason ? html`<p>Reason: ${c.reason}</p>` : ''}`;
    return sendPage(
      reply,
      layout({ title: `Cycle ${c.cycleId}`, user: u, active: '/cycles', flash: flashOf(req), body }),
    );
  });

  for (const a of ACTIONS) {
    app.post(`/cycles/:id/${a.path}`, { preHandler: o.guard.action(a.needed, a.what) }, async (req, reply) => {
      const { id } = req.params as { id: string };
      const to = `/cycles/${encodeURIComponent(id)}`;
      if (!o.cycles) return back(reply, to, { error: NO_CYCLE_SERVICE });
      try {
        return back(reply, to, { ok: await a.run(o.cycles, id, sessionOf(req), formOf(req)) });
      } catch (e) {
        return back(reply, to, { error: actionError(o.log, e) });
      }
    });
  }
};
