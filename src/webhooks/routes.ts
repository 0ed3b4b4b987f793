/**
 * /api/v1/webhooks: admins register endpoints (the secret is shown once, at creation), list, pause and delete them, see
 * deliveries and replay one. Mounted as a RouteModule; `authorize` (the API's tokens) says who is acting and
 * refuses with 401/403 by throwing.
 */
import type { FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { Db } from '../db/client';
import type { SecretBox } from '../db/secret-box';
import {
  createWebhookEndpoint,
  deleteWebhookEndpoint,
  listWebhookDeliveries,
  listWebhookEndpoints,
  replayWebhookDelivery,
  updateWebhookEndpoint,
} from '../db/webhooks';
import { CodedError, ErrorCode } from '../domain/errors';
import { WEBHOOK_EVENT_TYPES } from '../domain/webhook-events';
import type { RouteModule } from '../shared/contracts';
import { resolveWebhookTarget, type Resolver } from './target';

export type WebhookScope = 'read' | 'admin';

export interface WebhookRoutesDeps {
  db: Db;
  box: SecretBox;
  /** The acting identity (e.g. `web:alice`); throws UNAUTHORIZED / FORBIDDEN when the caller may not. */
  authorize(req: FastifyRequest, scope: WebhookScope): Promise<string>;
  /** WEBHOOK_ALLOW_PRIVATE: accept loopback, private and link-local targets. */
  allowPrivate?: boolean;
  resolve?: Resolver;
  /** Where the routes are: /api/v1/webhooks on a bare server; '' when mounted inside the API's /api/v1/webhooks scope. */
  base?: string;
}

export const createEndpointBody = z
  .object({
    url: z
      .string()
      .trim()
      .max(2000)
      .refine((v) => URL.canParse(v) && /^https?:$/.test(new URL(v).protocol), { message: 'expected an http(s) URL' }),
    eventTypes: z.array(z.enum(WEBHOOK_EVENT_TYPES)).max(WEBHOOK_EVENT_TYPES.length).default([]),
    description: z.string().trim().max(500).default(''),
  })
  .strict();

export const updateEndpointBody = z
  .object({
    enabled: z.boolean().optional(),
    eventTypes: z.array(z.enum(WEBHOOK_EVENT_TYPES)).max(WEBHOOK_EVENT_TYPES.length).optional(),
  })
  .strict()
  .refine((b) => b.enabled !== undefined || b.eventTypes !== undefined, { message: 'give enabled and/or eventTypes' });

const idParams = z.object({ id: z.string().min(1).max(200) });

export const deliveriesQuery = z.object({
  endpoint: z.string().min(1).max(200).optional(),
  status: z.enum(['pending', 'delivered', 'failed']).optional(),
  limit: z.coerce.number().int().min(1).max(500).default(100),
});

export function webhookRoutes(deps: WebhookRoutesDeps): RouteModule {
  const BASE = deps.base ?? '/api/v1/webhooks';
  return (app) => {
    app.get(BASE, async (req) => {
      await deps.authorize(req, 'read');
      return { endpoints: await listWebhookEndpoints(deps.db) };
    });

    app.post(BASE, async (req, reply) => {
      const by = await deps.authorize(req, 'admin');
      const body = createEndpointBody.parse(req.body);
      // Refused at once when the target is not public, so the admin hears it now rather than from a failed delivery.
      await resolveWebhookTarget(new URL(body.url), {
        allowPrivate: deps.allowPrivate ?? false,
        ...(deps.resolve ? { resolve: deps.resolve } : {}),
      });
      const created = await createWebhookEndpoint(deps.db, deps.box, {
        url: body.url,
        eventTypes: body.eventTypes,
        description: body.description,
        createdBy: by,
      });
      return reply.code(201).send({
        ...created,
        note: 'The secret is shown this once: keep it where the receiver can verify signatures with it.',
      });
    });

    app.patch(`${BASE}/:id`, async (req) => {
      const by = await deps.authorize(req, 'admin');
      const { id } = idParams.parse(req.params);
      const endpoint = await updateWebhookEndpoint(deps.db, id, updateEndpointBody.parse(req.body), by);
      if (!endpoint) throw new CodedError(ErrorCode.NotFound, `no webhook endpoint ${id}: list them with GET ${BASE}`);
      return { endpoint };
    });

    app.delete(`${BASE}/:id`, async (req, reply) => {
      const by = await deps.authorize(req, 'admin');
      const { id } = idParams.parse(req.params);
      if (!(await deleteWebhookEndpoint(deps.db, id, by)))
        throw new CodedError(ErrorCode.NotFound, `no webhook endpoint ${id}: list them with GET ${BASE}`);
      return reply.code(204).send();
    });

    app.get(`${BASE}/deliveries`, async (req) => {
      await deps.authorize(req, 'read');
      const q = deliveriesQuery.parse(req.query);
      return {
        deliveries: await listWebhookDeliveries(deps.db, { endpointId: q.endpoint, status: q.status, limit: q.limit }),
      };
    });

    app.post(`${BASE}/deliveries/:id/replay`, async (req, reply) => {
      const by = await deps.authorize(req, 'admin');
      const { id } = idParams.parse(req.params);
      const delivery = await replayWebhookDelivery(deps.db, id, by);
      if (!delivery)
        throw new CodedError(ErrorCode.NotFound, `no webhook delivery ${id}: list them with GET ${BASE}/deliveries`);
      return reply.code(202).send({ delivery });
    });
  };
}
