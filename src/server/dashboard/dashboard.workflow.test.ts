/**
 * The dashboard driving a real cycle: the real CycleService, a real Temporal dev server and worker, the
 * fake agent doing the jobs. Start from the dashboard as an admin, see the requester's own approval
 * refused with the validator's reason, approve as another web user, and follow the cycle to COMPLETED.
 */
import { randomUUID } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../../test/helpers/db';
import { grantApprovers, saveTestPolicy, seedFleet } from '../../../test/helpers/cycle-fixtures';
import { startFakeAgent } from '../../../test/helpers/fake-agent';
import { RecordingChatNotifier } from '../../../test/helpers/ports';
import { createWorkflowTestEnv, type WorkflowTestEnv } from '../../../test/helpers/temporal';
import { HttpClient } from '../../../test/browser/http-client';
import { createActivities } from '../../activities/index';
import { CycleStage } from '../../domain/cycle';
import { createLogger } from '../../logging';
import { createCycleService } from '../../services/temporal-cycle-service';
import type { CycleService } from '../../services/cycle-service';
import { buildServer } from '../app';
import { addWebUser } from './auth';
import { dashboardRoutes } from './index';

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
    routes: [
      dashboardRoutes({
        db: db.db,
        logger: createLogger('silent'),
        cycles: service,
        temporalUiUrl: 'http://127.0.0.1:8233',
      }),
    ],
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const addr = app.server.address();
  base = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`;
});
afterAll(async () => {
  await app?.close();
  await t?.teardown();
  await db?.close();
});

async function until<T>(fn: () => Promise<T>, ok: (v: T) => boolean, ms = 30_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (ok(v) || Date.now() > end) return v;
    await new Promise((r) => setTimeout(r, 250));
  }
}

const flash = (location: string | null) => decodeURIComponent((location ?? '').replace(/\+/g, ' '));

describe('dashboard with the real cycle service', () => {
  it("starts, refuses the requester's vote, takes an approver's vote and follows the cycle to the end", async () => {
    const prefix = `w${randomUUID().slice(0, 8)}`;
    const f = await seedFleet(db.db, { prefix, testEndpoints: 1, endpoints: 2 });
    await saveTestPolicy(db.db, prefix, f.testGroup);
    await addWebUser(db.db, { username: 'ada', password: 'ada-password-1', role: 'admin', by: 'test' });
    await addWebUser(db.db, { username: 'aaron', password: 'aaron-password-1', role: 'approver', by: 'test' });
    await grantApprovers(db.db, ['web:ada', 'web:aaron']);
    const agent = startFakeAgent(db.db);
    try {
      await t.withWorker(
        createActivities({ database: db, logger: createLogger('silent'), chat: new RecordingChatNotifier() }),
        async () => {
          const admin = new HttpClient(base);
          await admin.login('ada', 'ada-password-1');
          const token = await admin.csrf();
          const started = await admin.req('/actions/cycle', {
            form: { _csrf: token, policy: prefix, groups: `${f.testGroup},${f.prodGroup}` },
          });
          const cycleId = /^\/cycles\/([^?]+)\?ok=/.exec(started.location ?? '')?.[1];
          expect(cycleId, flash(started.location)).toBeTruthy();
          const id = decodeURIComponent(cycleId!);

          await until(
            () => service.status(id),
            (s) => s.stage === CycleStage.AWAIT_APPROVAL,
          );
          const page = await admin.req(`/cycles/${cycleId}`);
          expect(page.text).toContain('AWAIT_APPROVAL');
          expect(page.text).toContain('data-testid="action-approve"');

          const own = await admin.req(`/cycles/${cycleId}/approve`, { form: { _csrf: token } });
          expect(flash(own.location)).toContain(
            'Approval refused: you requested this cycle; someone else must approve',
          );

          const approver = new HttpClient(base);
          await approver.login('aaron', 'aaron-password-1');
          const t2 = await approver.csrf(`/cycles/${cycleId}`);
          const ok = await approver.req(`/cycles/${cycleId}/approve`, { form: { _csrf: t2 } });
          expect(flash(ok.location)).toContain('Approved (1 of 1; the cycle is approved)');

          await until(
            () => service.status(id),
            (s) => s.stage === CycleStage.COMPLETED,
          );
          // The live status says COMPLETED a moment before the last stage event is written: wait for the timeline.
          const done = await until(
            () => approver.req(`/cycles/${cycleId}`),
            (r) => /data-testid="timeline"[\s\S]*badge COMPLETED/.test(r.text) && r.text.includes('web:aaron'),
          );
          expect(done.text).toMatch(/data-testid="cycle-stage"><span class="badge COMPLETED">COMPLETED/);
          expect(done.text).toMatch(
            /<td>web:aaron<\/td><td><span class="badge approve">approve<\/span><\/td><td>web<\/td>/,
          );
          expect(done.text).toMatch(/IDENTIFY[\s\S]*AWAIT_APPROVAL[\s\S]*COMPLETED/);
          expect(done.text).not.toContain('data-testid="action-approve"');
        },
      );
    } finally {
      await agent.stop();
    }
  });
});
