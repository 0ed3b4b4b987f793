/**
 * Issue #14, the end-to-end suite on real processes (test/helpers/e2e-process-stack.ts): a `patchops server` and a
 * `patchops worker` process on a Temporal dev server and a database of their own, configured by environment to
 * talk to the local fakes of Slack, Teams, ServiceNow and SMTP, and simulated fleets (agent-sim) on the real agent
 * protocol. Each case is driven only through public interfaces (the REST API with the first admin's token, signed
 * Slack requests, Teams activities, ServiceNow, the agent protocol, the dashboard) except the groups and maintenance
 * windows, which have no public path yet and are seeded in the database. Each case asserts what its users see: the
 * chat messages and card updates, the change request's work notes and close code, the e-mailed report, the
 * numbers over HTTP, and at the end the audit chain, verified through the API.
 * Run one case at a time: `npx vitest run test/e2e/cycle-stories-processes.e2e.test.ts -t "<name>"`.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { SimFleet, SimMachine } from '../../src/agent-sim/fleet';
import { ACTION } from '../../src/chat/core/card';
import { CycleStage, type CycleStatus } from '../../src/domain/cycle';
import type { DeploymentPolicyInput } from '../../src/domain/policy';
import type { ComplianceSummary } from '../../src/db/read-model/compliance';
import { testPolicyDocument } from '../helpers/cycle-fixtures';
import { startE2eProcessStack, waitFor, windowsUpdate, REPORT_RECIPIENT, SLACK_CHANNEL, TEAMS_CONVERSATION, type E2eProcessStack } from '../helpers/e2e-process-stack';
import { blockActionsBody, slashCommandBody } from '../helpers/slack-sign';

const ADMIN = 'UADMIN';
let stack: E2eProcessStack;
let kb = 5041000;

beforeAll(async () => {
  stack = await startE2eProcessStack('stories');
  await stack.installTeams();
  await stack.grant(`slack:${ADMIN}`, 'admin');
  for (const approver of ['slack:UAPPROVER', 'slack:UREJECTER', 'teams:29:approver']) await stack.grant(approver, 'approver', 'ops');
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
  sim: SimFleet;
  patchId: string;
  testGroup: string;
  prodGroup: string;
  test: SimMachine[];
  prod: SimMachine[];
}

/**
 * A simulated fleet of its own (`testEndpoints` in the test ring, `endpoints` in production) missing one patch of
 * its own, grouped (seeded: no public path), and a policy named after it stored through the API.
 */
async function fleetWithPolicy(o: { testEndpoints: number; endpoints: number; policy: (testGroup: string) => Partial<DeploymentPolicyInput>; cves?: string[]; failingMachines?: (prefix: string) => string[] }): Promise<StoryFleet> {
  const prefix = `e2e${randomUUID().slice(0, 6)}`;
  const patchId = `KB${(kb += 1)}`;
  const sim = await stack.fleet({ prefix, count: o.testEndpoints + o.endpoints, patches: [windowsUpdate(patchId, o.cves)], ...(o.failingMachines ? { failingMachines: o.failingMachines(prefix) } : {}) });
  const machines = [...sim.machines.values()].sort((a, b) => a.machineId.localeCompare(b.machineId));
  const f = { prefix, sim, patchId, testGroup: `${prefix}-test`, prodGroup: `${prefix}-prod`, test: machines.slice(0, o.testEndpoints), prod: machines.slice(o.testEndpoints) };
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

/** Waits until the cycle's status (over the API) satisfies `ok`. */
const statusWhen = (cycleId: string, what: string, ok: (s: CycleStatus) => boolean, timeoutMs = 60_000) =>
  waitFor(what, async () => {
    const s = await stack.status(cycleId);
    return ok(s) ? s : undefined;
  }, timeoutMs);

/** The Slack approval message of the cycle, as the bot posted it, with the ts Slack gave it. */
const slackApproval = (cycleId: string) =>
  waitFor('the Slack approval message', () => stack.slack.callsTo('chat.postMessage').find((c) => JSON.stringify(c.args.blocks ?? '').includes(ACTION.approve) && JSON.stringify(c.args).includes(cycleId)), 60_000);

/** The Teams approval card of the cycle, as the bot sent it, with the activity id the connector gave it. */
const teamsApproval = (cycleId: string) =>
  waitFor('the Teams approval card', () => stack.connector.callsOf('send').find((c) => JSON.stringify(c.activity).includes(cycleId) && JSON.stringify(c.activity).includes(ACTION.approve)), 60_000);

/** Everything the bot said in Slack about the cycle (posts naming it, their threads, updates), as text. */
function slackSaid(cycleId: string): string {
  const threads = new Set(stack.slack.callsTo('chat.postMessage').filter((c) => JSON.stringify(c.args).includes(cycleId)).map((c) => String(c.answer?.ts)));
  return stack.slack.calls
    .filter((c) => (c.method === 'chat.postMessage' || c.method === 'chat.update') && (JSON.stringify(c.args).includes(cycleId) || threads.has(String(c.args.thread_ts))))
    .map((c) => JSON.stringify(c.args))
    .join('\n');
}

/** Waits until the cycle's Slack messages say `text`. */
const slackSays = (cycleId: string, text: string) => waitFor(`Slack to say "${text}"`, () => (slackSaid(cycleId).includes(text) ? true : undefined), 20_000);

const mailAbout = (cycleId: string) => waitFor(`the e-mail about ${cycleId}`, () => stack.smtp.messages.find((m) => m.parsed.subject?.includes(cycleId)), 30_000);

/** The compliance numbers of the story's groups, as `POST /api/v1/reports/compliance` (and the dashboard) count them. */
async function complianceOf(f: StoryFleet): Promise<ComplianceSummary> {
  const reply = await stack.api<{ data: { summary: ComplianceSummary } }>('POST', '/reports/compliance', { scope: { groups: [f.testGroup, f.prodGroup] } });
  return reply.data.summary;
}

/** Install attempts the simulated agents ran (counted on the agent side), by machine id. */
const installedOn = (f: StoryFleet) => [...f.sim.installsRun.keys()].map((k) => k.split(' ')[0]!).sort();

it('a normal change: approved in Slack and in Teams, the change raised, followed to Scheduled and closed successful', async () => {
  const f = await fleetWithPolicy({
    testEndpoints: 1,
    endpoints: 4,
    policy: () => ({ change: { type: 'normal', pollSeconds: 5 }, approval: { approverGroups: ['ops'], quorum: { low: 2, moderate: 2, high: 2, critical: 2 } } }),
  });
  expect(await complianceOf(f)).toMatchObject({ endpoints: 5, compliant: 0 });
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
  expect((await stack.slackRequest(blockActionsBody({ userId: 'UAPPROVER', actionId: ACTION.approve, value: cycleId, channelId: SLACK_CHANNEL, messageTs: ts }))).status).toBe(200);
  await statusWhen(cycleId, 'the first approval', (s) => s.approvals.received === 1);
  const answer = await stack.teamsAction({ replyToId: card.answeredId!, from: '29:approver', verb: ACTION.approve, data: { cycleId } });
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
  const lastUpdate = stack.slack.callsTo('chat.update').filter((c) => JSON.stringify(c.args).includes(cycleId)).at(-1)!;
  expect(JSON.stringify(lastUpdate.args.blocks)).toContain('Approved by <@UAPPROVER>');
  expect(JSON.stringify(lastUpdate.args.blocks)).toContain('Approved by teams:29:approver');
  await slackSays(cycleId, `Cycle ${cycleId} (${f.prefix}) finished: COMPLETED`);
  // Teams: the card updated, the summary as a reply to it.
  expect(stack.connector.callsOf('update').some((c) => JSON.stringify(c.activity).includes('Approved by slack:UAPPROVER'))).toBe(true);
  expect(stack.connector.callsOf('reply').some((c) => c.activityId === card.answeredId && JSON.stringify(c.activity).includes('finished: COMPLETED'))).toBe(true);
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
  const web = await stack.dashboard();
  const page = await web.req(`/cycles/${encodeURIComponent(cycleId)}`);
  expect(page.status).toBe(200);
  expect(page.text).toMatch(/data-testid="cycle-stage">[^<]*<[^>]*>COMPLETED/);
  expect(page.text).toContain(`data-testid="change-number">${changeNumber}<`);
}, 240_000);
