import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listAudit, overview, slaBreaches } from '../../db/dashboard';
import { createLogger } from '../../logging';
import { createTestDatabase, type TestDatabase } from '../../../test/helpers/db';
import { fakeCycleService, seedFleet, type Fleet } from '../../../test/browser/fixtures';
import { HttpClient as Client } from '../../../test/browser/http-client';
import { buildServer } from '../app';
import { addWebUser } from './auth';
import { dashboardRoutes } from './index';

describe('dashboard over HTTP', () => {
  let t: TestDatabase;
  let app: FastifyInstance;
  let base: string;
  let fleet: Fleet;
  const cycles = fakeCycleService({});

  beforeAll(async () => {
    t = await createTestDatabase();
    fleet = await seedFleet(t.db, 'd');
    // The fake refuses a vote by the cycle's requester, like the real update validator.
    Object.assign(cycles, fakeCycleService({ [fleet.cycleId]: 'web:ada' }));
    for (const [username, role] of [
      ['ada', 'admin'],
      ['vic', 'viewer'],
      ['aaron', 'approver'],
    ] as const) {
      await addWebUser(t.db, { username, password: `${username}-password-1`, role, by: 'test' });
    }
    app = await buildServer({
      logger: createLogger('silent'),
      health: [],
      routes: [
        dashboardRoutes({
          db: t.db,
          logger: createLogger('silent'),
          cycles,
          temporalUiUrl: 'http://127.0.0.1:8233',
          temporalNamespace: 'default',
        }),
      ],
    });
    await app.listen({ host: '127.0.0.1', port: 0 });
    const addr = app.server.address();
    base = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`;
  });
  afterAll(async () => {
    await app?.close();
    await t?.close();
  });

  it('computes the overview from the maintained aggregates', async () => {
    const o = await overview(t.db, { now: fleet.now });
    expect(o).toMatchObject({
      endpoints: fleet.expected.endpoints,
      compliant: fleet.expected.compliant,
      compliancePct: fleet.expected.pct,
      overdue: fleet.expected.overdue,
      knownExploited: fleet.expected.knownExploited,
      failed: 1,
    });
    expect(o.bySeverity).toMatchObject({ critical: 1, important: 1, low: 1 });
    expect(o.byGroup).toEqual([
      { key: 'd-db-servers', endpoints: 1, compliant: 0, pct: 0 },
      { key: 'd-web-servers', endpoints: 2, compliant: 1, pct: 50 },
    ]);
  });

  it('sends a signed-out visitor to the login page and refuses a wrong password (audited)', async () => {
    const c = new Client(base);
    const r = await c.req('/endpoints');
    expect(r.status).toBe(303);
    expect(r.location).toMatch(/^\/login\?next=%2Fendpoints/);
    const bad = await c.login('ada', 'not-the-password');
    expect(bad.location).toMatch(/^\/login\?error=/);
    expect(c.jar.has('patchops_session')).toBe(false);
    const audit = await listAudit(t.db, { action: 'login.failed', subjectId: 'ada' });
    expect(audit[0]?.details).toMatchObject({ reason: 'wrong user name or password' });
  });

  it('refuses a login form without its CSRF token', async () => {
    const c = new Client(base);
    await c.req('/login');
    const r = await c.req('/login', { form: { _csrf: 'forged', username: 'ada', password: 'ada-password-1' } });
    expect(r.status).toBe(403);
    expect(c.jar.has('patchops_session')).toBe(false);
  });

  it('renders every page with the data the test created, escaping what it shows', async () => {
    const c = new Client(base);
    const r = await c.login('vic', 'vic-password-1');
    expect(r.status).toBe(303);
    const home = await c.req('/');
    expect(home.status).toBe(200);
    expect(home.text).toContain('data-testid="compliance-pct">50%');
    expect(home.text).toContain('data-testid="overdue">2<');
    expect(home.text).toContain('data-testid="known-exploited">1<');
    expect(home.text).toMatch(/<svg[^>]*>[\s\S]*Compliance by group/);
    expect(home.text).not.toContain('Start a cycle');

    const list = await c.req('/endpoints?compliance=noncompliant');
    expect(list.text).toContain('d-web-1.example.net');
    expect(list.text).toContain('d-db-1.example.net');
    expect(list.text).not.toContain('d-mac-1.example.net');
    const search = await c.req('/endpoints?q=mac');
    expect(search.text).toContain('d-mac-1.example.net');
    expect(search.text).not.toContain('d-web-1.example.net');

    const ep = await c.req('/endpoints/d-web-1');
    expect(ep.text).toContain('dpkg: lock held by another process');
    expect(ep.text).toContain('data-testid="pending-reboot">yes');
    expect((await c.req('/endpoints/nope')).status).toBe(404);

    const p = await c.req('/patches?severity=critical');
    expect(p.text).toContain('CVE-2024-20666');
    expect(p.text).toContain('&lt;script&gt;alert(1)&lt;/script&gt;');
    expect(p.text).not.toContain('<script>alert(1)');
    const all = await c.req('/patches');
    expect(all.text).toMatch(/d-DSA-5000-1<\/td>[\s\S]*?d-DSA-5001-1<\/td><\/tr>/);

    const cyc = await c.req(`/cycles/${fleet.cycleId}`);
    expect(cyc.text).toContain('CHG0031337');
    expect(cyc.text).toContain('slack:U0APPROVER');
    expect(cyc.text).toMatch(/IDENTIFY[\s\S]*ASSESS[\s\S]*AWAIT_APPROVAL[\s\S]*DEPLOYING/);
    expect(cyc.text).toContain(
      `http://127.0.0.1:8233/namespaces/default/workflows/${encodeURIComponent(`patch-cycle:${fleet.cycleId}`)}`,
    );
    expect(cyc.text).toContain('dpkg: lock held by another process');
    expect(cyc.text).not.toContain('action-approve');
    expect(cyc.text).toContain('Read-only');
  });

  it('lets a viewer read but not act, and an admin act through the cycle service', async () => {
    const viewer = new Client(base);
    await viewer.login('vic', 'vic-password-1');
    const csrf = await viewer.csrf();
    const refused = await viewer.req(`/cycles/${fleet.cycleId}/pause`, { form: { _csrf: csrf } });
    expect(refused.status).toBe(403);
    expect(refused.text).toContain('you need the admin role');
    expect(cycles.calls.filter((c) => c.method === 'pause')).toHaveLength(0);

    const admin = new Client(base);
    await admin.login('ada', 'ada-password-1');
    const token = await admin.csrf(`/cycles/${fleet.cycleId}`);
    const ok = await admin.req(`/cycles/${fleet.cycleId}/pause`, { form: { _csrf: token, reason: 'freeze' } });
    expect(ok.status).toBe(303);
    expect(cycles.calls.find((c) => c.method === 'pause')?.args).toEqual([fleet.cycleId, 'web:ada', 'freeze']);
    const started = await admin.req('/actions/cycle', {
      form: { _csrf: token, policy: 'default', groups: 'd-web-servers' },
    });
    expect(started.location).toMatch(/^\/cycles\/fake-cycle-1\?ok=/);
    expect(cycles.calls.find((c) => c.method === 'start')?.args[0]).toMatchObject({
      requestedBy: 'web:ada',
      scope: { groups: ['d-web-servers'] },
    });
  });

  it('refuses a POST without the session CSRF token or from another origin', async () => {
    const admin = new Client(base);
    await admin.login('ada', 'ada-password-1');
    const token = await admin.csrf();
    expect((await admin.req('/actions/scan', { form: { _csrf: 'wrong' } })).status).toBe(403);
    expect((await admin.req('/actions/scan', { form: { _csrf: token }, origin: 'http://evil.example' })).status).toBe(
      403,
    );
    expect(cycles.calls.filter((c) => c.method === 'scan')).toHaveLength(0);
    expect((await admin.req('/actions/scan', { form: { _csrf: token } })).status).toBe(303);
    expect(cycles.calls.filter((c) => c.method === 'scan')).toHaveLength(1);
  });

  it("shows a refused approval with the validator's reason", async () => {
    const admin = new Client(base);
    await admin.login('ada', 'ada-password-1');
    const token = await admin.csrf(`/cycles/${fleet.cycleId}`);
    const r = await admin.req(`/cycles/${fleet.cycleId}/approve`, { form: { _csrf: token } });
    expect(decodeURIComponent(r.location!.replace(/\+/g, ' '))).toContain(
      'Approval refused: you requested this cycle; someone else must approve',
    );
    const approver = new Client(base);
    await approver.login('aaron', 'aaron-password-1');
    const t2 = await approver.csrf(`/cycles/${fleet.cycleId}`);
    const ok = await approver.req(`/cycles/${fleet.cycleId}/approve`, { form: { _csrf: t2 } });
    expect(decodeURIComponent(ok.location!)).toContain('ok=Approved');
    expect(cycles.calls.filter((c) => c.method === 'approve').at(-1)?.args[1]).toEqual({
      identity: 'web:aaron',
      channel: 'web',
    });
  });

  it('adds and removes an exception, audited with the web identity', async () => {
    const admin = new Client(base);
    await admin.login('ada', 'ada-password-1');
    const token = await admin.csrf('/exceptions');
    const future = new Date(Date.now() + 30 * 86_400_000).toISOString().slice(0, 10);
    const added = await admin.req('/exceptions', {
      form: { _csrf: token, patchId: 'd-KB5034441', reason: 'vendor hotfix pending', expiresAt: future },
    });
    const code = /Exception (EXC-\d+) added/.exec(decodeURIComponent(added.location!.replace(/\+/g, ' ')))![1]!;
    const page = await admin.req('/exceptions');
    expect(page.text).toContain('vendor hotfix pending');
    const viewer = new Client(base);
    await viewer.login('vic', 'vic-password-1');
    expect((await viewer.req('/exceptions')).text).not.toContain('/remove');
    expect(
      (await viewer.req(`/exceptions/${code}/remove`, { form: { _csrf: await viewer.csrf('/exceptions') } })).status,
    ).toBe(403);
    await admin.req(`/exceptions/${code}/remove`, { form: { _csrf: token } });
    expect((await admin.req('/exceptions')).text).not.toContain('vendor hotfix pending');
    const audit = await listAudit(t.db, { subjectId: code });
    expect(audit.map((a) => [a.action, a.actor])).toEqual([
      ['exception.removed', 'web:ada'],
      ['exception.added', 'web:ada'],
    ]);
    const past = await admin.req('/exceptions', {
      form: { _csrf: token, patchId: 'x', reason: 'r', expiresAt: '2001-01-01' },
    });
    expect(decodeURIComponent(past.location!.replace(/\+/g, ' '))).toContain('The expiry is in the past');
  });

  it('filters the audit log and exports it as CSV', async () => {
    const c = new Client(base);
    await c.login('vic', 'vic-password-1');
    const page = await c.req('/audit?action=login&actor=vic');
    expect(page.text).toContain('web:vic');
    expect(page.text).not.toContain('web:ada');
    const csv = await c.req('/audit.csv?action=user.added');
    expect(csv.type).toMatch(/text\/csv/);
    const lines = csv.text.trim().split('\r\n');
    expect(lines[0]).toBe('id,at,actor,action,subject_type,subject_id,details,hash');
    expect(
      lines
        .slice(1)
        .map((l) => l.split(',')[5])
        .sort(),
    ).toEqual(['aaron', 'ada', 'vic']);
  });

  it('serves the reports as CSV and PDF', async () => {
    const c = new Client(base);
    await c.login('vic', 'vic-password-1');
    const page = await c.req('/reports');
    expect(page.text).toContain(`data-testid="sla-total">${fleet.expected.overdue} outstanding past their SLA.<`);
    const breaches = await slaBreaches(t.db, { now: fleet.now });
    expect(breaches).toHaveLength(fleet.expected.overdue);
    for (const b of breaches) expect(page.text).toContain(`>${b.patchId}</td>`);
    const csv = await c.req('/reports/compliance.csv');
    expect(csv.text).toContain('group,d-web-servers,2,1,50');
    const res = await fetch(`${base}/reports/all.pdf`, {
      headers: { cookie: [...c.jar].map(([k, v]) => `${k}=${v}`).join('; ') },
    });
    expect(res.headers.get('content-type')).toBe('application/pdf');
    const pdf = Buffer.from(await res.arrayBuffer());
    expect(pdf.subarray(0, 5).toString()).toBe('%PDF-');
    expect((await c.req('/reports/nope.csv')).status).toBe(404);
  });

  it('signs out and ends the session', async () => {
    const c = new Client(base);
    await c.login('vic', 'vic-password-1');
    const session = c.jar.get('patchops_session')!;
    const token = await c.csrf();
    await c.req('/logout', { form: { _csrf: token } });
    const again = new Client(base);
    again.jar.set('patchops_session', session);
    expect((await again.req('/')).status).toBe(303);
  });
});
