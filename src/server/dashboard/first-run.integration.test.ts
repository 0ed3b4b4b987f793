import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../logging';
import { createTestDatabase, type TestDatabase } from '../../../test/helpers/db';
import { listenOnLoopback } from '../../../test/helpers/listen';
import { seedFleet } from '../../../test/browser/fixtures';
import { HttpClient as Client } from '../../../test/browser/http-client';
import { buildServer } from '../app';
import { addWebUser } from './auth';
import { dashboardRoutes } from './index';

describe('dashboard first run (no endpoints yet)', () => {
  let t: TestDatabase;
  let app: FastifyInstance;
  let base: string;

  beforeAll(async () => {
    t = await createTestDatabase();
    await addWebUser(t.db, { username: 'ada', password: 'ada-password-1', role: 'admin', by: 'test' });
    app = await buildServer({
      logger: createLogger('silent'),
      health: [],
      routes: [
        dashboardRoutes({ db: t.db, logger: createLogger('silent'), publicUrl: 'https://patchops.example.com' }),
      ],
    });
    base = await listenOnLoopback(app);
  });
  afterAll(async () => {
    await app?.close();
    await t?.close();
  });

  it('says what to do next instead of "100% compliant (0 of 0 endpoints)"', async () => {
    const c = new Client(base);
    await c.login('ada', 'ada-password-1');
    const r = await c.req('/');
    expect(r.status).toBe(200);
    expect(r.text).toContain('data-testid="first-run"');
    expect(r.text).toContain('No endpoints yet.');
    expect(r.text).toContain('npx patchops enroll-secret add --name first-agents');
    expect(r.text).toContain(
      'npx patchops agent --server https://patchops.example.com --enroll-secret &lt;the secret&gt;',
    );
    expect(r.text).toContain('AGENT_ENROLL_SECRET');
    expect(r.text).toContain('npm run demo');
    expect(r.text).toContain('npm run demo -- --auto');
    expect(r.text).not.toContain('compliant (0 of 0');
    expect(r.text).not.toContain('data-testid="compliance-pct"');
    expect(r.text).not.toMatch(/100\s*%/);
    expect(r.text).not.toContain('<svg');
  });

  it('goes away once an endpoint exists: the overview shows its numbers and charts', async () => {
    const fleet = await seedFleet(t.db, 'fr');
    const c = new Client(base);
    await c.login('ada', 'ada-password-1');
    const r = await c.req('/');
    expect(r.status).toBe(200);
    expect(r.text).not.toContain('data-testid="first-run"');
    expect(r.text).toContain(`data-testid="compliance-pct">${fleet.expected.pct}%<`);
    expect(r.text).toContain(`compliant (${fleet.expected.compliant} of ${fleet.expected.endpoints} endpoints)`);
    expect(r.text.match(/<svg /g)).toHaveLength(5);
  });
});
