/** The dashboard's webhooks page over HTTP: admins see endpoints and deliveries and replay one; a viewer is refused. */
import type { FastifyInstance } from 'fastify';
import { eq } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../logging';
import { createTestDatabase, type TestDatabase } from '../../../test/helpers/db';
import { listenOnLoopback } from '../../../test/helpers/listen';
import { HttpClient as Client } from '../../../test/browser/http-client';
import { createWebhookEndpoint, getWebhookDelivery } from '../../db/webhooks';
import { webhookDeliveries } from '../../db/schema/index';
import { SecretBox } from '../../db/secret-box';
import { buildServer } from '../app';
import { addWebUser } from './auth';
import { dashboardRoutes } from './index';

describe('dashboard webhooks page', () => {
  let t: TestDatabase;
  let app: FastifyInstance;
  let base: string;
  let deliveryId: string;

  beforeAll(async () => {
    t = await createTestDatabase();
    await addWebUser(t.db, { username: 'ada', password: 'ada-password-1', role: 'admin', by: 'test' });
    await addWebUser(t.db, { username: 'vic', password: 'vic-password-1', role: 'viewer', by: 'test' });
    const { endpoint } = await createWebhookEndpoint(t.db, SecretBox.ephemeral(), {
      url: 'https://soar.example.com/hooks/patchops',
      eventTypes: ['cycle.completed'],
      createdBy: 'web:ada',
    });
    deliveryId = 'whd_page_1';
    await t.db.insert(webhookDeliveries).values({
      id: deliveryId,
      endpointId: endpoint.id,
      eventId: 'evt-1',
      eventType: 'cycle.completed',
      payload: { cycleId: 'c-1' },
      status: 'failed',
      attempts: 8,
      lastHttpStatus: 500,
    });
    app = await buildServer({
      logger: createLogger('silent'),
      health: [],
      routes: [dashboardRoutes({ db: t.db, logger: createLogger('silent') })],
    });
    base = await listenOnLoopback(app);
  });
  afterAll(async () => {
    await app?.close();
    await t?.close();
  });

  it('shows an admin the endpoints and the failed delivery, and replays it (pending again, attempts reset)', async () => {
    const c = new Client(base);
    await c.login('ada', 'ada-password-1');
    const page = await c.req('/webhooks');
    expect(page.status).toBe(200);
    expect(page.text).toContain('https://soar.example.com/hooks/patchops');
    expect(page.text).toContain('HTTP 500');
    expect(page.text).toMatch(/data-testid="webhook-deliveries"[\s\S]*cycle\.completed[\s\S]*failed/);
    const r = await c.req(`/webhooks/deliveries/${deliveryId}/replay`, { form: { _csrf: await c.csrf('/webhooks') } });
    expect(r.status).toBe(303);
    expect(await getWebhookDelivery(t.db, deliveryId)).toMatchObject({ status: 'pending', attempts: 0 });
  });

  it('refuses a viewer the page and the replay', async () => {
    const c = new Client(base);
    await c.login('vic', 'vic-password-1');
    expect((await c.req('/webhooks')).status).toBe(403);
    await t.db.update(webhookDeliveries).set({ status: 'failed' }).where(eq(webhookDeliveries.id, deliveryId));
    const r = await c.req(`/webhooks/deliveries/${deliveryId}/replay`, { form: { _csrf: await c.csrf('/') } });
    expect(r.status).toBe(403);
    expect((await getWebhookDelivery(t.db, deliveryId))?.status).toBe('failed');
  });
});
