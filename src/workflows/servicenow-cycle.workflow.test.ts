/**
 * Acceptance for issue 6, on the real patch-cycle workflow (real Temporal dev server, real database):
 * the product's ServiceNow client and change desk talk HTTP to the local ServiceNow fake, the fake's
 * business rule calls the real webhook route, which forwards through the real CycleService; the real
 * SmtpMailer sends to an in-process SMTP server.
 */
import { randomUUID } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ServiceNowFake } from '../../test/fakes/servicenow';
import { SmtpSink } from '../../test/fakes/smtp-sink';
import { countRows, saveTestPolicy, seedFleet } from '../../test/helpers/cycle-fixtures';
import { startFakeAgent } from '../../test/helpers/fake-agent';
import { RecordingChatNotifier } from '../../test/helpers/ports';
import { createTestDatabase, type TestDatabase } from '../../test/helpers/db';
import { createWorkflowTestEnv, type WorkflowTestEnv } from '../../test/helpers/temporal';
import { createActivities } from '../activities/index';
import { getCycleRow, stageEvents } from '../db/cycles';
import { CycleStage, type CycleStatus, type PatchCycleInput } from '../domain/cycle';
import type { ChangeDesk } from '../domain/ports';
import { SmtpMailer } from '../integrations/email/smtp-mailer';
import { ServiceNowChangeDesk } from '../integrations/servicenow/change-desk';
import { ServiceNowClient } from '../integrations/servicenow/client';
import { withChangeWorkNotes } from '../integrations/servicenow/work-notes';
import { createLogger } from '../logging';
import { buildServer } from '../server/app';
import { serviceNowWebhookRoute } from '../server/servicenow-webhook';
import { createCycleService } from '../services/temporal-cycle-service';
import { cycleStatusQuery } from './messages';
import { patchCycleWorkflow } from './patch-cycle';

const SECRET = 'acceptance-webhook-secret';
let db: TestDatabase;
let t: WorkflowTestEnv;
let server: FastifyInstance;
let webhookUrl: string;
/** The desk of the running test: the webhook confirms each notification with it, as with the real instance. */
let currentDesk: ChangeDesk | undefined;
const sink = new SmtpSink();

beforeAll(async () => {
  db = await createTestDatabase();
  t = await createWorkflowTestEnv();
  await sink.start();
  const cycles = createCycleService({ client: t.env.client, db: db.db, taskQueue: t.taskQueue });
  server = await buildServer({
    logger: createLogger('silent'),
    health: [],
    routes: [serviceNowWebhookRoute({ cycles, secret: SECRET, changes: { get: (n) => currentDesk!.get(n) } })],
  });
  webhookUrl = `${await server.listen({ host: '127.0.0.1', port: 0 })}/webhooks/servicenow`;
});
afterAll(async () => {
  await server?.close();
  await sink.stop();
  await t?.teardown();
  await db?.close();
});

/** The real desk, but the first open() loses its answer after ServiceNow created the change (as a timeout would). */
function flakyOnce(desk: ChangeDesk): ChangeDesk & { opens: number } {
  const wrapped = {
    opens: 0,
    async open(input: Parameters<ChangeDesk['open']>[0]) {
      wrapped.opens += 1;
      const ref = await desk.open(input);
      if (wrapped.opens === 1) throw new Error('socket hang up (the change was created, the answer was lost)');
      return ref;
    },
    get: (n: string) => desk.get(n),
    addWorkNote: (n: string, note: string) => desk.addWorkNote(n, note),
    close: (...a: Parameters<ChangeDesk['close']>) => desk.close(...a),
  };
  return wrapped;
}

async function setup(fake: ServiceNowFake, o: { webhook: boolean }) {
  const prefix = `sn${randomUUID().slice(0, 8)}`;
  const fleet = await seedFleet(db.db, { prefix, testEndpoints: 1, endpoints: 2 });
  await saveTestPolicy(db.db, prefix, fleet.testGroup, {
    autoApprove: { types: ['security'] },
    change: { type: 'normal', pollSeconds: 5 },
  });
  for (const id of fleet.endpointIds) fake.seedCi(`${id}.example.test`);
  const url = await fake.start();
  fake.webhook = o.webhook ? { url: webhookUrl, secret: SECRET } : undefined;
  const client = new ServiceNowClient({
    instanceUrl: url,
    auth: { kind: 'oauth', clientId: 'patchops', clientSecret: 'secret' },
  });
  const real = new ServiceNowChangeDesk({ client });
  currentDesk = real;
  const desk = flakyOnce(real);
  const mailer = new SmtpMailer({
    url: sink.url,
    from: 'patchops <patchops@example.test>',
    publicUrl: 'http://patchops.example.test',
  });
  const chat = withChangeWorkNotes({
    chat: new RecordingChatNotifier(),
    desk,
    changeNumberOf: async (id) => (await getCycleRow(db.db, id))?.changeNumber ?? null,
    waveTasks: real,
  });
  const activities = createActivities({
    database: db,
    logger: createLogger('silent'),
    chat,
    changeDesk: desk,
    mailer,
    reportRecipients: ['cab@example.test'],
  });
  const input: PatchCycleInput = {
    cycleId: `c-${prefix}`,
    policyName: prefix,
    scope: { groups: [fleet.testGroup, fleet.prodGroup] },
    requestedBy: 'cli:requester',
  };
  return { fleet, desk, mailer, activities, input };
}

async function waitFor(
  h: { query: (q: typeof cycleStatusQuery) => Promise<CycleStatus> },
  ok: (s: CycleStatus) => boolean,
  timeoutMs = 30_000,
): Promise<CycleStatus> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const s = await h.query(cycleStatusQuery);
    if (ok(s)) return s;
    if (Date.now() > end) throw new Error(`cycle stuck in ${s.stage} (change ${s.changeNumber ?? 'none'})`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

const start = (input: PatchCycleInput) =>
  t.env.client.workflow.start(patchCycleWorkflow, {
    taskQueue: t.taskQueue,
    workflowId: `patch-cycle:${input.cycleId}`,
    args: [input],
  });

describe('a cycle whose policy requires a normal change', () => {
  it('creates the change once despite a retried create, waits for the CAB approval, notes each stage, closes successful and mails the report', async () => {
    const fake = new ServiceNowFake();
    const s = await setup(fake, { webhook: true });
    const agent = startFakeAgent(db.db);
    const mailsBefore = sink.messages.length;
    try {
      const result = await t.withWorker(s.activities, async () => {
        const h = await start(s.input);
        const waiting = await waitFor(h, (st) => st.stage === CycleStage.AWAIT_APPROVAL && Boolean(st.changeNumber));
        await new Promise((r) => setTimeout(r, 1000));
        expect((await h.query(cycleStatusQuery)).stage).toBe(CycleStage.AWAIT_APPROVAL); // the change gates the deployment
        expect(await fake.approve(waiting.changeNumber!, 'cab.chair')).toBe(200); // business rule → webhook → signal
        return h.result();
      });
      expect(result.stage).toBe(CycleStage.COMPLETED);

      expect(s.desk.opens).toBe(2);
      const changes = fake.changes().filter((c) => c.correlation_id === s.input.cycleId);
      expect(changes).toHaveLength(1);
      const change = changes[0]!;
      expect(change).toMatchObject({ type: 'normal', state: '3', close_code: 'successful', approval: 'approved' });
      expect(change.close_notes).toMatch(/patched/);
      expect(change.short_description).toContain(s.input.cycleId);
      // The plan a change manager judges: patches with CVEs and CVSS, severities, the test ring's result.
      expect(change.description).toContain('CVE-2026-0001');
      expect(change.description).toContain('CVSS 7.5');
      expect(change.description).toMatch(/Severities: important \d+/);
      expect(change.description).toMatch(/Test ring \(test\): \d+ endpoint\(s\), \d+ succeeded, 0 failed/);
      expect(fake.affectedCis(change.number!).sort()).toEqual(
        s.fleet.endpointIds.map((id) => `${id}.example.test`).sort(),
      );
      expect(fake.tokenGrants[0]).toBe('client_credentials');

      const notes = fake.workNotes(change.number!);
      for (const stage of ['SCHEDULED', 'DEPLOYING', 'VERIFYING', 'REPORTING'])
        expect(notes.some((n) => n.startsWith(`patchops [${stage}]`))).toBe(true);
      expect(notes).toContain('Deployment started.');
      expect(notes.filter((n) => /^patchops \[DEPLOYING\] wave \d of 2/.test(n))).toHaveLength(2);
      expect(fake.tasks(change.number!).map((task) => [task.short_description, task.state])).toEqual([
        ['Wave 1: pilot', '3'],
        ['Wave 2: broad', '3'],
      ]);

      await sink.waitFor(mailsBefore + 1);
      const mail = sink.messages.slice(mailsBefore).find((m) => m.parsed.subject?.includes(s.input.cycleId))!;
      expect(mail.envelopeTo).toEqual(['cab@example.test']);
      expect(mail.parsed.subject).toMatch(/Cycle completed/);
      expect(mail.parsed.text).toContain(`Change request: ${change.number}`);
      expect(mail.parsed.attachments.some((a) => a.contentType === 'image/png')).toBe(true);
    } finally {
      await agent.stop();
      await fake.stop();
      s.mailer.close();
    }
  });

  it('ends CANCELLED with the change manager’s reason when the change is cancelled, deploying nothing', async () => {
    const fake = new ServiceNowFake();
    const s = await setup(fake, { webhook: true });
    const agent = startFakeAgent(db.db);
    try {
      const result = await t.withWorker(s.activities, async () => {
        const h = await start(s.input);
        const waiting = await waitFor(h, (st) => st.stage === CycleStage.AWAIT_APPROVAL && Boolean(st.changeNumber));
        expect(await fake.cancel(waiting.changeNumber!, 'Overlaps the year-end freeze', 'cab.chair')).toBe(200);
        return h.result();
      });
      expect(result.stage).toBe(CycleStage.CANCELLED);
      expect(result.outcome).toMatch(/was cancelled by servicenow:cab\.chair: Overlaps the year-end freeze/);
      expect(await countRows(db.db, 'agent_jobs', `cycle_id = '${s.input.cycleId}' and wave >= 1`)).toBe(0);
      const change = fake.changes().find((c) => c.correlation_id === s.input.cycleId)!;
      expect(change.state).toBe('4'); // stays cancelled: closing a cancelled change is a no-op
    } finally {
      await agent.stop();
      await fake.stop();
      s.mailer.close();
    }
  });

  it('without the webhook, polling sees the approval and the moved planned window', async () => {
    const fake = new ServiceNowFake();
    const s = await setup(fake, { webhook: false });
    const agent = startFakeAgent(db.db);
    try {
      const result = await t.withWorker(s.activities, async () => {
        const h = await start(s.input);
        const waiting = await waitFor(h, (st) => st.stage === CycleStage.AWAIT_APPROVAL && Boolean(st.changeNumber));
        // The CAB moves the window: far enough out that the 5 s poll sees it before it starts.
        const plannedStart = new Date(Date.now() + 9000);
        plannedStart.setMilliseconds(0);
        await fake.reschedule(
          waiting.changeNumber!,
          plannedStart.toISOString(),
          new Date(plannedStart.getTime() + 3_600_000).toISOString(),
        );
        await fake.approve(waiting.changeNumber!);
        const scheduled = await waitFor(
          h,
          (st) => st.stage === CycleStage.SCHEDULED && st.nextWindow !== undefined,
          20_000,
        );
        expect(scheduled.nextWindow?.start).toBe(plannedStart.toISOString());
        const result = await h.result();
        const deploying = (await stageEvents(db.db, s.input.cycleId)).find((e) => e.stage === CycleStage.DEPLOYING)!;
        expect(Date.parse(deploying.at)).toBeGreaterThanOrEqual(plannedStart.getTime());
        return result;
      });
      expect(result.stage).toBe(CycleStage.COMPLETED);
      expect(fake.webhookCalls).toEqual([]);
      expect(fake.changes().find((c) => c.correlation_id === s.input.cycleId)).toMatchObject({
        state: '3',
        close_code: 'successful',
      });
    } finally {
      await agent.stop();
      await fake.stop();
      s.mailer.close();
    }
  });

  it('follows the change while scheduled: a moved window moves the deployment, a cancellation ends the cycle', async () => {
    const fake = new ServiceNowFake();
    const moved = await setup(fake, { webhook: true });
    const cancelled = await setup(fake, { webhook: true });
    const agent = startFakeAgent(db.db);
    const inAMinute = () => {
      const d = new Date(Date.now() + 60_000);
      d.setMilliseconds(0);
      return d;
    };
    try {
      // One worker serves both cycles (the activities of the first setup; the desks are alike).
      const [a, b] = await t.withWorker(moved.activities, async () => {
        const ha = await start(moved.input);
        const hb = await start(cancelled.input);
        const scheduled = async (h: typeof ha) => {
          const waiting = await waitFor(h, (st) => st.stage === CycleStage.AWAIT_APPROVAL && Boolean(st.changeNumber));
          const far = inAMinute();
          await fake.reschedule(
            waiting.changeNumber!,
            far.toISOString(),
            new Date(far.getTime() + 3_600_000).toISOString(),
          );
          await fake.approve(waiting.changeNumber!, 'cab.chair');
          const st = await waitFor(
            h,
            (x) => x.stage === CycleStage.SCHEDULED && x.nextWindow?.start === far.toISOString(),
          );
          return { changeNumber: st.changeNumber!, far };
        };
        const sa = await scheduled(ha);
        const sb = await scheduled(hb);
        // The CAB pulls the first change forward to three seconds from now.
        const soon = new Date(Date.now() + 3000);
        soon.setMilliseconds(0);
        await fake.reschedule(
          sa.changeNumber,
          soon.toISOString(),
          new Date(soon.getTime() + 3_600_000).toISOString(),
          'cab.chair',
        );
        // …and cancels the second.
        expect(await fake.cancel(sb.changeNumber, 'Freeze for the audit', 'cab.chair')).toBe(200);
        const rb = await hb.result();
        const ra = await ha.result();
        const deploying = (await stageEvents(db.db, moved.input.cycleId)).find(
          (e) => e.stage === CycleStage.DEPLOYING,
        )!;
        expect(Date.parse(deploying.at)).toBeGreaterThanOrEqual(soon.getTime());
        expect(Date.parse(deploying.at)).toBeLessThan(sa.far.getTime());
        return [ra, rb];
      });
      expect(a.stage).toBe(CycleStage.COMPLETED);
      expect(a.reasons.some((r) => /rescheduled: deploying from/.test(r))).toBe(true);
      expect(b.stage).toBe(CycleStage.CANCELLED);
      expect(b.outcome).toMatch(/was cancelled while scheduled by servicenow:cab\.chair: Freeze for the audit/);
      expect(await countRows(db.db, 'agent_jobs', `cycle_id = '${cancelled.input.cycleId}' and wave >= 1`)).toBe(0);
    } finally {
      await agent.stop();
      await fake.stop();
      moved.mailer.close();
      cancelled.mailer.close();
    }
  }, 90_000);
});
