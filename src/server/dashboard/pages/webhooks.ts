/**
 * Outbound webhooks: admins see the registered endpoints and the latest deliveries (status, attempts, the last
 * answer), replay a delivery and remove an endpoint. Registering one (the URL is checked against private
 * addresses, the secret shown once) is done through the API: POST /api/v1/webhooks (docs/webhooks.md).
 */
import type { FastifyPluginAsync } from 'fastify';
import {
  deleteWebhookEndpoint,
  listWebhookDeliveries,
  listWebhookEndpoints,
  replayWebhookDelivery,
} from '../../../db/webhooks';
import { CodedError, ErrorCode } from '../../../domain/errors';
import { roleAtLeast } from '../auth';
import { cell, csrfField, html, layout, table, when } from '../html';
import { actionError, back, flashOf, type DashboardContext } from '../page';
import { sendPage } from '../respond';
import { pageUser, sessionOf } from '../session';

const RECENT_DELIVERIES = 50;

export const webhooksPage: FastifyPluginAsync<DashboardContext> = async (app, o) => {
  app.get('/webhooks', { preHandler: o.guard.page }, async (req, reply) => {
    const s = sessionOf(req);
    const u = pageUser(s);
    if (!roleAtLeast(s.role, 'admin')) {
      const body = html`<p data-testid="webhooks-refused">Webhooks (receiver URLs and what was sent to them) are shown to admins only.</p>`;
      return sendPage(reply, layout({ title: 'Webhooks', user: u, active: '/webhooks', body }), 403);
    }
    const [endpoints, deliveries] = await Promise.all([
      listWebhookEndpoints(o.db),
      listWebhookDeliveries(o.db, { limit: RECENT_DELIVERIES }),
    ]);
    const urlOf = new Map(endpoints.map((e) => [e.id, e.url]));
    const body = html`<p>Register a receiver with the API (<code>POST /api/v1/webhooks</code>, docs/webhooks.md): its secret is shown once, there.</p>
<h2>Endpoints</h2>
${table(
  ['url', 'events', 'enabled', 'by', 'since', ''],
  endpoints.map((e) => [
    cell(e.url),
    cell(e.eventTypes.length ? e.eventTypes.join(', ') : 'all'),
    cell(e.enabled ? 'yes' : 'no'),
    cell(e.createdBy),
    when(e.createdAt),
    html`<form method="post" action="/webhooks/${encodeURIComponent(e.id)}/delete" class="inline" data-confirm="Remove this endpoint and its deliveries?">${csrfField(u)}<button type="submit">Remove</button></form>`,
  ]),
  { testid: 'webhook-endpoints', empty: 'No webhook endpoints.' },
)}
<h2>Latest deliveries</h2>
${table(
  ['event', 'to', 'status', 'attempts', 'last answer', 'next attempt', ''],
  deliveries.map((d) => [
    cell(d.eventType),
    cell(urlOf.get(d.endpointId) ?? d.endpointId),
    cell(d.status),
    cell(String(d.attempts)),
    cell(d.lastHttpStatus !== null ? `HTTP ${d.lastHttpStatus}` : (d.lastError ?? '')),
    d.status === 'pending' ? when(d.nextAttemptAt) : cell(''),
    html`<form method="post" action="/webhooks/deliveries/${encodeURIComponent(d.id)}/replay" class="inline">${csrfField(u)}<button type="submit">Replay</button></form>`,
  ]),
  { testid: 'webhook-deliveries', empty: 'Nothing delivered yet.' },
)}`;
    return sendPage(reply, layout({ title: 'Webhooks', user: u, active: '/webhooks', flash: flashOf(req), body }));
  });

  app.post(
    '/webhooks/deliveries/:id/replay',
    { preHandler: o.guard.action('admin', 'replay a webhook delivery') },
    async (req, reply) => {
      const { id } = req.params as { id: string };
      try {
        if (!(await replayWebhookDelivery(o.db, id, sessionOf(req).identity)))
          throw new CodedError(ErrorCode.NotFound, `There is no delivery ${id}.`);
        return back(reply, '/webhooks', { ok: 'The delivery is sent again now.' });
      } catch (e) {
        return back(reply, '/webhooks', { error: actionError(o.log, e) });
      }
    },
  );

  app.post(
    '/webhooks/:id/delete',
    { preHandler: o.guard.action('admin', 'remove a webhook endpoint') },
    async (req, reply) => {
      const { id } = req.params as { id: string };
      try {
        if (!(await deleteWebhookEndpoint(o.db, id, sessionOf(req).identity)))
          throw new CodedError(ErrorCode.NotFound, `There is no webhook endpoint ${id}.`);
        return back(reply, '/webhooks', { ok: 'Endpoint removed.' });
      } catch (e) {
        return back(reply, '/webhooks', { error: actionError(o.log, e) });
      }
    },
  );
};
