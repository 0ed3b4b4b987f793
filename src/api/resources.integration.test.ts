/**
 * The API's resources that do not need a running cycle, over real HTTP on a real database: agents and enrolment
 * secrets, distribution points, policies, the patch catalog, people, the report files and the audit log. Viewers
 * read, only admins change.
 */
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seedFleet } from '../../test/helpers/cycle-fixtures';
import { createTestDatabase, type TestDatabase } from '../../test/helpers/db';
import { createApiToken } from '../db/api-tokens';
import { grantRole } from '../db/identities';
import { personOf } from '../db/people';
import { seedPolicies } from '../db/policies';
import { agentEnrollSecrets, auditLog } from '../db/schema/index';
import { createLogger } from '../logging';
import { buildServer } from '../server/app';
import type { CycleService } from '../services/cycle-service';
import { apiRoutes } from './index';

let db: TestDatabase;
let app: FastifyInstance;
let base: string;
let admin: string;
let viewer: string;

beforeAll(async () => {
  db = await createTestDatabase();
  await seedPolicies(db.db);
  await grantRole(db.db, { identity: 'web:ada', role: 'admin', by: 'test' });
  await grantRole(db.db, { identity: 'web:vic', role: 'viewer', by: 'test' });
  admin = (await createApiToken(db.db, { owner: 'web:ada', name: 'admin', scope: 'admin' })).token;
  viewer = (await createApiToken(db.db, { owner: 'web:vic', name: 'viewer', scope: 'admin' })).token;
  app = await buildServer({
    logger: createLogger('silent'),
    health: [],
    routes: [apiRoutes({ db: db.db, service: {} as CycleService, logger: createLogger('silent') })],
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const addr = app.server.address();
  base = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`;
});
afterAll(async () => {
  await app?.close();
  await db?.close();
});

async function call(method: string, route: string, token: string, body?: unknown): Promise<Response> {
  return fetch(`${base}/api/v1${route}`, {
    method,
    headers: {
      authorization: `Bearer ${token}`,
      ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
    },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
}

describe('/api/v1 resources', () => {
  it('enrolment secrets: a viewer (even with an admin-scope token) is refused with nothing stored; an admin adds, lists and revokes', async () => {
    const refused = await call('POST', '/enroll-secrets', viewer, { name: 'branch' });
    expect(refused.status).toBe(403);
    expect(await db.db.select().from(agentEnrollSecrets)).toEqual([]);
    const added = await call('POST', '/enroll-secrets', admin, { name: 'branch' });
    expect(added.status).toBe(200);
    expect(((await added.json()) as { secret: string }).secret.length).toBeGreaterThanOrEqual(16);
    const listed = (await (await call('GET', '/enroll-secrets', admin)).json()) as {
      secrets: Array<{ name: string; revokedAt: string | null }>;
    };
    expect(listed.secrets).toMatchObject([{ name: 'branch', revokedAt: null }]);
    expect((await call('DELETE', '/enroll-secrets/branch', admin)).status).toBe(200);
    expect((await call('DELETE', '/enroll-secrets/branch', admin)).status).toBe(404);
  });

  it('agents, enrolments, distribution points and the repository read as lists; unknown endpoints are 404', async () => {
    expect(await (await call('GET', '/agents', viewer)).json()).toEqual({ agents: [] });
    expect(await (await call('GET', '/enrolments', viewer)).json()).toEqual({ enrolments: [] });
    expect((await call('POST', '/agents/nope/revoke', admin)).status).toBe(404);
    const dp = await call('POST', '/distribution-points', admin, {
      name: 'dp1',
      url: 'http://dp1.example.test:8081',
      site: 'branch-1',
    });
    expect(dp.status).toBe(200);
    expect(
      ((await (await call('GET', '/distribution-points', viewer)).json()) as { distributionPoints: unknown[] })
        .distributionPoints,
    ).toMatchObject([{ name: 'dp1', site: 'branch-1', registeredBy: 'web:ada' }]);
    expect((await call('DELETE', '/distribution-points/dp1', viewer)).status).toBe(403);
    expect((await call('DELETE', '/distribution-points/dp1', admin)).status).toBe(200);
    expect(await (await call('GET', '/repository', viewer)).json()).toEqual({ manifest: null });
    expect((await call('DELETE', '/repository/files', viewer, { files: ['x.deb'] })).status).toBe(403);
    expect((await call('DELETE', '/repository/files', admin, { files: ['x.deb'] })).status).toBe(409); // no repository configured here
  });

  it('policies: list and get for viewers, save for admins', async () => {
    const list = (await (await call('GET', '/policies', viewer)).json()) as { policies: Array<{ name: string }> };
    expect(list.policies.map((p) => p.name)).toContain('default');
    expect(((await (await call('GET', '/policies/default', viewer)).json()) as { version: number }).version).toBe(1);
    const doc = { name: 'api-made', waves: [{ name: 'all', percent: 100 }] };
    expect((await call('POST', '/policies', viewer, doc)).status).toBe(403);
    const saved = await call('POST', '/policies', admin, doc);
    expect(saved.status).toBe(200);
    expect(await saved.json()).toMatchObject({ name: 'api-made', version: 1, createdBy: 'web:ada' });
  });

  it('the patch catalog with the dashboard filters: search, severity, limit; a bad severity is 400', async () => {
    await seedFleet(db.db, {
      prefix: 'cat',
      testEndpoints: 1,
      endpoints: 2,
      patch: { severity: 'critical', knownExploited: true },
    });
    await seedFleet(db.db, { prefix: 'low', testEndpoints: 0, endpoints: 1, patch: { severity: 'low' } });
    const all = (await (await call('GET', '/patches', viewer)).json()) as {
      patches: Array<{ id: string; missing: number; knownExploited: boolean }>;
    };
    expect(all.patches.map((p) => p.id)).toEqual(['KB-cat', 'KB-low']);
    expect(all.patches[0]).toMatchObject({ missing: 3, knownExploited: true });
    const low = (await (await call('GET', '/patches?severity=low', viewer)).json()) as {
      patches: Array<{ id: string }>;
    };
    expect(low.patches.map((p) => p.id)).toEqual(['KB-low']);
    const q = (await (await call('GET', '/patches?q=update%20cat', viewer)).json()) as {
      patches: Array<{ id: string }>;
    };
    expect(q.patches.map((p) => p.id)).toEqual(['KB-cat']);
    expect(
      ((await (await call('GET', '/patches?limit=1', viewer)).json()) as { patches: unknown[] }).patches,
    ).toHaveLength(1);
    expect((await call('GET', '/patches?severity=dire', viewer)).status).toBe(400);
    expect((await fetch(`${base}/api/v1/patches`)).status).toBe(401);
  });

  it('people: a viewer lists but cannot link (403, nothing linked); an admin links and unlinks, audited as themselves', async () => {
    const refused = await call('POST', '/people/links', viewer, { person: 'alice', identity: 'slack:U0123' });
    expect(refused.status).toBe(403);
    expect(await personOf(db.db, 'slack:U0123')).toBe('slack:U0123');
    const linked = await call('POST', '/people/links', admin, {
      person: 'alice',
      identity: 'slack:U0123',
      email: 'alice@example.com',
    });
    expect(linked.status).toBe(200);
    expect(((await linked.json()) as { data: unknown }).data).toMatchObject({
      verb: 'people',
      action: 'link',
      person: 'alice',
      identity: 'slack:U0123',
      changed: true,
    });
    await call('POST', '/people/links', admin, { person: 'alice', identity: 'web:alice' });
    expect(await personOf(db.db, 'slack:U0123')).toBe(await personOf(db.db, 'web:alice'));
    const listed = (await (await call('GET', '/people', viewer)).json()) as {
      data: { people: Array<{ name: string; email: string | null; identities: string[] }> };
    };
    expect(listed.data.people).toEqual([
      { name: 'alice', email: 'alice@example.com', identities: ['slack:U0123', 'web:alice'] },
    ]);
    expect((await call('DELETE', '/people/links/slack:U0123', viewer)).status).toBe(403);
    const unlinked = await call('DELETE', `/people/links/${encodeURIComponent('slack:U0123')}`, admin);
    expect(((await unlinked.json()) as { data: unknown }).data).toMatchObject({
      action: 'unlink',
      identity: 'slack:U0123',
      person: 'alice',
    });
    expect(await personOf(db.db, 'slack:U0123')).toBe('slack:U0123');
    expect((await call('POST', '/people/links', admin, { person: 'alice', identity: 'not an identity' })).status).toBe(
      400,
    );
    const changes = (await db.db.select().from(auditLog).orderBy(auditLog.id))
      .filter((e) => e.action.startsWith('person.'))
      .map((e) => `${e.actor} ${e.action}`);
    expect(changes).toEqual(['web:ada person.linked', 'web:ada person.linked', 'web:ada person.unlinked']);
  });

  it('the report as CSV and PDF, the audit log as CSV and its verification', async () => {
    const csv = await call('GET', '/reports?format=csv&scope=compliance', viewer);
    expect(csv.status).toBe(200);
    expect(csv.headers.get('content-type')).toContain('text/csv');
    const pdf = await call('GET', '/reports?format=pdf', viewer);
    expect(pdf.headers.get('content-type')).toBe('application/pdf');
    expect(
      Buffer.from(await pdf.arrayBuffer())
        .subarray(0, 5)
        .toString(),
    ).toBe('%PDF-');
    expect((await call('GET', '/audit/export', viewer)).status).toBe(403);
    const exported = await call('GET', '/audit/export?action=api.call', admin);
    const text = await exported.text();
    expect(text.split(/\r?\n/)[0]).toBe('id,at,actor,action,subject_type,subject_id,details,prev_hash,hash');
    expect(text).toContain('web:vic,api.call,api_route,GET /api/v1/reports');
    const verified = (await (await call('POST', '/audit/verify', admin)).json()) as { ok: boolean; rows: number };
    expect(verified.ok).toBe(true);
    expect(verified.rows).toBeGreaterThan(5);
  });
});

describe('/api/v1 groups and maintenance windows', () => {
  it('a viewer reads but cannot change them (nothing stored); an admin defines a window with a blackout, a group of named endpoints in it, and deletes them', async () => {
    const { endpointIds } = await seedFleet(db.db, { prefix: 'grp', testEndpoints: 0, endpoints: 3 });
    const window = {
      rrule: 'FREQ=WEEKLY;BYDAY=SA;BYHOUR=22;BYMINUTE=0',
      timezone: 'Europe/London',
      durationMinutes: 240,
      blackoutDates: ['2026-12-26'],
    };
    expect((await call('PUT', '/windows/saturday-night', viewer, window)).status).toBe(403);
    expect((await call('PUT', '/groups/web-farm', viewer, { members: endpointIds })).status).toBe(403);
    const before = (await (await call('GET', '/windows', viewer)).json()) as { windows: unknown[] };
    expect(before.windows).toEqual([]);
    expect(
      ((await (await call('GET', '/groups', viewer)).json()) as { groups: Array<{ name: string }> }).groups.map(
        (g) => g.name,
      ),
    ).not.toContain('web-farm');

    // Refusals say what is wrong, and store nothing.
    const badZone = await call('PUT', '/windows/saturday-night', admin, { ...window, timezone: 'Mars/Olympus' });
    expect(badZone.status).toBe(400);
    expect(((await badZone.json()) as { message: string }).message).toContain('IANA');
    const noWindow = await call('PUT', '/groups/web-farm', admin, { window: 'saturday-night' });
    expect(noWindow.status).toBe(400);
    const unknownHost = await call('PUT', '/groups/web-farm', admin, { members: [endpointIds[0], 'no-such-host'] });
    expect(unknownHost.status).toBe(400);
    expect(((await unknownHost.json()) as { message: string }).message).toContain('no-such-host');
    expect(
      ((await (await call('GET', '/groups', viewer)).json()) as { groups: Array<{ name: string }> }).groups.map(
        (g) => g.name,
      ),
    ).not.toContain('web-farm');

    const saved = await call('PUT', '/windows/saturday-night', admin, window);
    expect(saved.status).toBe(200);
    const group = await call('PUT', '/groups/web-farm', admin, {
      members: endpointIds.slice(0, 2),
      window: 'saturday-night',
      criticality: 4,
      exposure: 'dmz',
    });
    expect(group.status).toBe(200);
    expect(await group.json()).toMatchObject({
      name: 'web-farm',
      window: 'saturday-night',
      criticality: 4,
      exposure: 'dmz',
      isTestGroup: false,
      members: 2,
    });
    // Changing one field keeps the rest; members given become the exact membership.
    expect(await (await call('PUT', '/groups/web-farm', admin, { members: [endpointIds[2]!] })).json()).toMatchObject({
      window: 'saturday-night',
      criticality: 4,
      members: 1,
    });
    expect(await (await call('GET', '/groups/web-farm/members', viewer)).json()).toEqual({ members: [endpointIds[2]] });
    // An unknown group is not an empty one.
    const unknown = await call('GET', '/groups/no-such-group/members', viewer);
    expect(unknown.status).toBe(404);
    expect(await unknown.json()).toMatchObject({ error: 'NOT_FOUND' });
    const windows = (await (await call('GET', '/windows', viewer)).json()) as { windows: unknown[] };
    expect(windows.windows).toMatchObject([{ name: 'saturday-night', ...window, groups: ['web-farm'] }]);

    expect((await call('DELETE', '/windows/saturday-night', admin)).status).toBe(200);
    expect(await (await call('PUT', '/groups/web-farm', admin, {})).json()).toMatchObject({ window: null, members: 1 });
    expect((await call('DELETE', '/groups/web-farm', admin)).status).toBe(200);
    expect((await call('DELETE', '/groups/web-farm', admin)).status).toBe(404);
    const actions = (await db.db.select().from(auditLog)).filter((r) => r.actor === 'web:ada').map((r) => r.action);
    expect(actions).toEqual(expect.arrayContaining(['window.saved', 'group.saved', 'window.deleted', 'group.deleted']));
  });
});
