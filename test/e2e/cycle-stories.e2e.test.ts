/**
 * Issue #14, the end-to-end suite: whole patch cycles on the in-process stack (test/helpers/e2e-stack.ts: the
 * real workflow bundle on Temporal, the real activities and database, the real HTTP routes; Slack, Teams,
 * ServiceNow and SMTP as local fakes speaking their wire formats), driven only through public interfaces:
 * signed Slack requests, Teams activities, the ServiceNow change manager (whose business rule calls the
 * webhook), and agents answering their jobs. Each case asserts what its users see: the chat messages and
 * card updates, the change request's work notes and close code, the e-mailed report, and the audit chain.
 * Run one case at a time: `npx vitest run test/e2e/cycle-stories.e2e.test.ts -t "<name>"`.
 * The cases move one by one to real processes (cycle-stories-processes.e2e.test.ts); those still here run in-process.
 */
import { randomUUID } from 'node:crypto';
import { eq, sql } from 'drizzle-orm';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { ACTION } from '../../src/chat/core/card';
import { REJECT_MODAL } from '../../src/chat/slack/app';
import { endpointGroups, maintenanceWindows, patches } from '../../src/db/schema/index';
import { verifyAuditChain } from '../../src/db/audit';
import { grantRole } from '../../src/db/identities';
import { CycleStage } from '../../src/domain/cycle';
import { stableOrder } from '../../src/domain/waves';
import type { DeploymentPolicyInput } from '../../src/domain/policy';
import { grantApprovers, saveTestPolicy, seedFleet } from '../helpers/cycle-fixtures';
import { startE2eStack, waitFor, SLACK_CHANNEL, type E2eStack } from '../helpers/e2e-stack';
import { startFakeAgent } from '../helpers/fake-agent';
import { blockActionsBody, slashCommandBody, viewSubmissionBody } from '../helpers/slack-sign';

const ADMIN = 'UADMIN';
let stack: E2eStack;

beforeAll(async () => {
  stack = await startE2eStack();
  await stack.installTeams();
  await grantRole(stack.db.db, { identity: `slack:${ADMIN}`, role: 'admin', by: 'cli:test' });
  await grantApprovers(stack.db.db, ['slack:UAPPROVER', 'slack:UREJECTER', 'teams:29:approver']);
}, 120_000);

afterAll(async () => {
  // The audit chain every case wrote to still verifies, row by row.
  if (stack) {
    const audit = await verifyAuditChain(stack.db.db);
    await stack.close();
    expect(audit).toMatchObject({ ok: true });
    expect(audit.rows).toBeGreaterThan(0);
  }
});

/** A fleet of its own and a policy named after it (ServiceNow knows its endpoints as CIs). */
async function fleetWithPolicy(o: { testEndpoints: number; endpoints: number; policy: (testGroup: string) => Partial<DeploymentPolicyInput>; patch?: Parameters<typeof seedFleet>[1]['patch'] }) {
  const prefix = `e2e${randomUUID().slice(0, 6)}`;
  const fleet = await seedFleet(stack.db.db, { prefix, testEndpoints: o.testEndpoints, endpoints: o.endpoints, ...(o.patch ? { patch: o.patch } : {}) });
  await saveTestPolicy(stack.db.db, prefix, fleet.testGroup, o.policy(fleet.testGroup));
  for (const id of fleet.endpointIds) stack.serviceNow.seedCi(`${id}.example.test`);
  return { prefix, ...fleet };
}

/** `/patch <text>` typed by the admin in Slack, signed; returns the text of the reply. */
async function slash(text: string): Promise<string> {
  const responseId = randomUUID();
  const res = await stack.slackRequest(slashCommandBody({ userId: ADMIN, text, responseUrl: `${stack.slack.responseUrlBase}${responseId}` }));
  expect(res.status).toBe(200);
  const reply = await waitFor('the reply to the slash command', () => stack.slack.callsTo('response_url').find((c) => c.args.responseId === responseId));
  return String(reply.args.text);
}

/** `/patch start …`; returns the cycle id the reply names. */
async function slashStart(text: string): Promise<string> {
  const reply = await slash(text);
  const cycleId = /PC-\d{8}-[0-9a-f]{6}/.exec(reply)?.[0];
  expect(cycleId, reply).toBeTruthy();
  return cycleId!;
}

/** Waits until the cycle's live status satisfies `ok`. */
const statusWhen = (cycleId: string, what: string, ok: (s: Awaited<ReturnType<E2eStack['status']>>) => boolean, timeoutMs = 30_000) =>
  waitFor(what, async () => {
    const s = await stack.status(cycleId);
    return ok(s) ? s : undefined;
  }, timeoutMs);

/** Install jobs the agents were given for the cycle, by endpoint. */
async function installsOf(cycleId: string): Promise<Array<{ endpointId: string; notBefore: Date | null; createdAt: Date }>> {
  const r = await stack.db.db.execute<{ endpoint_id: string; not_before: string | null; created_at: string }>(
    sql`select endpoint_id, not_before, created_at from agent_jobs where cycle_id = ${cycleId} and kind = 'install' order by endpoint_id`,
  );
  return r.rows.map((x) => ({ endpointId: x.endpoint_id, notBefore: x.not_before ? new Date(x.not_before) : null, createdAt: new Date(x.created_at) }));
}

/** Everything the bot said in Slack about the cycle (posts naming it, its thread, updates), as text. */
async function slackSaid(cycleId: string): Promise<string> {
  const r = await stack.db.db.execute<{ message_ref: string }>(
    sql`select message_ref from chat_messages where cycle_id = ${cycleId} and platform = 'slack' and key in ('approval', 'thread') and message_ref is not null`,
  );
  const threads = new Set(r.rows.map((x) => x.message_ref.split(':')[1]));
  return stack.slack.calls
    .filter((c) => (c.method === 'chat.postMessage' || c.method === 'chat.update') && (JSON.stringify(c.args).includes(cycleId) || threads.has(String(c.args.thread_ts))))
    .map((c) => JSON.stringify(c.args))
    .join('\n');
}

/** Waits until the cycle's Slack messages say `text`. */
const slackSays = (cycleId: string, text: string) => waitFor(`Slack to say "${text}"`, async () => ((await slackSaid(cycleId)).includes(text) ? true : undefined), 10_000);

/** Waits until the bot said `text` in the Teams channel (a card, an update or a reply). */
const teamsSays = (text: string) => waitFor(`Teams to say "${text}"`, () => (stack.connector.calls.some((c) => JSON.stringify(c.activity ?? {}).includes(text)) ? true : undefined), 10_000);

const mailAbout = (cycleId: string) => waitFor(`the e-mail about ${cycleId}`, () => stack.smtp.messages.find((m) => m.parsed.subject?.includes(cycleId)), 20_000);

it('a rejection in chat: Reject, a reason in the modal; the cycle ends CANCELLED, the card says who and why, the change is cancelled with the reason', async () => {
  const f = await fleetWithPolicy({ testEndpoints: 1, endpoints: 2, policy: () => ({ change: { type: 'normal', pollSeconds: 5 } }) });
  const agent = startFakeAgent(stack.db.db);
  try {
    const final = await stack.withWorker(async () => {
      const cycleId = await slashStart(`start ${f.prefix} group:${f.testGroup},${f.prodGroup}`);
      const ts = await stack.messageRef(cycleId, 'slack', 'approval');
      const { changeNumber } = await statusWhen(cycleId, 'the change request', (s) => s.changeNumber !== undefined);
      expect(stack.serviceNow.change(changeNumber!)?.state).toBe('-5');

      // Reject opens a modal asking why; submitting it with a reason rejects the cycle.
      const opens = stack.slack.callsTo('views.open').length;
      expect((await stack.slackRequest(blockActionsBody({ userId: 'UREJECTER', actionId: ACTION.reject, value: cycleId, channelId: SLACK_CHANNEL, messageTs: ts }))).status).toBe(200);
      const [open] = (await stack.slack.waitFor('views.open', opens + 1, 10_000)).slice(opens);
      const view = open!.args.view as { callback_id: string; private_metadata: string };
      expect(view.callback_id).toBe(REJECT_MODAL);
      const submitted = await stack.slackRequest(viewSubmissionBody({ userId: 'UREJECTER', callbackId: REJECT_MODAL, privateMetadata: view.private_metadata, reason: 'breaks the payroll app' }));
      expect(submitted.status).toBe(200);
      return stack.result(cycleId);
    });

    const { cycleId, changeNumber } = final;
    expect(final.stage).toBe(CycleStage.CANCELLED);
    expect(final.outcome).toBe('rejected by slack:UREJECTER: breaks the payroll app');
    expect(final.waves.every((w) => w.succeeded === 0)).toBe(true);
    const eph = await waitFor('the ephemeral outcome', () => stack.slack.callsTo('chat.postEphemeral').find((c) => c.args.user === 'UREJECTER' && String(c.args.text).includes(cycleId)));
    expect(String(eph.args.text)).toContain(`You rejected cycle ${cycleId}`);
    // The card, in Slack and in Teams, says who rejected and why.
    const card = stack.slack.callsTo('chat.update').filter((c) => JSON.stringify(c.args).includes(cycleId)).at(-1)!;
    expect(JSON.stringify(card.args.blocks)).toMatch(/Rejected by <@UREJECTER> \(slack\) at [^"]*: breaks the payroll app/);
    expect(stack.connector.callsOf('update').some((c) => JSON.stringify(c.activity).includes(cycleId) && JSON.stringify(c.activity).includes('Rejected by slack:UREJECTER'))).toBe(true);
    await slackSays(cycleId, `Cycle ${cycleId} (${f.prefix}) finished: CANCELLED`);
    // ServiceNow: never approved, so the change is cancelled (not closed) with the reason.
    expect(stack.serviceNow.change(changeNumber!)).toMatchObject({ state: '4', close_notes: 'rejected by slack:UREJECTER: breaks the payroll app' });
    expect(stack.serviceNow.workNotes(changeNumber!).join('\n')).toContain('Cancelled by patchops (unsuccessful): rejected by slack:UREJECTER: breaks the payroll app');
    const mail = await mailAbout(cycleId);
    expect(mail.parsed.subject).toContain(`Cycle cancelled: ${f.prefix} (${cycleId})`);
    expect(mail.parsed.text).toContain('breaks the payroll app');
  } finally {
    await agent.stop();
  }
}, 180_000);

it('a cancellation in ServiceNow while the cycle waits to deploy: the cycle ends CANCELLED, nothing installs, chat is told', async () => {
  const f = await fleetWithPolicy({ testEndpoints: 0, endpoints: 2, policy: () => ({ autoApprove: { types: ['security'] }, change: { type: 'normal', pollSeconds: 5 } }) });
  const agent = startFakeAgent(stack.db.db);
  try {
    const final = await stack.withWorker(async () => {
      const cycleId = await slashStart(`start ${f.prefix} group:${f.prodGroup}`);
      const { changeNumber } = await statusWhen(cycleId, 'the change request', (s) => s.changeNumber !== undefined);
      // The change manager plans it for an hour from now and approves it: the cycle is SCHEDULED until then.
      const start = new Date(Math.ceil((Date.now() + 3600_000) / 1000) * 1000).toISOString();
      await stack.serviceNow.reschedule(changeNumber!, start, new Date(Date.parse(start) + 3600_000).toISOString());
      expect(await stack.serviceNow.approve(changeNumber!)).toBe(200);
      const scheduled = await statusWhen(cycleId, 'SCHEDULED', (s) => s.stage === CycleStage.SCHEDULED && s.nextWindow !== undefined);
      expect(scheduled.nextWindow?.start).toBe(start);
      expect(scheduled.reasons).toContain(`change ${changeNumber} is scheduled`);

      // … then cancels it in ServiceNow; the business rule tells patchops, which asks ServiceNow to confirm.
      expect(await stack.serviceNow.cancel(changeNumber!, 'freeze for the quarter close')).toBe(200);
      return stack.result(cycleId);
    });

    const { cycleId, changeNumber } = final;
    expect(final.stage).toBe(CycleStage.CANCELLED);
    expect(final.outcome).toBe(`change ${changeNumber} was cancelled while scheduled by servicenow:change.manager: freeze for the quarter close`);
    expect(await installsOf(cycleId)).toEqual([]);
    expect(final.waves.every((w) => w.succeeded + w.failed === 0)).toBe(true);
    await slackSays(cycleId, 'freeze for the quarter close');
    await slackSays(cycleId, 'finished: CANCELLED');
    await teamsSays(`Cycle ${cycleId} (${f.prefix}) finished: CANCELLED`);
    expect(stack.serviceNow.change(changeNumber!)).toMatchObject({ state: '4', close_notes: 'freeze for the quarter close' });
    expect((await mailAbout(cycleId)).parsed.subject).toContain(`Cycle cancelled: ${f.prefix} (${cycleId})`);
  } finally {
    await agent.stop();
  }
}, 180_000);

it('a failing test ring ends the cycle before anyone is asked to approve: rolled back, no approval card, no change', async () => {
  const f = await fleetWithPolicy({ testEndpoints: 2, endpoints: 2, policy: () => ({ change: { type: 'normal', pollSeconds: 5 } }) });
  // One of the two test endpoints fails its install (50 %: the ring's limit); the other is rolled back.
  const agent = startFakeAgent(stack.db.db, { failing: { endpointIds: [`${f.prefix}-t0`], kinds: ['install'] } });
  try {
    const final = await stack.withWorker(async () => stack.result(await slashStart(`start ${f.prefix} group:${f.testGroup},${f.prodGroup}`)));

    const { cycleId } = final;
    expect(final.stage).toBe(CycleStage.ROLLED_BACK);
    expect(final.outcome).toMatch(/^test ring failed its threshold: 1 of 2 endpoint\(s\) failed \(limit 50% \/ 0\); ring rolled back \(1 of 1\)$/);
    expect(final.test).toMatchObject({ state: 'rolled_back', total: 2 });
    expect(final.approvals.records).toEqual([]);
    // Nobody was asked: no approval card in Slack or Teams, no change request; the production endpoints got nothing.
    expect(stack.slack.calls.some((c) => JSON.stringify(c.args).includes(cycleId) && JSON.stringify(c.args).includes(ACTION.approve))).toBe(false);
    expect(stack.connector.calls.some((c) => JSON.stringify(c.activity ?? {}).includes(cycleId) && JSON.stringify(c.activity).includes(ACTION.approve))).toBe(false);
    expect(stack.serviceNow.changes().filter((c) => c.correlation_id === cycleId)).toEqual([]);
    expect((await installsOf(cycleId)).map((j) => j.endpointId)).toEqual([`${f.prefix}-t0`, `${f.prefix}-t1`]);
    await slackSays(cycleId, 'finished: ROLLED_BACK');
    await slackSays(cycleId, 'test ring failed its threshold');
    await teamsSays(`Cycle ${cycleId} (${f.prefix}) finished: ROLLED_BACK`);
    const mail = await mailAbout(cycleId);
    expect(mail.parsed.subject).toContain(`Cycle rolled back: ${f.prefix} (${cycleId})`);
  } finally {
    await agent.stop();
  }
}, 180_000);

it('a wave trips its failure threshold, the cycle pauses and asks, and an admin rolls it back with /patch rollback', async () => {
  const f = await fleetWithPolicy({ testEndpoints: 0, endpoints: 4, policy: () => ({ autoApprove: { types: ['security'] }, change: { type: 'normal', pollSeconds: 5 } }) });
  // One endpoint of the first wave (pilot: the first 2 of 4 in the planner's stable order) fails its install:
  // 1 of 2 trips the wave's 30 % threshold; the other one installed and is what the rollback undoes.
  const [pilotFails] = stableOrder(f.endpointIds);
  const agent = startFakeAgent(stack.db.db, { failing: { endpointIds: [pilotFails!], kinds: ['install'] } });
  try {
    const final = await stack.withWorker(async () => {
      const cycleId = await slashStart(`start ${f.prefix} group:${f.prodGroup}`);
      const { changeNumber } = await statusWhen(cycleId, 'the change request', (s) => s.changeNumber !== undefined);
      expect(await stack.serviceNow.approve(changeNumber!)).toBe(200);
      const paused = await statusWhen(cycleId, 'the pause', (s) => s.paused, 60_000);
      expect(paused.pauseReason).toBe('wave pilot reached its failure threshold: 1 of 2 failed (limit 30% / 0)');
      expect(paused.waves.map((w) => w.state)).toEqual(['paused', 'planned']);

      // The pause question reaches the chats with Resume and Roll back.
      const question = await waitFor('the pause question in Slack', () =>
        stack.slack.callsTo('chat.postMessage').find((c) => JSON.stringify(c.args).includes(ACTION.rollback) && JSON.stringify(c.args).includes(`Cycle ${cycleId} is paused`)),
      );
      expect(JSON.stringify(question.args.blocks)).toContain(ACTION.resume);
      await waitFor('the pause card in Teams', () => stack.connector.calls.find((c) => JSON.stringify(c.activity ?? {}).includes(ACTION.rollback) && JSON.stringify(c.activity).includes(cycleId)));

      // An admin rolls the cycle back from Slack.
      expect(await slash(`rollback ${cycleId}`)).toContain(cycleId);
      return stack.result(cycleId);
    });

    const { cycleId, changeNumber } = final;
    expect(final.stage).toBe(CycleStage.ROLLED_BACK);
    expect(final.outcome).toBe('rolled back by slack:UADMIN (1 of 1 endpoint(s) rolled back)');
    expect(final.waves.map((w) => w.state)).toEqual(['rolled_back', 'planned']);
    // Only the pilot wave was ever installed; the broad wave never started.
    expect((await installsOf(cycleId)).length).toBe(2);
    await slackSays(cycleId, 'finished: ROLLED_BACK');
    await teamsSays(`Cycle ${cycleId} (${f.prefix}) finished: ROLLED_BACK`);
    const change = stack.serviceNow.change(changeNumber!)!;
    expect(change).toMatchObject({ state: '3', close_code: 'unsuccessful', close_notes: final.outcome });
    expect(stack.serviceNow.workNotes(changeNumber!).join('\n')).toContain('wave pilot reached its failure threshold');
    expect((await mailAbout(cycleId)).parsed.subject).toContain(`Cycle rolled back: ${f.prefix} (${cycleId})`);
  } finally {
    await agent.stop();
  }
}, 180_000);

it('an emergency cycle for a known-exploited CVE (bundled KEV catalog) skips the maintenance windows and raises an emergency change', async () => {
  const f = await fleetWithPolicy({
    testEndpoints: 1,
    endpoints: 2,
    policy: () => ({
      maintenance: { respectWindows: true, expectedInstallMinutes: 0 },
      change: { type: 'normal', pollSeconds: 5 },
      approval: { approverGroups: ['ops'], quorum: { low: 1, moderate: 1, high: 1, critical: 1 } },
      emergencyOverrides: { soakSeconds: 1, ignoreWindows: true, changeType: 'emergency' },
    }),
  });
  // Scanned without the flag: CVE-2024-3400 (PAN-OS GlobalProtect) is in the bundled KEV catalog.
  await stack.db.db.update(patches).set({ cves: ['CVE-2024-3400'], knownExploited: false }).where(eq(patches.id, f.patchId));
  // The production group's window opens tomorrow: a normal cycle would wait for it.
  const tomorrow = new Date(Date.now() + 86_400_000);
  const [w] = await stack.db.db
    .insert(maintenanceWindows)
    .values({ name: `${f.prefix}-window`, rrule: `DTSTART:${rruleStamp(tomorrow)}\nRRULE:FREQ=WEEKLY`, timezone: 'UTC', durationMinutes: 60 })
    .returning();
  await stack.db.db.update(endpointGroups).set({ maintenanceWindowId: w!.id }).where(eq(endpointGroups.name, f.prodGroup));
  const agent = startFakeAgent(stack.db.db);
  try {
    const final = await stack.withWorker(async () => {
      const cycleId = await slashStart(`start ${f.prefix} group:${f.testGroup},${f.prodGroup} --emergency`);
      const post = await waitFor('the Slack approval message', () => stack.slack.callsTo('chat.postMessage').find((c) => JSON.stringify(c.args.blocks ?? '').includes(ACTION.approve) && JSON.stringify(c.args).includes(cycleId)));
      expect(JSON.stringify(post.args)).toContain(`EMERGENCY Patch cycle ${cycleId}`);
      expect(JSON.stringify(post.args.blocks)).toContain('CVE-2024-3400 (known exploited)');
      const { changeNumber, emergency } = await statusWhen(cycleId, 'the change request', (s) => s.changeNumber !== undefined);
      expect(emergency).toBe(true);
      expect(stack.serviceNow.change(changeNumber!)?.type).toBe('emergency');
      const ts = await stack.messageRef(cycleId, 'slack', 'approval');
      await stack.slackRequest(blockActionsBody({ userId: 'UAPPROVER', actionId: ACTION.approve, value: cycleId, channelId: SLACK_CHANNEL, messageTs: ts }));
      expect(await stack.serviceNow.approve(changeNumber!)).toBe(200);
      return stack.result(cycleId);
    });

    const { cycleId, changeNumber } = final;
    expect(final.stage).toBe(CycleStage.COMPLETED);
    expect(final.reasons.join('\n')).toMatch(/P1: known exploited CVE-2024-3400/);
    // Deployed now, not in tomorrow's window.
    expect(final.waves.every((w) => w.windowStart === undefined)).toBe(true);
    const jobs = await installsOf(cycleId);
    expect(jobs).toHaveLength(3);
    expect(jobs.every((j) => j.notBefore === null || j.notBefore.getTime() < tomorrow.getTime() - 3600_000)).toBe(true);
    expect(stack.serviceNow.change(changeNumber!)).toMatchObject({ type: 'emergency', state: '3', close_code: 'successful' });
    const mail = await mailAbout(cycleId);
    expect(mail.parsed.subject).toContain(`Cycle completed: ${f.prefix} (${cycleId})`);
  } finally {
    await agent.stop();
  }
}, 180_000);

it('a maintenance window opening seconds ahead is waited for, and a blackout date is honoured (that wave waits for the next day)', async () => {
  const f = await fleetWithPolicy({ testEndpoints: 0, endpoints: 2, policy: () => ({}) });
  // A second production group (own patch, own endpoints): its window opens at the same time, but today is blacked out.
  const g = await seedFleet(stack.db.db, { prefix: `${f.prefix}b`, testEndpoints: 0, endpoints: 2 });
  await saveTestPolicy(stack.db.db, f.prefix, f.testGroup, {
    autoApprove: { types: ['security'] },
    maintenance: { respectWindows: true, expectedInstallMinutes: 0 },
    waves: [
      { name: 'early', groups: [f.prodGroup] },
      { name: 'blackout', groups: [g.prodGroup] },
    ],
  });
  const opens = new Date(Math.ceil((Date.now() + 20_000) / 1000) * 1000);
  const today = opens.toISOString().slice(0, 10);
  const rule = { rrule: `DTSTART:${rruleStamp(opens)}\nRRULE:FREQ=DAILY`, timezone: 'UTC', durationMinutes: 5 };
  const [open] = await stack.db.db.insert(maintenanceWindows).values({ name: `${f.prefix}-open`, ...rule }).returning();
  const [black] = await stack.db.db.insert(maintenanceWindows).values({ name: `${f.prefix}-blackout`, ...rule, blackoutDates: [today] }).returning();
  await stack.db.db.update(endpointGroups).set({ maintenanceWindowId: open!.id }).where(eq(endpointGroups.name, f.prodGroup));
  await stack.db.db.update(endpointGroups).set({ maintenanceWindowId: black!.id }).where(eq(endpointGroups.name, g.prodGroup));
  const agent = startFakeAgent(stack.db.db);
  try {
    const final = await stack.withWorker(async () => {
      const cycleId = await slashStart(`start ${f.prefix} group:${f.prodGroup},${g.prodGroup}`);
      // Nothing is installed before the window opens.
      await statusWhen(cycleId, 'the first wave waiting for its window', (s) => s.stage === CycleStage.DEPLOYING && s.waves[0]!.state === 'waiting_window');
      expect(Date.now()).toBeLessThan(opens.getTime());
      expect(await installsOf(cycleId)).toEqual([]);
      // The window opens: the first wave deploys in it; the blacked-out group's wave waits for tomorrow's.
      const second = await statusWhen(cycleId, 'the second wave waiting for its window', (s) => s.waves[0]!.state === 'done' && s.waves[1]!.state === 'waiting_window', 60_000);
      expect(second.waves[0]).toMatchObject({ windowStart: opens.toISOString(), succeeded: 2 });
      // Its window opened at the same time today, but today is a blackout date: its endpoints get nothing.
      await new Promise((r) => setTimeout(r, 3000));
      expect((await installsOf(cycleId)).map((j) => j.endpointId)).toEqual(f.endpointIds);
      expect(await slash(`cancel ${cycleId} blackout day`)).toContain(cycleId);
      return stack.result(cycleId);
    });

    const { cycleId } = final;
    const jobs = await installsOf(cycleId);
    expect(jobs.every((j) => j.notBefore?.toISOString() === opens.toISOString() && j.createdAt.getTime() >= opens.getTime())).toBe(true);
    expect(jobs.map((j) => j.endpointId)).toEqual(f.endpointIds);
    expect(final.stage).toBe(CycleStage.CANCELLED);
    expect(final.outcome).toBe('cancelled by slack:UADMIN: blackout day');
    await slackSays(cycleId, 'wave 1 of 2 (early) done: 2 ok, 0 failed');
    await slackSays(cycleId, 'finished: CANCELLED');
    expect(await slackSaid(cycleId)).not.toContain('(blackout) done');
  } finally {
    await agent.stop();
  }
}, 180_000);

/** 20261205T064100Z, as RRULE's DTSTART writes a UTC time. */
function rruleStamp(d: Date): string {
  return d.toISOString().replace(/[-:]/g, '').replace(/\.\d{3}/, '');
}
