/**
 * The REST API and the CLI through it, over real HTTP: a server on 127.0.0.1 with the API mounted, a real
 * PostgreSQL database, a real Temporal dev server and worker, the fake agent doing the jobs. A read token cannot
 * start a cycle (403, no cycle row); revoked and expired tokens get 401; an approve token approves; the CLI logs in
 * and votes as its person only (no --as), so one person voting twice does not make a two-person quorum.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../test/helpers/db';
import { grantApprovers, saveTestPolicy, seedFleet } from '../../test/helpers/cycle-fixtures';
import { startFakeAgent } from '../../test/helpers/fake-agent';
import { RecordingChatNotifier } from '../../test/helpers/ports';
import { createWorkflowTestEnv, type WorkflowTestEnv } from '../../test/helpers/temporal';
import { createActivities } from '../activities/index';
import { createApiToken, revokeApiToken } from '../db/api-tokens';
import { seedPolicies } from '../db/policies';
import { auditLog, patchCycles } from '../db/schema/index';
import { CycleStage } from '../domain/cycle';
import { createLogger } from '../logging';
import { buildServer } from '../server/app';
import { addWebUser } from '../server/dashboard/auth';
import { createCycleService } from '../services/temporal-cycle-service';
import type { CycleService } from '../services/cycle-service';
import { apiRoutes } from './index';

const root = path.resolve(import.meta.dirname, '..', '..');
let db: TestDatabase;
let t: WorkflowTestEnv;
let service: CycleService;
let app: FastifyInstance;
let base: string;

beforeAll(async () => {
  db = await createTestDatabase();
  t = await createWorkflowTestEnv();
  service = createCycleService({ client: t.env.client, db: db.db, taskQueue: t.taskQueue });
  app = await buildServer({
    logger: createLogger('silent'),
    health: [],
    routes: [apiRoutes({ db: db.db, service, logger: createLogger('silent') })],
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const addr = app.server.address();
  base = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`;
  await addWebUser(db.db, { username: 'ada', password: 'ada-password-1', role: 'admin', by: 'test' });
  await addWebUser(db.db, { username: 'aaron', password: 'aaron-password-1', role: 'approver', by: 'test' });
  await addWebUser(db.db, { username: 'bea', password: 'bea-password-1', role: 'approver', by: 'test' });
  await grantApprovers(db.db, ['web:ada', 'web:aaron', 'web:bea']);
  // "default" exists, so a start that got past the scope check would write a cycle row.
  await seedPolicies(db.db);
});
afterAll(async () => {
  await app?.close();
  await t?.teardown();
  await db?.close();
});

async function api(
  method: string,
  route: string,
  token: string | null,
  body?: unknown,
): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`${base}/api/v1${route}`, {
    method,
    headers: {
      ...(token ? { authorization: `Bearer ${token}` } : {}),
      ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
    },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

async function until<T>(fn: () => Promise<T>, ok: (v: T) => boolean, ms = 30_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (ok(v) || Date.now() > end) return v;
    await new Promise((r) => setTimeout(r, 250));
  }
}

function cli(
  args: string[],
  configHome: string,
  stdin?: string,
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile(
      process.execPath,
      [path.join(root, 'bin', 'patchops.mjs'), ...args],
      {
        cwd: root,
        env: { PATH: process.env.PATH, HOME: configHome, XDG_CONFIG_HOME: configHome, LOG_LEVEL: 'silent' },
        timeout: 60_000,
      },
      (err, stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
    child.stdin?.end(stdin ?? '');
  });
}

describe('/api/v1 tokens', () => {
  it('a read token of an admin cannot start a cycle: 403, and no cycle row is written', async () => {
    const { token } = await createApiToken(db.db, { owner: 'web:ada', name: 'read-only', scope: 'read' });
    const before = (await db.db.select().from(patchCycles)).length;
    const rest = await api('POST', '/cycles', token, { policy: 'default' });
    expect(rest.status, JSON.stringify(rest.body)).toBe(403);
    expect(rest.body.error).toBe('FORBIDDEN');
    const words = await api('POST', '/commands', token, { words: 'start default' });
    expect(words.status).toBe(403);
    expect((await db.db.select().from(patchCycles)).length).toBe(before);
    // It can read.
    expect((await api('GET', '/cycles', token)).status).toBe(200);
  });

  it('missing, malformed, unknown, revoked and expired tokens get 401', async () => {
    const live = await createApiToken(db.db, { owner: 'web:ada', name: 'to revoke', scope: 'admin' });
    expect((await api('GET', '/whoami', live.token)).status).toBe(200);
    await revokeApiToken(db.db, live.summary.id, { by: 'web:ada' });
    const expired = await createApiToken(db.db, {
      owner: 'web:ada',
      name: 'old',
      scope: 'admin',
      expiresInDays: 1,
      now: new Date(Date.now() - 2 * 86_400_000),
    });
    const unknown = `pat_${'0'.repeat(16)}_${'A'.repeat(43)}`;
    const wrongSecret = live.token.replace(/_[^_]{43}$/, `_${'B'.repeat(43)}`);
    for (const token of [null, 'nonsense', unknown, wrongSecret, live.token, expired.token]) {
      const r = await api('GET', '/cycles', token);
      expect(r.status, String(token)).toBe(401);
      expect(r.body.error).toBe('UNAUTHORIZED');
    }
  });

  it('login gives a token for the right password only, and every call is in the audit log as its person', async () => {
    expect((await api('POST', '/login', null, { user: 'aaron', password: 'wrong-password' })).status).toBe(401);
    const made = await api('POST', '/login', null, {
      user: 'aaron',
      password: 'aaron-password-1',
      scope: 'approve',
      name: 'test',
    });
    expect(made.status).toBe(200);
    const token = made.body.token as string;
    expect(token).toMatch(/^pat_[0-9a-f]{16}_/);
    const me = await api('GET', '/whoami', token);
    expect(me.body).toMatchObject({ identity: 'web:aaron', scope: 'approve', roles: ['approver'] });
    const listed = await api('GET', '/tokens', token);
    expect(JSON.stringify(listed.body)).not.toContain(token.slice('pat_'.length + 16 + 1));
    const calls = await until(
      () => db.db.select().from(auditLog),
      (rows) =>
        rows.some((r) => r.action === 'api.call' && r.actor === 'web:aaron' && r.subjectId === 'GET /api/v1/tokens'),
    );
    expect(calls.find((r) => r.action === 'api.call' && r.subjectId === 'GET /api/v1/tokens')?.details).toMatchObject({
      channel: 'api',
      status: 200,
    });
  });
});

describe('/api/v1 and the CLI driving a real cycle', () => {
  it('an approve token approves; the CLI votes only as its person, so a second vote of the same person does not make a quorum of two', async () => {
    const prefix = `api${randomUUID().slice(0, 6)}`;
    const f = await seedFleet(db.db, { prefix, testEndpoints: 1, endpoints: 2 });
    await saveTestPolicy(db.db, prefix, f.testGroup, {
      approval: { approverGroups: ['ops'], quorum: { low: 2, moderate: 2, high: 2, critical: 2 } },
    });
    const admin = (await createApiToken(db.db, { owner: 'web:ada', name: 'admin', scope: 'admin' })).token;
    const aaron = (await createApiToken(db.db, { owner: 'web:aaron', name: 'approve', scope: 'approve' })).token;
    const agent = startFakeAgent(db.db);
    const configHome = await fs.mkdtemp(path.join(os.tmpdir(), 'patchops-cli-'));
    try {
      await t.withWorker(
        createActivities({ database: db, logger: createLogger('silent'), chat: new RecordingChatNotifier() }),
        async () => {
          const started = await api('POST', '/cycles', admin, {
            policy: prefix,
            scope: { groups: [f.testGroup, f.prodGroup] },
          });
          expect(started.status, JSON.stringify(started.body)).toBe(200);
          const cycleId = (started.body.data as { cycleId: string }).cycleId;
          await until(
            () => service.status(cycleId),
            (s) => s.stage === CycleStage.AWAIT_APPROVAL,
          );

          const first = await api('POST', `/cycles/${encodeURIComponent(cycleId)}/approve`, aaron);
          expect(first.status, JSON.stringify(first.body)).toBe(200);
          expect(first.body.text).toContain('1 of 2');

          // The CLI: not logged in yet, then logged in as aaron; --as no longer exists.
          const notLoggedIn = await cli(['approve', cycleId], configHome);
          expect(notLoggedIn.code).toBe(1);
          expect(notLoggedIn.stderr).toContain('not logged in');
          const login = await cli(
            ['login', '--server', base, '--scope', 'approve'],
            configHome,
            'aaron\naaron-password-1\n',
          );
          expect(login.code, login.stderr).toBe(0);
          expect(login.stdout).toContain('as web:aaron');
          const stat = await fs.stat(path.join(configHome, 'patchops', 'credentials.json'));
          expect(stat.mode & 0o777).toBe(0o600);
          const impersonate = await cli(['approve', cycleId, '--as', 'web:bea'], configHome);
          expect(impersonate.code).not.toBe(0);
          expect(impersonate.stderr).toContain("unknown option '--as'");
          const again = await cli(['approve', cycleId], configHome);
          expect(again.code).toBe(1);
          expect(again.stderr).toContain('you already voted');
          expect((await service.status(cycleId)).stage).toBe(CycleStage.AWAIT_APPROVAL);
          expect((await service.status(cycleId)).approvals.received).toBe(1);

          // Another person's vote through the CLI makes the quorum.
          const logout = await cli(['logout'], configHome);
          expect(logout.code, logout.stderr).toBe(0);
          await expect(fs.stat(path.join(configHome, 'patchops', 'credentials.json'))).rejects.toThrow();
          expect((await cli(['login', '--server', base], configHome, 'bea\nbea-password-1\n')).code).toBe(0);
          const second = await cli(['approve', cycleId], configHome);
          expect(second.code, second.stderr).toBe(0);
          expect(second.stdout).toContain('2 of 2');
          const status = await cli(['status', cycleId], configHome);
          expect(status.stdout).toContain('web:aaron approved');
          expect(status.stdout).toContain('web:bea approved');
          await api('POST', `/cycles/${encodeURIComponent(cycleId)}/cancel`, admin, { reason: 'test done' });
        },
      );
    } finally {
      await agent.stop();
      await fs.rm(configHome, { recursive: true, force: true });
    }
  }, 180_000);
});
