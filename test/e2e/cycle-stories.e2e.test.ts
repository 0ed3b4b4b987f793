/**
 * Issue #14, the end-to-end suite on real processes (test/helpers/e2e-process-stack.ts): a `patchops server` and a
 * `patchops worker` process on a Temporal dev server and a database of their own, configured by environment to
 * talk to the local fakes of Slack, Teams, ServiceNow and SMTP, and simulated fleets, each a `patchops agent-sim
 * --ndjson` process on the real agent protocol (test/helpers/sim-process.ts: what its agents did is read from its
 * output, and it is told over its input which machines' installs fail). Each case is driven only through public
 * interfaces (the REST API with the first admin's token — roles, policies, groups, maintenance windows — signed
 * Slack requests, Teams activities, ServiceNow, the agent protocol, the dashboard). Each case asserts what its users
 * see: the chat messages and card updates, the change request's work notes and close code, the e-mailed report, the
 * numbers over HTTP, and at the end the audit chain, verified through the API.
 * Run one case at a time: `npx vitest run test/e2e/cycle-stories.e2e.test.ts -t "<name>"`.
 * Durations on a shared two-core machine: about 35 s to start the stack, then 2 to 27 s a case (the window case
 * waits 20 s for its window to open); about two minutes for the file.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { SimMachine } from '../../src/agent-sim/fleet';
import type { SimProcess } from '../helpers/sim-process';
import { ACTION } from '../../src/chat/core/card';
import { REJECT_MODAL } from '../../src/chat/slack/app';
import { stableOrder } from '../../src/domain/waves';
import { CycleStage, type CycleStatus } from '../../src/domain/cycle';
import type { DeploymentPolicyInput } from '../../src/domain/policy';
import type { ComplianceSummary } from '../../src/db/read-model/compliance';
import { testPolicyDocument } from '../helpers/cycle-fixtures';
import {
  rruleStamp,
  startE2eProcessStack,
  waitFor,
  windowsUpdate,
  REPORT_RECIPIENT,
  SLACK_CHANNEL,
  TEAMS_CONVERSATION,
  type E2eProcessStack,
} from '../helpers/e2e-process-stack';
import { blockActionsBody, slashCommandBody, viewSubmissionBody } from '../helpers/slack-sign';

const ADMIN = 'UADMIN';
let stack: E2eProcessStack;
let kb = 5041000;

beforeAll(async () => {
  stack = await startE2eProcessStack('stories');
  await stack.installTeams();
  await stack.grant(`slack:${ADMIN}`, 'admin');
  for (const approver of ['slack:UAPPROVER', 'slack:UREJECTER', 'teams:29:approver'])
    await stack.grant(approver, 'approver', 'ops');
}, 300_000);

afterAll(async () => {
  if (!stack) return;
  try {
    // The audit chain the processes wrote to in every case still verifies, row by row.
    const audit = await stack.verifyAudit();
    expect(audit).toMatchObject({ ok: true });
    expect(audit.rows).toBeGreaterThan(0);
  } finally {
    await stack.close();
  }
}, 120_000);

interface StoryFleet {
  prefix: string;
  sim: SimProcess;
  patchId: string;
  testGroup: string;
  prodGroup: string;
  test: SimMachine[];
  prod: SimMachine[];
}

/**
 * A simulated fleet of its own (`testEndpoints` in the test ring, `endpoints` in production) missing one patch of
 * its own, grouped through the API, and a policy named after it stored through the API.
 */
async function fleetWithPolicy(o: {
  testEndpoints: number;
  endpoints: number;
  policy: (testGroup: string) => Partial<DeploymentPolicyInput>;
  cves?: string[];
  failingMachines?: (prefix: string) => string[];
}): Promise<StoryFleet> {
  const prefix = `e2e${randomUUID().slice(0, 6)}`;
  const patchId = `KB${(kb += 1)}`;
  const sim = await stack.fleet({
    prefix,
    count: o.testEndpoints + o.endpoints,
    patches: [windowsUpdate(patchId, o.cves)],
    ...(o.failingMachines ? { failingMachines: o.failingMachines(prefix) } : {}),
  });
  const machines = [...sim.machines.values()].sort((a, b) => a.machineId.localeCompare(b.machineId));
  const f = {
    prefix,
    sim,
    patchId,
    testGroup: `${prefix}-test`,
    prodGroup: `${prefix}-prod`,
    test: machines.slice(0, o.testEndpoints),
    prod: machines.slice(o.testEndpoints),
  };
  await stack.seedGroups([
    { name: f.testGroup, machines: f.test, test: true },
    { name: f.prodGroup, machines: f.prod },
  ]);
  await stack.savePolicy(testPolicyDocument(prefix, f.testGroup, o.policy(f.testGroup)));
  return f;
}

/** `/patch <text>` typed by the admin in Slack, signed; returns the text of the reply. */
async function slash(text: string): Promise<string> {
  const responseId = randomUUID();
  const res = await stack.slackRequest(
    slashCommandBody({ userId: ADMIN, text, responseUrl: `${stack.slack.responseUrlBase}${responseId}` }),
  );
  expect(res.status).toBe(200);
  const reply = await waitFor('the reply to the slash command', () =>
    stack.slack.callsTo('response_url').find((c) => c.args.responseId === responseId),
  );
  return String(reply.args.text);
}

/** `/patch start …`; returns the cycle id the reply names. */
async function slashStart(text: string): Promise<string> {
  const reply = await slash(text);
  const cycleId = /PC-\d{8}-[0-9a-f]{6}/.exec(reply)?.[0];
  expect(cycleId, reply).toBeTruthy();
  return cycleId!;
}

/** Waits until the cycle's status (over the API) satisfies `ok`. */
const statusWhen = (cycleId: string, what: string, ok: (s: CycleStatus) => boolean, timeoutMs = 60_000) =>
  waitFor(
    what,
    async () => {
      const s = await stack.status(cycleId);
      return ok(s) ? s : undefined;
    },
    timeoutMs,
  );

/** The Slack approval message of the cycle, as the bot posted it, with the ts Slack gave it. */
const slackApproval = (cycleId: string) =>
  waitFor(
    'the Slack approval message',
    () =>
      stack.slack
        .callsTo('chat.postMessage')
        .find(
          (c) =>
            JSON.stringify(c.args.blocks ?? '').includes(ACTION.approve) && JSON.stringify(c.args).includes(cycleId),
        ),
    60_000,
  );

/** The Teams approval card of the cycle, as the bot sent it, with the activity id the connector gave it. */
const teamsApproval = (cycleId: string) =>
  waitFor(
    'the Teams approval card',
    () =>
      stack.connector
        .callsOf('send')
        .find(
          (c) => JSON.stringify(c.activity).includes(cycleId) && JSON.stringify(c.activity).includes(ACTION.approve),
        ),
    60_000,
  );

/** Everything the bot said in Slack about the cycle (posts naming it, their threads, updates), as text. */
function slackSaid(cycleId: string): string {
  const threads = new Set(
    stack.slack
      .callsTo('chat.postMessage')
      .filter((c) => JSON.stringify(c.args).includes(cycleId))
      .map((c) => String(c.answer?.ts)),
  );
  return stack.slack.calls
    .filter(
      (c) =>
        (c.method === 'chat.postMessage' || c.method === 'chat.update') &&
        (JSON.stringify(c.args).includes(cycleId) || threads.has(String(c.args.thread_ts))),
    )
    .map((c) => JSON.stringify(c.args))
    .join('\n');
}

/** Waits until the cycle's Slack messages say `text`. */
const slackSays = (cycleId: string, text: string) =>
  waitFor(`Slack to say "${text}"`, () => (slackSaid(cycleId).includes(text) ? true : undefined), 20_000);

/** Waits until the bot said `text` in the Teams channel (a card, an update or a reply). */
const teamsSays = (text: string) =>
  waitFor(
    `Teams to say "${text}"`,
    () => (stack.connector.calls.some((c) => JSON.stringify(c.activity ?? {}).includes(text)) ? true : undefined),
    20_000,
  );

const mailAbout = (cycleId: string) =>
  waitFor(
    `the e-mail about ${cycleId}`,
    () => stack.smtp.messages.find((m) => m.parsed.subject?.includes(cycleId)),
    30_000,
  );

/** The compliance numbers of the story's groups, as `POST /api/v1/reports/compliance` (and the dashboard) count them. */
async function complianceOf(f: StoryFleet): Promise<ComplianceSummary> {
  const reply = await stack.api<{ data: { summary: ComplianceSummary } }>('POST', '/reports/compliance', {
    scope: { groups: [f.testGroup, f.prodGroup] },
  });
  return reply.data.summary;
}

/** The overview's "By group" row of `group` as the dashboard shows it: endpoints, compliant, percent. */
async function dashboardGroupRow(group: string): Promise<[number, number, number]> {
  const web = await stack.dashboard();
  const page = await web.req('/');
  expect(page.status).toBe(200);
  const row = new RegExp(`>${group}</a></td><td>(\\d+)</td><td>(\\d+)</td><td>(\\d+)%</td>`).exec(page.text);
  expect(row, `the dashboard's row of ${group}`).toBeTruthy();
  return [Number(row![1]), Number(row![2]), Number(row![3])];
}

/** Install attempts the simulated agents ran (counted on the agent side), by machine id. */
const installedOn = (f: StoryFleet) => [...f.sim.installsRun.keys()].map((k) => k.split(' ')[0]!).sort();

it('a normal change: approved in Slack and in Teams, the change raised, followed to Scheduled and closed successful', async () => {
  const f = await fleetWithPolicy({
    testEndpoints: 1,
    endpoints: 4,
    policy: () => ({
      change: { type: 'normal', pollSeconds: 5 },
      approval: { approverGroups: ['ops'], quorum: { low: 2, moderate: 2, high: 2, critical: 2 } },
    }),
  });
  expect(await complianceOf(f)).toMatchObject({ endpoints: 5, compliant: 0 });
  expect(await dashboardGroupRow(f.prodGroup)).toEqual([4, 0, 0]);
  const cycleId = await slashStart(`start ${f.prefix} group:${f.testGroup},${f.prodGroup}`);

  // The change request is raised before anyone is asked, and the approval request names it in both chats.
  const post = await slackApproval(cycleId);
  expect(post.args.channel).toBe(SLACK_CHANNEL);
  const { changeNumber } = await stack.status(cycleId);
  expect(changeNumber).toMatch(/^CHG\d+$/);
  expect(JSON.stringify(post.args.blocks)).toContain(changeNumber!);
  expect(stack.serviceNow.change(changeNumber!)).toMatchObject({ correlation_id: cycleId, type: 'normal' });
  const card = await teamsApproval(cycleId);
  expect(card.conversationId).toBe(TEAMS_CONVERSATION);

  // Slack: a signed click; Teams: Action.Execute on the card.
  const ts = String(post.answer?.ts);
  expect(
    (
      await stack.slackRequest(
        blockActionsBody({
          userId: 'UAPPROVER',
          actionId: ACTION.approve,
          value: cycleId,
          channelId: SLACK_CHANNEL,
          messageTs: ts,
        }),
      )
    ).status,
  ).toBe(200);
  await statusWhen(cycleId, 'the first approval', (s) => s.approvals.received === 1);
  const answer = await stack.teamsAction({
    replyToId: card.answeredId!,
    from: '29:approver',
    verb: ACTION.approve,
    data: { cycleId },
  });
  expect(JSON.stringify(answer.value)).toContain(`You approved cycle ${cycleId}. The cycle is approved.`);

  // Approved in chat, the cycle still waits for the change manager: ServiceNow approves and schedules it.
  await new Promise((r) => setTimeout(r, 1000));
  expect((await stack.status(cycleId)).stage).toBe(CycleStage.AWAIT_APPROVAL);
  expect(await stack.serviceNow.approve(changeNumber!)).toBe(200);
  const final = await stack.result(cycleId);

  expect(final.stage).toBe(CycleStage.COMPLETED);
  expect(final.approvals.records.map((r) => [r.identity, r.channel, r.decision])).toEqual([
    ['slack:UAPPROVER', 'slack', 'approve'],
    ['teams:29:approver', 'teams', 'approve'],
  ]);
  // Every machine ran the install once (counted by the agents).
  expect(installedOn(f)).toEqual([...f.test, ...f.prod].map((m) => m.machineId).sort());
  // Slack: the card shows both decisions; its thread got the stages and the summary.
  const lastUpdate = stack.slack
    .callsTo('chat.update')
    .filter((c) => JSON.stringify(c.args).includes(cycleId))
    .at(-1)!;
  expect(JSON.stringify(lastUpdate.args.blocks)).toContain('Approved by <@UAPPROVER>');
  expect(JSON.stringify(lastUpdate.args.blocks)).toContain('Approved by teams:29:approver');
  await slackSays(cycleId, `Cycle ${cycleId} (${f.prefix}) finished: COMPLETED`);
  // Teams: the card updated, the summary as a reply to it.
  expect(
    stack.connector.callsOf('update').some((c) => JSON.stringify(c.activity).includes('Approved by slack:UAPPROVER')),
  ).toBe(true);
  expect(
    stack.connector
      .callsOf('reply')
      .some((c) => c.activityId === card.answeredId && JSON.stringify(c.activity).includes('finished: COMPLETED')),
  ).toBe(true);
  // ServiceNow: the change followed the cycle (work notes) and was closed successful.
  expect(stack.serviceNow.change(changeNumber!)).toMatchObject({ state: '3', close_code: 'successful' });
  const notes = stack.serviceNow.workNotes(changeNumber!).join('\n');
  expect(notes).toContain('Deployment started.');
  expect(notes).toMatch(/wave 2 of 2 \(broad\) done: 2 ok, 0 failed/);
  // The report went out by e-mail, with the change.
  const mail = await mailAbout(cycleId);
  expect(mail.envelopeTo).toContain(REPORT_RECIPIENT);
  expect(mail.parsed.subject).toContain(`Cycle completed: ${f.prefix} (${cycleId})`);
  expect(mail.parsed.text).toContain(changeNumber!);
  // The numbers: every endpoint of the story is compliant now; the dashboard shows the cycle as its users see it.
  expect(await complianceOf(f)).toMatchObject({ endpoints: 5, compliant: 5, compliancePct: 100 });
  expect(await dashboardGroupRow(f.prodGroup)).toEqual([4, 4, 100]);
  expect(await dashboardGroupRow(f.testGroup)).toEqual([1, 1, 100]);
  const web = await stack.dashboard();
  const page = await web.req(`/cycles/${encodeURIComponent(cycleId)}`);
  expect(page.status).toBe(200);
  expect(page.text).toMatch(/data-testid="cycle-stage">[^<]*<[^>]*>COMPLETED/);
  expect(page.text).toContain(`data-testid="change-number">${changeNumber}<`);
}, 240_000);

it('a rejection in chat: Reject, a reason in the modal; the cycle ends CANCELLED, the card says who and why, the change is cancelled with the reason', async () => {
  const f = await fleetWithPolicy({
    testEndpoints: 1,
    endpoints: 2,
    policy: () => ({ change: { type: 'normal', pollSeconds: 5 } }),
  });
  const cycleId = await slashStart(`start ${f.prefix} group:${f.testGroup},${f.prodGroup}`);
  const ts = String((await slackApproval(cycleId)).answer?.ts);
  const { changeNumber } = await statusWhen(cycleId, 'the change request', (s) => s.changeNumber !== undefined);
  expect(stack.serviceNow.change(changeNumber!)?.state).toBe('-5');

  // Reject opens a modal asking why; submitting it with a reason rejects the cycle.
  const opens = stack.slack.callsTo('views.open').length;
  expect(
    (
      await stack.slackRequest(
        blockActionsBody({
          userId: 'UREJECTER',
          actionId: ACTION.reject,
          value: cycleId,
          channelId: SLACK_CHANNEL,
          messageTs: ts,
        }),
      )
    ).status,
  ).toBe(200);
  const [open] = (await stack.slack.waitFor('views.open', opens + 1, 20_000)).slice(opens);
  const view = open!.args.view as { callback_id: string; private_metadata: string };
  expect(view.callback_id).toBe(REJECT_MODAL);
  const submitted = await stack.slackRequest(
    viewSubmissionBody({
      userId: 'UREJECTER',
      callbackId: REJECT_MODAL,
      privateMetadata: view.private_metadata,
      reason: 'breaks the payroll app',
    }),
  );
  expect(submitted.status).toBe(200);
  const final = await stack.result(cycleId);

  expect(final.stage).toBe(CycleStage.CANCELLED);
  expect(final.outcome).toBe('rejected by slack:UREJECTER: breaks the payroll app');
  expect(final.waves.every((w) => w.succeeded === 0)).toBe(true);
  // The test ring installed before anyone was asked; production got nothing.
  expect(installedOn(f)).toEqual(f.test.map((m) => m.machineId));
  const eph = await waitFor('the ephemeral outcome', () =>
    stack.slack
      .callsTo('chat.postEphemeral')
      .find((c) => c.args.user === 'UREJECTER' && String(c.args.text).includes(cycleId)),
  );
  expect(String(eph.args.text)).toContain(`You rejected cycle ${cycleId}`);
  // The card, in Slack and in Teams, says who rejected and why.
  const card = stack.slack
    .callsTo('chat.update')
    .filter((c) => JSON.stringify(c.args).includes(cycleId))
    .at(-1)!;
  expect(JSON.stringify(card.args.blocks)).toMatch(
    /Rejected by <@UREJECTER> \(slack\) at [^"]*: breaks the payroll app/,
  );
  expect(
    stack.connector
      .callsOf('update')
      .some(
        (c) =>
          JSON.stringify(c.activity).includes(cycleId) &&
          JSON.stringify(c.activity).includes('Rejected by slack:UREJECTER'),
      ),
  ).toBe(true);
  await slackSays(cycleId, `Cycle ${cycleId} (${f.prefix}) finished: CANCELLED`);
  // ServiceNow: never approved, so the change is cancelled (not closed) with the reason.
  expect(stack.serviceNow.change(changeNumber!)).toMatchObject({
    state: '4',
    close_notes: 'rejected by slack:UREJECTER: breaks the payroll app',
  });
  expect(stack.serviceNow.workNotes(changeNumber!).join('\n')).toContain(
    'Cancelled by patchops (unsuccessful): rejected by slack:UREJECTER: breaks the payroll app',
  );
  const mail = await mailAbout(cycleId);
  expect(mail.parsed.subject).toContain(`Cycle cancelled: ${f.prefix} (${cycleId})`);
  expect(mail.parsed.text).toContain('breaks the payroll app');
}, 240_000);

it('a cancellation in ServiceNow while the cycle waits to deploy: the cycle ends CANCELLED, nothing installs, chat is told', async () => {
  const f = await fleetWithPolicy({
    testEndpoints: 0,
    endpoints: 2,
    policy: () => ({ autoApprove: { types: ['security'] }, change: { type: 'normal', pollSeconds: 5 } }),
  });
  const cycleId = await slashStart(`start ${f.prefix} group:${f.prodGroup}`);
  const { changeNumber } = await statusWhen(cycleId, 'the change request', (s) => s.changeNumber !== undefined);
  // The change manager plans it for an hour from now and approves it: the cycle is SCHEDULED until then.
  const start = new Date(Math.ceil((Date.now() + 3600_000) / 1000) * 1000).toISOString();
  await stack.serviceNow.reschedule(changeNumber!, start, new Date(Date.parse(start) + 3600_000).toISOString());
  expect(await stack.serviceNow.approve(changeNumber!)).toBe(200);
  const scheduled = await statusWhen(
    cycleId,
    'SCHEDULED',
    (s) => s.stage === CycleStage.SCHEDULED && s.nextWindow !== undefined,
  );
  expect(scheduled.nextWindow?.start).toBe(start);
  expect(scheduled.reasons).toContain(`change ${changeNumber} is scheduled`);

  // … then cancels it in ServiceNow; the business rule tells patchops, which asks ServiceNow to confirm.
  expect(await stack.serviceNow.cancel(changeNumber!, 'freeze for the quarter close')).toBe(200);
  const final = await stack.result(cycleId);

  expect(final.stage).toBe(CycleStage.CANCELLED);
  expect(final.outcome).toBe(
    `change ${changeNumber} was cancelled while scheduled by servicenow:change.manager: freeze for the quarter close`,
  );
  expect(await stack.installJobs(cycleId)).toEqual([]);
  expect(installedOn(f)).toEqual([]);
  expect(final.waves.every((w) => w.succeeded + w.failed === 0)).toBe(true);
  await slackSays(cycleId, 'freeze for the quarter close');
  await slackSays(cycleId, 'finished: CANCELLED');
  await teamsSays(`Cycle ${cycleId} (${f.prefix}) finished: CANCELLED`);
  expect(stack.serviceNow.change(changeNumber!)).toMatchObject({
    state: '4',
    close_notes: 'freeze for the quarter close',
  });
  expect((await mailAbout(cycleId)).parsed.subject).toContain(`Cycle cancelled: ${f.prefix} (${cycleId})`);
}, 240_000);

it('a failing test ring ends the cycle before anyone is asked to approve: rolled back, no approval card, no change', async () => {
  // One of the two test machines fails its install (50 %: the ring's limit); the other is rolled back.
  const f = await fleetWithPolicy({
    testEndpoints: 2,
    endpoints: 2,
    policy: () => ({ change: { type: 'normal', pollSeconds: 5 } }),
    failingMachines: (prefix) => [`${prefix}-000000`],
  });
  const cycleId = await slashStart(`start ${f.prefix} group:${f.testGroup},${f.prodGroup}`);
  const final = await stack.result(cycleId);

  expect(final.stage).toBe(CycleStage.ROLLED_BACK);
  expect(final.outcome).toMatch(
    /^test ring failed its threshold: 1 of 2 endpoint\(s\) failed \(limit 50% \/ 0\); ring rolled back \(1 of 1\)$/,
  );
  expect(final.test).toMatchObject({ state: 'rolled_back', total: 2 });
  expect(final.approvals.records).toEqual([]);
  // Nobody was asked: no approval card in Slack or Teams, no change request; the production machines got nothing.
  expect(
    stack.slack.calls.some(
      (c) => JSON.stringify(c.args).includes(cycleId) && JSON.stringify(c.args).includes(ACTION.approve),
    ),
  ).toBe(false);
  expect(
    stack.connector.calls.some(
      (c) => JSON.stringify(c.activity ?? {}).includes(cycleId) && JSON.stringify(c.activity).includes(ACTION.approve),
    ),
  ).toBe(false);
  expect(stack.serviceNow.changes().filter((c) => c.correlation_id === cycleId)).toEqual([]);
  expect(installedOn(f)).toEqual(f.test.map((m) => m.machineId));
  await slackSays(cycleId, 'finished: ROLLED_BACK');
  await slackSays(cycleId, 'test ring failed its threshold');
  await teamsSays(`Cycle ${cycleId} (${f.prefix}) finished: ROLLED_BACK`);
  expect((await mailAbout(cycleId)).parsed.subject).toContain(`Cycle rolled back: ${f.prefix} (${cycleId})`);
  // The numbers: nothing is compliant; the failed install is counted.
  expect(await complianceOf(f)).toMatchObject({ endpoints: 4, compliant: 0 });
  expect(await dashboardGroupRow(f.testGroup)).toEqual([2, 0, 0]);
}, 240_000);

it('a wave trips its failure threshold, the cycle pauses and asks, and an admin rolls it back with /patch rollback', async () => {
  const f = await fleetWithPolicy({
    testEndpoints: 0,
    endpoints: 4,
    policy: () => ({ autoApprove: { types: ['security'] }, change: { type: 'normal', pollSeconds: 5 } }),
  });
  // One machine of the first wave (pilot: the first 2 of 4 in the planner's stable order) fails its install:
  // 1 of 2 trips the wave's 30 % threshold; the other one installed and is what the rollback undoes.
  const [pilotFails] = stableOrder(f.prod.map((m) => m.endpointId));
  await f.sim.failInstallsOn([f.prod.find((m) => m.endpointId === pilotFails)!.machineId]);
  const cycleId = await slashStart(`start ${f.prefix} group:${f.prodGroup}`);
  const { changeNumber } = await statusWhen(cycleId, 'the change request', (s) => s.changeNumber !== undefined);
  expect(await stack.serviceNow.approve(changeNumber!)).toBe(200);
  const paused = await statusWhen(cycleId, 'the pause', (s) => s.paused, 90_000);
  expect(paused.pauseReason).toBe('wave pilot reached its failure threshold: 1 of 2 failed (limit 30% / 0)');
  expect(paused.waves.map((w) => w.state)).toEqual(['paused', 'planned']);

  // The pause question reaches the chats with Resume and Roll back.
  const question = await waitFor('the pause question in Slack', () =>
    stack.slack
      .callsTo('chat.postMessage')
      .find(
        (c) =>
          JSON.stringify(c.args).includes(ACTION.rollback) &&
          JSON.stringify(c.args).includes(`Cycle ${cycleId} is paused`),
      ),
  );
  expect(JSON.stringify(question.args.blocks)).toContain(ACTION.resume);
  await waitFor('the pause card in Teams', () =>
    stack.connector.calls.find(
      (c) => JSON.stringify(c.activity ?? {}).includes(ACTION.rollback) && JSON.stringify(c.activity).includes(cycleId),
    ),
  );

  // An admin rolls the cycle back from Slack.
  expect(await slash(`rollback ${cycleId}`)).toContain(cycleId);
  const final = await stack.result(cycleId);

  expect(final.stage).toBe(CycleStage.ROLLED_BACK);
  expect(final.outcome).toBe('rolled back by slack:UADMIN (1 of 1 endpoint(s) rolled back)');
  expect(final.waves.map((w) => w.state)).toEqual(['rolled_back', 'planned']);
  // Only the pilot wave was ever installed; the broad wave never started.
  expect(installedOn(f)).toHaveLength(2);
  expect(await stack.installJobs(cycleId)).toHaveLength(2);
  await slackSays(cycleId, 'finished: ROLLED_BACK');
  await teamsSays(`Cycle ${cycleId} (${f.prefix}) finished: ROLLED_BACK`);
  expect(stack.serviceNow.change(changeNumber!)).toMatchObject({
    state: '3',
    close_code: 'unsuccessful',
    close_notes: final.outcome,
  });
  expect(stack.serviceNow.workNotes(changeNumber!).join('\n')).toContain('wave pilot reached its failure threshold');
  expect((await mailAbout(cycleId)).parsed.subject).toContain(`Cycle rolled back: ${f.prefix} (${cycleId})`);
}, 240_000);

it('an emergency cycle for a known-exploited CVE (bundled KEV catalog) skips the maintenance windows and raises an emergency change', async () => {
  // The agents report the patch with CVE-2024-3400 (PAN-OS GlobalProtect), which is in the bundled KEV catalog.
  const f = await fleetWithPolicy({
    testEndpoints: 1,
    endpoints: 2,
    cves: ['CVE-2024-3400'],
    policy: () => ({
      maintenance: { respectWindows: true, expectedInstallMinutes: 0 },
      change: { type: 'normal', pollSeconds: 5 },
      approval: { approverGroups: ['ops'], quorum: { low: 1, moderate: 1, high: 1, critical: 1 } },
      emergencyOverrides: { soakSeconds: 1, ignoreWindows: true, changeType: 'emergency' },
    }),
  });
  // The production group's window opens tomorrow: a normal cycle would wait for it.
  const tomorrow = new Date(Date.now() + 86_400_000);
  await stack.seedWindow({
    name: `${f.prefix}-window`,
    rrule: `DTSTART:${rruleStamp(tomorrow)}\nRRULE:FREQ=WEEKLY`,
    durationMinutes: 60,
    groups: [f.prodGroup],
  });
  const cycleId = await slashStart(`start ${f.prefix} group:${f.testGroup},${f.prodGroup} --emergency`);
  const post = await slackApproval(cycleId);
  expect(JSON.stringify(post.args)).toContain(`EMERGENCY Patch cycle ${cycleId}`);
  expect(JSON.stringify(post.args.blocks)).toContain('CVE-2024-3400 (known exploited)');
  const { changeNumber, emergency } = await statusWhen(
    cycleId,
    'the change request',
    (s) => s.changeNumber !== undefined,
  );
  expect(emergency).toBe(true);
  expect(stack.serviceNow.change(changeNumber!)?.type).toBe('emergency');
  await stack.slackRequest(
    blockActionsBody({
      userId: 'UAPPROVER',
      actionId: ACTION.approve,
      value: cycleId,
      channelId: SLACK_CHANNEL,
      messageTs: String(post.answer?.ts),
    }),
  );
  expect(await stack.serviceNow.approve(changeNumber!)).toBe(200);
  const final = await stack.result(cycleId);

  expect(final.stage).toBe(CycleStage.COMPLETED);
  expect(final.reasons.join('\n')).toMatch(/P1: known exploited CVE-2024-3400/);
  // Deployed now, not in tomorrow's window.
  expect(final.waves.every((w) => w.windowStart === undefined)).toBe(true);
  const jobs = await stack.installJobs(cycleId);
  expect(jobs).toHaveLength(3);
  expect(jobs.every((j) => j.notBefore === null || j.notBefore.getTime() < tomorrow.getTime() - 3600_000)).toBe(true);
  expect(installedOn(f)).toHaveLength(3);
  expect(stack.serviceNow.change(changeNumber!)).toMatchObject({
    type: 'emergency',
    state: '3',
    close_code: 'successful',
  });
  expect((await mailAbout(cycleId)).parsed.subject).toContain(`Cycle completed: ${f.prefix} (${cycleId})`);
  // The numbers: the known-exploited patch is no longer outstanding on the story's endpoints.
  expect(await complianceOf(f)).toMatchObject({ endpoints: 3, compliant: 3, knownExploited: 0 });
}, 240_000);

it('a maintenance window opening seconds ahead is waited for, and a blackout date is honoured (that wave waits for the next day)', async () => {
  const f = await fleetWithPolicy({ testEndpoints: 0, endpoints: 2, policy: () => ({}) });
  // A second production group (own patch, own machines): its window opens at the same time, but today is blacked out.
  const g = await fleetWithPolicy({ testEndpoints: 0, endpoints: 2, policy: () => ({}) });
  await stack.savePolicy(
    testPolicyDocument(f.prefix, f.testGroup, {
      autoApprove: { types: ['security'] },
      maintenance: { respectWindows: true, expectedInstallMinutes: 0 },
      waves: [
        { name: 'early', groups: [f.prodGroup] },
        { name: 'blackout', groups: [g.prodGroup] },
      ],
    }),
  );
  const opens = new Date(Math.ceil((Date.now() + 20_000) / 1000) * 1000);
  const today = opens.toISOString().slice(0, 10);
  const rule = { rrule: `DTSTART:${rruleStamp(opens)}\nRRULE:FREQ=DAILY`, durationMinutes: 5 };
  await stack.seedWindow({ name: `${f.prefix}-open`, ...rule, groups: [f.prodGroup] });
  await stack.seedWindow({ name: `${f.prefix}-blackout`, ...rule, blackoutDates: [today], groups: [g.prodGroup] });
  const cycleId = await slashStart(`start ${f.prefix} group:${f.prodGroup},${g.prodGroup}`);
  // Nothing is installed before the window opens.
  await statusWhen(
    cycleId,
    'the first wave waiting for its window',
    (s) => s.stage === CycleStage.DEPLOYING && s.waves[0]!.state === 'waiting_window',
  );
  expect(Date.now()).toBeLessThan(opens.getTime());
  expect(await stack.installJobs(cycleId)).toEqual([]);
  // The window opens: the first wave deploys in it; the blacked-out group's wave waits for tomorrow's.
  const second = await statusWhen(
    cycleId,
    'the second wave waiting for its window',
    (s) => s.waves[0]!.state === 'done' && s.waves[1]!.state === 'waiting_window',
    90_000,
  );
  expect(second.waves[0]).toMatchObject({ windowStart: opens.toISOString(), succeeded: 2 });
  // Its window opened at the same time today, but today is a blackout date: its machines get nothing.
  await new Promise((r) => setTimeout(r, 3000));
  expect(installedOn(g)).toEqual([]);
  expect(installedOn(f)).toEqual(f.prod.map((m) => m.machineId));
  expect(await slash(`cancel ${cycleId} blackout day`)).toContain(cycleId);
  const final = await stack.result(cycleId);

  const jobs = await stack.installJobs(cycleId);
  expect(jobs.map((j) => j.endpointId)).toEqual(f.prod.map((m) => m.endpointId).sort());
  expect(
    jobs.every((j) => j.notBefore?.toISOString() === opens.toISOString() && j.createdAt.getTime() >= opens.getTime()),
  ).toBe(true);
  expect(final.stage).toBe(CycleStage.CANCELLED);
  expect(final.outcome).toBe('cancelled by slack:UADMIN: blackout day');
  await slackSays(cycleId, 'wave 1 of 2 (early) done: 2 ok, 0 failed');
  await slackSays(cycleId, 'finished: CANCELLED');
  expect(slackSaid(cycleId)).not.toContain('(blackout) done');
}, 240_000);
