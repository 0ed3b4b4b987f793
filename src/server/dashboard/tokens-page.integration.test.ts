/**
 * The dashboard's API tokens page over HTTP, with the API mounted on the same server: a user makes a token (shown
 * once), it works as a Bearer token at /api/v1/whoami, revoking it makes that 401; a viewer cannot make an admin
 * token; nobody sees or revokes another user's tokens.
 */
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../../test/helpers/db';
import { listenOnLoopback } from '../../../test/helpers/listen';
import { HttpClient as Client } from '../../../test/browser/http-client';
import { apiRoutes } from '../../api';
import { createApiToken, listApiTokens } from '../../db/api-tokens';
import { createLogger } from '../../logging';
import type { CycleService } from '../../services/cycle-service';
import { buildServer } from '../app';
import { addWebUser } from './auth';
import { dashboardRoutes } from './index';

describe('dashboard API tokens page', () => {
  let t: TestDatabase;
  let app: FastifyInstance;
  let base: string;

  beforeAll(async () => {
    t = await createTestDatabase();
    await addWebUser(t.db, { username: 'ada', password: 'ada-password-1', role: 'admin', by: 'test' });
    await addWebUser(t.db, { username: 'vic', password: 'vic-password-1', role: 'viewer', by: 'test' });
    const logger = createLogger('silent');
    app = await buildServer({
      logger,
      health: [],
      routes: [dashboardRoutes({ db: t.db, logger }), apiRoutes({ db: t.db, service: {} as CycleService, logger })],
    });
    base = await listenOnLoopback(app);
  });
  afterAll(async () => {
    await app?.close();
    await t?.close();
  });

  const flashError = (location: string | null) => new URL(location ?? '/', base).searchParams.get('error') ?? '';
  const whoami = (token: string) => fetch(`${base}/api/v1/whoami`, { headers: { authorization: `Bearer ${token}` } });

  it('makes a token shown once that works as a Bearer token, lists it, and revoking it makes it 401', async () => {
    const c = new Client(base);
    await c.login('ada', 'ada-password-1');
    const made = await c.req('/tokens', {
      form: { _csrf: await c.csrf('/tokens'), name: 'laptop CLI', scope: 'approve', expiresInDays: '30' },
    });
    expect(made.status).toBe(200);
    const token = /data-testid="token-text">(pat_[0-9a-f]{16}_[A-Za-z0-9_-]{43})</.exec(made.text)?.[1];
    expect(token).toBeDefined();

    const me = await whoami(token!);
    expect(me.status).toBe(200);
    expect(await me.json()).toMatchObject({
      identity: 'web:ada',
      scope: 'approve',
      roles: expect.arrayContaining(['approver']),
    });

    const listed = await c.req('/tokens');
    expect(listed.text).toMatch(/data-testid="tokens"[\s\S]*laptop CLI[\s\S]*approve/);
    expect(listed.text).not.toContain(token!);
    const [row] = await listApiTokens(t.db, 'web:ada');
    expect(Date.parse(row!.expiresAt) - Date.parse(row!.createdAt)).toBe(30 * 86_400_000);

    const revoked = await c.req(`/tokens/${row!.id}/revoke`, { form: { _csrf: await c.csrf('/tokens') } });
    expect(revoked.status).toBe(303);
    expect((await whoami(token!)).status).toBe(401);
  });

  it('refuses a viewer an admin or approve token (nothing made) and makes them a read token', async () => {
    const c = new Client(base);
    await c.login('vic', 'vic-password-1');
    const page = await c.req('/tokens');
    expect(page.text).toContain('<option value="read">');
    expect(page.text).not.toContain('<option value="admin">');
    for (const scope of ['admin', 'approve']) {
      const refused = await c.req('/tokens', {
        form: { _csrf: await c.csrf('/tokens'), name: 'sneaky', scope, expiresInDays: '30' },
      });
      expect(refused.status).toBe(303);
      expect(flashError(refused.location)).toContain('viewer role');
    }
    expect(await listApiTokens(t.db, 'web:vic')).toEqual([]);
    const made = await c.req('/tokens', {
      form: { _csrf: await c.csrf('/tokens'), name: 'read only', scope: 'read', expiresInDays: '7' },
    });
    const token = /data-testid="token-text">(pat_[^<]+)</.exec(made.text)![1]!;
    expect(await (await whoami(token)).json()).toMatchObject({ identity: 'web:vic', scope: 'read', roles: ['viewer'] });
  });

  it("neither lists nor revokes another user's token, and refuses a bad expiry", async () => {
    const other = await createApiToken(t.db, { owner: 'web:ada', name: 'ada-only', scope: 'read' });
    const c = new Client(base);
    await c.login('vic', 'vic-password-1');
    expect((await c.req('/tokens')).text).not.toContain('ada-only');
    const r = await c.req(`/tokens/${other.summary.id}/revoke`, { form: { _csrf: await c.csrf('/tokens') } });
    expect(flashError(r.location)).toContain('no live token');
    expect((await whoami(other.token)).status).toBe(200);
    const bad = await c.req('/tokens', {
      form: { _csrf: await c.csrf('/tokens'), name: 'x', scope: 'read', expiresInDays: '9999' },
    });
    expect(flashError(bad.location)).toContain('whole number of days');
  });

  it('refuses a form without the session CSRF token', async () => {
    const c = new Client(base);
    await c.login('vic', 'vic-password-1');
    const before = (await listApiTokens(t.db, 'web:vic')).length;
    expect(
      (await c.req('/tokens', { form: { _csrf: 'nope', name: 'x', scope: 'read', expiresInDays: '7' } })).status,
    ).toBe(403);
    expect(await listApiTokens(t.db, 'web:vic')).toHaveLength(before);
  });
});
