import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SmtpSink } from '../../test/fakes/smtp-sink';
import { createTestDatabase, type TestDatabase } from '../../test/helpers/db';
import { createWorkflowTestEnv, type WorkflowTestEnv } from '../../test/helpers/temporal';
import { createActivities } from '../activities/index';
import { ensureDigestSchedule } from '../activities/digest';
import { endpointPatches, endpoints, patchCycles, patches } from '../db/schema/index';
import { SmtpMailer } from '../integrations/email/smtp-mailer';
import { createLogger } from '../logging';
import { complianceDigestWorkflow } from './digest';

let db: TestDatabase;
let t: WorkflowTestEnv;
const sink = new SmtpSink();
let mailer: SmtpMailer;

beforeAll(async () => {
  db = await createTestDatabase();
  t = await createWorkflowTestEnv();
  mailer = new SmtpMailer({
    url: await sink.start(),
    from: 'patchops <patchops@example.test>',
    publicUrl: 'http://patchops.example.test',
  });
  // 4 active endpoints: 2 fully patched, 1 missing a critical (known exploited) and a low, 1 with a failed high; 1 retired endpoint missing everything.
  await db.db.insert(patches).values([
    {
      id: 'KB-CRIT',
      title: 'Critical fix',
      vendor: 'v',
      type: 'security',
      severity: 'critical',
      knownExploited: true,
      osFamily: 'windows',
    },
    { id: 'KB-HIGH', title: 'High fix', vendor: 'v', type: 'security', severity: 'high', osFamily: 'windows' },
    { id: 'KB-LOW', title: 'Low fix', vendor: 'v', type: 'bugfix', severity: 'low', osFamily: 'windows' },
  ]);
  const ep = (id: string, status = 'active') => ({
    id,
    machineId: `m-${id}`,
    hostname: `${id}.example.test`,
    osFamily: 'windows',
    status,
  });
  await db.db.insert(endpoints).values([ep('a'), ep('b'), ep('c'), ep('d'), ep('old', 'retired')]);
  await db.db.insert(endpointPatches).values([
    { endpointId: 'a', patchId: 'KB-CRIT', state: 'installed' },
    { endpointId: 'c', patchId: 'KB-CRIT', state: 'missing' },
    { endpointId: 'c', patchId: 'KB-LOW', state: 'missing' },
    { endpointId: 'd', patchId: 'KB-HIGH', state: 'failed' },
    { endpointId: 'old', patchId: 'KB-CRIT', state: 'missing' },
  ]);
  await db.db.insert(patchCycles).values([
    {
      id: 'PC-recent',
      workflowId: 'w1',
      policyName: 'servers',
      policyVersion: 1,
      stage: 'COMPLETED',
      requestedBy: 'cli:x',
      changeNumber: 'CHG0000042',
    },
    {
      id: 'PC-old',
      workflowId: 'w2',
      policyName: 'servers',
      policyVersion: 1,
      stage: 'COMPLETED',
      requestedBy: 'cli:x',
      createdAt: new Date(Date.now() - 30 * 86_400_000),
    },
  ]);
});
afterAll(async () => {
  mailer?.close();
  await sink.stop();
  await t?.teardown();
  await db?.close();
});

describe('complianceDigestWorkflow', () => {
  it('computes compliance from the database and mails the digest with its chart', async () => {
    const activities = createActivities({
      database: db,
      logger: createLogger('silent'),
      digestMailer: mailer,
      reportRecipients: ['ops@example.test'],
    });
    const result = await t.withWorker(activities, () =>
      t.env.client.workflow.execute(complianceDigestWorkflow, {
        taskQueue: t.taskQueue,
        workflowId: `digest-${randomUUID()}`,
        args: [{ recipients: ['ciso@example.test'] }],
      }),
    );
    expect(result).toEqual({ sentTo: 2, compliancePercent: 50, endpoints: 4 });
    await sink.waitFor(1);
    const m = sink.messages[0]!;
    expect(m.envelopeTo.sort()).toEqual(['ciso@example.test', 'ops@example.test']);
    expect(m.parsed.subject).toBe('[patchops] Weekly compliance: 50% of 4 endpoints fully patched');
    const text = m.parsed.text ?? '';
    expect(text).toContain('Missing patches by severity: 1 critical, 1 high, 1 low');
    expect(text.indexOf('KB-CRIT')).toBeLessThan(text.indexOf('KB-HIGH'));
    expect(text).toContain('KB-CRIT Critical fix [critical (known exploited)] on 1 endpoints');
    expect(text).toContain('PC-recent servers: COMPLETED (CHG0000042)');
    expect(text).not.toContain('PC-old');
    expect(m.parsed.attachments.map((a) => a.contentType)).toEqual(['image/png']);
  });

  it('sends nothing when email is off', async () => {
    const activities = createActivities({
      database: db,
      logger: createLogger('silent'),
      digestMailer: null,
      reportRecipients: ['ops@example.test'],
    });
    const result = await t.withWorker(activities, () =>
      t.env.client.workflow.execute(complianceDigestWorkflow, {
        taskQueue: t.taskQueue,
        workflowId: `digest-${randomUUID()}`,
        args: [{}],
      }),
    );
    expect(result.sentTo).toBe(0);
  });

  it('creates the weekly schedule idempotently', async () => {
    const scheduleId = `digest-test-${randomUUID()}`;
    await ensureDigestSchedule(t.env.client, { scheduleId, taskQueue: t.taskQueue });
    await ensureDigestSchedule(t.env.client, { scheduleId, taskQueue: t.taskQueue, cron: '0 8 * * 1' });
    const handle = t.env.client.schedule.getHandle(scheduleId);
    try {
      const d = await handle.describe();
      expect(d.action).toMatchObject({
        type: 'startWorkflow',
        workflowType: 'complianceDigestWorkflow',
        taskQueue: t.taskQueue,
      });
      expect(d.spec.calendars?.[0]).toMatchObject({
        hour: [{ start: 8, end: 8, step: 1 }],
        dayOfWeek: [{ start: 'MONDAY', end: 'MONDAY', step: 1 }],
      });
    } finally {
      await handle.delete();
    }
  });
});
