/** Patch exceptions: everyone sees the active ones; admins add and remove them (audited by the db layer). */
import type { FastifyPluginAsync } from 'fastify';
import { addException, listExceptions, removeException } from '../../../db/cycles';
import { CodedError, ErrorCode } from '../../../domain/errors';
import { dateParam } from '../../input';
import { roleAtLeast } from '../auth';
import { cell, csrfField, html, layout, table, when } from '../html';
import { actionError, back, flashOf, str, type DashboardContext } from '../page';
import { sendPage } from '../respond';
import { formOf, pageUser, sessionOf } from '../session';

export const exceptionsPage: FastifyPluginAsync<DashboardContext> = async (app, o) => {
  app.get('/exceptions', { preHandler: o.guard.page }, async (req, reply) => {
    const s = sessionOf(req);
    const u = pageUser(s);
    const list = await listExceptions(o.db, { now: o.now() });
    const admin = roleAtLeast(s.role, 'admin');
    const body = html`${
      admin
        ? html`<h2>Add an exception</h2><form class="stack" method="post" action="/exceptions" data-testid="exception-form">${csrfField(u)}
<label>Patch <input name="patchId" placeholder="KB5034441"></label><label>Endpoint <input name="endpointId" placeholder="endpoint id"></label><label>Group <input name="groupName" placeholder="group"></label>
<label>Reason <input name="reason" required></label><label>Expires <input name="expiresAt" type="date" required></label><button type="submit">Add</button></form>`
        : ''
    }
<h2>Active exceptions</h2>
${table(
  ['code', 'patch', 'endpoint', 'group', 'reason', 'expires', 'by', ''],
  list.map((e) => [
    cell(e.code),
    cell(e.patchId ?? ''),
    cell(e.endpointId ?? ''),
    cell(e.groupName ?? ''),
    cell(e.reason),
    when(e.expiresAt),
    cell(e.createdBy),
    admin
      ? html`<form method="post" action="/exceptions/${encodeURIComponent(e.code)}/remove" class="inline" data-confirm="Remove ${e.code}?">${csrfField(u)}<button type="submit">Remove</button></form>`
      : cell(''),
  ]),
  { testid: 'exceptions', empty: 'No active exceptions.' },
)}`;
    return sendPage(reply, layout({ title: 'Exceptions', user: u, active: '/exceptions', flash: flashOf(req), body }));
  });

  app.post('/exceptions', { preHandler: o.guard.action('admin', 'add an exception') }, async (req, reply) => {
    const f = formOf(req);
    try {
      const expires = /^\d{4}-\d{2}-\d{2}$/.test(str(f.expiresAt))
        ? dateParam(str(f.expiresAt), 'The expiry', 'end')
        : undefined;
      if (!expires) throw new CodedError(ErrorCode.InvalidInput, 'The expiry is not a date: pick one (YYYY-MM-DD).');
      if (expires <= o.now())
        throw new CodedError(ErrorCode.InvalidInput, 'The expiry is in the past: pick a later date.');
      const e = await addException(o.db, {
        patchId: str(f.patchId) || undefined,
        endpointId: str(f.endpointId) || undefined,
        groupName: str(f.groupName) || undefined,
        reason: str(f.reason),
        expiresAt: expires,
        by: sessionOf(req).identity,
      });
      return back(reply, '/exceptions', { ok: `Exception ${e.code} added.` });
    } catch (e) {
      return back(reply, '/exceptions', { error: actionError(o.log, e) });
    }
  });

  app.post(
    '/exceptions/:code/remove',
    { preHandler: o.guard.action('admin', 'remove an exception') },
    async (req, reply) => {
      const { code } = req.params as { code: string };
      try {
        await removeException(o.db, code, sessionOf(req).identity);
        return back(reply, '/exceptions', { ok: `Exception ${code} removed.` });
      } catch (e) {
        return back(reply, '/exceptions', { error: actionError(o.log, e) });
      }
    },
  );
};
