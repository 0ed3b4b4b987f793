/**
 * Issue #14, the end-to-end suite: whole patch cycles on the in-process stack (test/helpers/e2e-stack.ts: the
 * real workflow bundle on Temporal, the real activities and database, the real HTTP routes; Slack, Teams,
 * ServiceNow and SMTP as local fakes speaking their wire formats), driven only through public interfaces:
 * signed Slack requests, Teams activities, the ServiceNow change manager (whose business rule calls the
 * webhook), and agents answering their jobs. Each case asserts what its users see: the chat messages and
 * card updates, the change request's work notes and close code, the e-mailed report, and the audit chain.
 * Run one case at a time: `npx vitest run test/e2e/cycle-stories.e2e.test.ts -t "<name>"`.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { ACTION } from '../../src/chat/core/card';
import { verifyAuditChain } from '../../src/db/audit';
import { grantRole } from '../../src/db/identities';
import { CycleStage } from '../../src/domain/cycle';
import type { DeploymentPolicyInput } from '../../src/domain/policy';
import { grantApprovers, saveTestPolicy, seedFleet } from '../helpers/cycle-fixtures';
import { startE2eStack, waitFor, REPORT_RECIPIENT, SLACK_CHANNEL, TEAMS_CONVERSATION, type E2eStack } from '../helpers/e2e-stack';
import { startFakeAgent } from '../helpers/fake-agent';
import { blockActionsBody, slashCommandBody } from '../helpers/slack-sign';

const ADMIN = 'UADMIN';
let stack: E2eStack;

beforeAll(async () => {
  stack = await startE2eStack();
  await stack.installTeams();
  await grantRole(stack.db.db, { identity: `slack:${ADMIN}`, role: 'admin', by: 'cli:test' });
  await grantApprovers(stack.db.db, ['slack:UAPPROVER', 'teams:29:approver']);
}, 120_000);

afterAll(async () => {
  // The audit chain every case wrote to still verifies, row by row.
  if (stack) {
    const audit = await verifyAuditChain(stack.db.db);
    await stack.close();
    expect(audit).toMatchObject({ ok: true });
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

/** `/patch <text>` typed by the admin in Slack, signed; returns the cycle id the reply names. */
async function slashStart(text: string): Promise<string> {
  const responseId = randomUUID();
  const res = await stack.slackRequest(slashCommandBody({ userId: ADMIN, text, responseUrl: `${stack.slack.responseUrlBase}${responseId}` }));
  expect(res.status).toBe(200);
  const reply = await waitFor('the reply to the slash command', () => stack.slack.callsTo('response_url').find((c) => c.args.responseId === responseId));
  const cycleId = /PC-\d{8}-[0-9a-f]{6}/.exec(String(reply.args.text))?.[0];
  expect(cycleId, String(reply.args.text)).toBeTruthy();
  return cycleId!;
}

/** Everything the bot said in Slack (posts and updates) about the cycle, as text. */
function slackSaid(cycleId: string, threadTs?: string): string {
  return stack.slack.calls
    .filter((c) => (c.method === 'chat.postMessage' || c.method === 'chat.update') && (JSON.stringify(c.args).includes(cycleId) || (threadTs !== undefined && c.args.thread_ts === threadTs)))
    .map((c) => JSON.stringify(c.args))
    .join('\n');
}

const mailAbout = (cycleId: string) => waitFor(`the e-mail about ${cycleId}`, () => stack.smtp.messages.find((m) => m.parsed.subject?.includes(cycleId)), 20_000);

it('a normal change: approved in Slack and in Teams, the change raised, followed to Scheduled and closed successful', async () => {
  const f = await fleetWithPolicy({
    testEndpoints: 1,
    endpoints: 4,
    policy: () => ({ change: { type: 'normal', pollSeconds: 5 }, approval: { approverGroups: ['ops'], quorum: { low: 2, moderate: 2, high: 2, critical: 2 } } }),
  });
  const agent = startFakeAgent(stack.db.db);
  try {
    const final = await stack.withWorker(async () => {
      const cycleId = await slashStart(`start ${f.prefix} group:${f.testGroup},${f.prodGroup}`);

      // The change request is raised before anyone is asked, and the approval request names it in both chats.
      const post = await waitFor('the Slack approval message', () => stack.slack.callsTo('chat.postMessage').find((c) => JSON.stringify(c.args.blocks ?? '').includes(ACTION.approve) && JSON.stringify(c.args.blocks).includes(cycleId)));
      expect(post.args.channel).toBe(SLACK_CHANNEL);
      const { changeNumber } = await stack.status(cycleId);
      expect(changeNumber).toMatch(/^CHG\d+$/);
      expect(JSON.stringify(post.args.blocks)).toContain(changeNumber!);
      expect(stack.serviceNow.change(changeNumber!)).toMatchObject({ correlation_id: cycleId, type: 'normal' });
      const card = await waitFor('the Teams approval card', () => stack.connector.callsOf('send').find((c) => JSON.stringify(c.activity).includes(cycleId) && JSON.stringify(c.activity).includes(ACTION.approve)));
      expect(card.conversationId).toBe(TEAMS_CONVERSATION);

      // Slack: a signed click; Teams: Action.Execute on the card.
      const ts = await stack.messageRef(cycleId, 'slack', 'approval');
      expect((await stack.slackRequest(blockActionsBody({ userId: 'UAPPROVER', actionId: ACTION.approve, value: cycleId, channelId: SLACK_CHANNEL, messageTs: ts }))).status).toBe(200);
      await waitFor('the first approval', async () => ((await stack.status(cycleId)).approvals.received === 1 ? true : undefined));
      const cardId = await stack.messageRef(cycleId, 'teams', 'approval');
      const answer = await stack.teamsAction({ replyToId: cardId, from: '29:approver', verb: ACTION.approve, data: { cycleId } });
      expect(JSON.stringify(answer.value)).toContain(`You approved cycle ${cycleId}. The cycle is approved.`);

      // Approved in chat, the cycle still waits for the change manager: ServiceNow approves and schedules it.
      await new Promise((r) => setTimeout(r, 1000));
      expect((await stack.status(cycleId)).stage).toBe(CycleStage.AWAIT_APPROVAL);
      expect(await stack.serviceNow.approve(changeNumber!)).toBe(200);
      return stack.result(cycleId);
    });

    const { cycleId, changeNumber } = final;
    expect(final.stage).toBe(CycleStage.COMPLETED);
    expect(final.approvals.records.map((r) => [r.identity, r.channel, r.decision])).toEqual([
      ['slack:UAPPROVER', 'slack', 'approve'],
      ['teams:29:approver', 'teams', 'approve'],
    ]);
    // Slack: the card shows both decisions; its thread got the stages and the summary.
    const lastUpdate = stack.slack.callsTo('chat.update').filter((c) => JSON.stringify(c.args).includes(cycleId)).at(-1)!;
    expect(JSON.stringify(lastUpdate.args.blocks)).toContain('Approved by <@UAPPROVER>');
    expect(JSON.stringify(lastUpdate.args.blocks)).toContain('Approved by teams:29:approver');
    expect(slackSaid(cycleId, String(lastUpdate.args.ts))).toContain(`Cycle ${cycleId} (${f.prefix}) finished: COMPLETED`);
    // Teams: the card updated, the summary as a reply to it.
    const cardId = await stack.messageRef(cycleId, 'teams', 'approval');
    expect(stack.connector.callsOf('update').some((c) => JSON.stringify(c.activity).includes('Approved by slack:UAPPROVER'))).toBe(true);
    expect(stack.connector.callsOf('reply').some((c) => c.activityId === cardId && JSON.stringify(c.activity).includes('finished: COMPLETED'))).toBe(true);
    // ServiceNow: the change followed the cycle (work notes) and was closed successful.
    const change = stack.serviceNow.change(changeNumber!)!;
    expect(change).toMatchObject({ state: '3', close_code: 'successful' });
    const notes = stack.serviceNow.workNotes(changeNumber!).join('\n');
    expect(notes).toContain('Deployment started.');
    expect(notes).toMatch(/wave 2 of 2 \(broad\) done: 2 ok, 0 failed/);
    // The report went out by e-mail, with the change.
    const mail = await mailAbout(cycleId);
    expect(mail.envelopeTo).toContain(REPORT_RECIPIENT);
    expect(mail.parsed.subject).toContain(`Cycle completed: ${f.prefix} (${cycleId})`);
    expect(mail.parsed.text).toContain(changeNumber!);
  } finally {
    await agent.stop();
  }
}, 180_000);
