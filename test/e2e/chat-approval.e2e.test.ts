/**
 * End to end on real processes (test/helpers/e2e-process-stack.ts): a `patchops server` and a `patchops worker`
 * process run a real patch cycle for a simulated fleet, started through the REST API, whose approval is given by
 * a signed Slack click AND a Teams Action.Execute invoke posted over HTTP to the server process; the fake Slack Web
 * API and the fake Bot Framework connector record what the bot says back. The policy needs two approvals, one from
 * each chat. (The groups are seeded in the database: they have no public path yet.)
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { ACTION } from '../../src/chat/core/card';
import { CycleStage } from '../../src/domain/cycle';
import { testPolicyDocument } from '../helpers/cycle-fixtures';
import {
  startE2eProcessStack,
  waitFor,
  windowsUpdate,
  SLACK_CHANNEL as CHANNEL,
  TEAMS_CONVERSATION as TEAMS_CONV,
  type E2eProcessStack,
} from '../helpers/e2e-process-stack';
import { blockActionsBody } from '../helpers/slack-sign';

let stack: E2eProcessStack;

beforeAll(async () => {
  stack = await startE2eProcessStack('chat-approval');
}, 300_000);

afterAll(async () => {
  await stack?.close();
}, 120_000);

it('a cycle is approved by a Slack click and a Teams Action.Execute, then deploys to completion with the thread kept up to date', async () => {
  const { slack, connector } = stack;
  const prefix = 'chat';
  const sim = await stack.fleet({ prefix, count: 5, patches: [windowsUpdate('KB5042001')] });
  const machines = [...sim.machines.values()].sort((a, b) => a.machineId.localeCompare(b.machineId));
  await stack.seedGroups([
    { name: `${prefix}-test`, machines: machines.slice(0, 1), test: true },
    { name: `${prefix}-prod`, machines: machines.slice(1) },
  ]);
  await stack.savePolicy(
    testPolicyDocument(prefix, `${prefix}-test`, {
      approval: { approverGroups: ['ops'], quorum: { low: 2, moderate: 2, high: 2, critical: 2 } },
    }),
  );
  for (const approver of ['slack:UAPPROVER', 'teams:29:approver']) await stack.grant(approver, 'approver', 'ops');
  // The bot is installed in a Teams channel: its conversation reference is stored for proactive cards.
  await stack.installTeams();

  const started = await stack.api<{ data: { cycleId: string } }>('POST', '/cycles', {
    policy: prefix,
    scope: { groups: [`${prefix}-test`, `${prefix}-prod`] },
  });
  const { cycleId } = started.data;

  // The approval request reaches both chats.
  const post = await waitFor(
    'the Slack approval message',
    () => slack.callsTo('chat.postMessage').find((c) => JSON.stringify(c.args.blocks ?? '').includes(ACTION.approve)),
    60_000,
  );
  expect(post.args.channel).toBe(CHANNEL);
  expect(JSON.stringify(post.args.blocks)).toContain(cycleId);
  const card = await waitFor('the Teams approval card', () =>
    connector.callsOf('send').find((c) => JSON.stringify(c.activity).includes(ACTION.approve)),
  );
  expect(card.conversationId).toBe(TEAMS_CONV);
  const st = await stack.status(cycleId);
  expect(st.stage).toBe(CycleStage.AWAIT_APPROVAL);
  expect(st.approvals.needed).toBe(2);

  // 1) Slack: a signed click, acknowledged fast, the Update called as slack:UAPPROVER.
  const body = blockActionsBody({
    userId: 'UAPPROVER',
    actionId: ACTION.approve,
    value: cycleId,
    channelId: CHANNEL,
    messageTs: String(post.answer?.ts),
  });
  const t0 = performance.now();
  const click = await stack.slackRequest(body);
  const ackMs = performance.now() - t0;
  expect(click.status).toBe(200);
  expect(ackMs).toBeLessThan(3000);
  const eph = await waitFor('the ephemeral outcome', () =>
    slack.callsTo('chat.postEphemeral').find((c) => c.args.user === 'UAPPROVER'),
  );
  expect(String(eph.args.text)).toContain(`You approved cycle ${cycleId}. 1 of 2 approvals so far.`);

  // 2) Teams: Action.Execute on the card, answered with the updated card.
  const teamsCardId = card.answeredId!;
  const answer = await stack.teamsAction({
    replyToId: teamsCardId,
    from: '29:approver',
    verb: ACTION.approve,
    data: { cycleId },
  });
  expect(answer.statusCode).toBe(200);
  expect(JSON.stringify(answer.value)).toContain(`You approved cycle ${cycleId}. The cycle is approved.`);

  const final = await stack.result(cycleId);
  expect(final.stage).toBe(CycleStage.COMPLETED);
  expect(final.approvals.records.map((r) => [r.identity, r.channel, r.decision])).toEqual([
    ['slack:UAPPROVER', 'slack', 'approve'],
    ['teams:29:approver', 'teams', 'approve'],
  ]);
  // The Slack message was updated in place to show both decisions; the thread got the stages and the summary (the
  // status shows the end as the worker starts telling the chats).
  await waitFor('the summary in both chats', () =>
    slack.callsTo('chat.postMessage').some((c) => String(c.args.text).includes('finished: COMPLETED')) &&
    connector.callsOf('reply').some((c) => JSON.stringify(c.activity).includes('finished: COMPLETED'))
      ? true
      : undefined,
  );
  const lastUpdate = slack.callsTo('chat.update').at(-1)!;
  expect(JSON.stringify(lastUpdate.args.blocks)).toContain('Approved by <@UAPPROVER>');
  expect(JSON.stringify(lastUpdate.args.blocks)).toContain('Approved by teams:29:approver');
  const threadTs = lastUpdate.args.ts;
  const inThread = slack.callsTo('chat.postMessage').filter((c) => c.args.thread_ts === threadTs);
  expect(inThread.length).toBeGreaterThanOrEqual(2);
  expect(inThread.some((c) => String(c.args.text).includes('finished: COMPLETED'))).toBe(true);
  // Teams: every copy of the card updated, stages as replies to it.
  expect(
    connector.callsOf('update').some((c) => JSON.stringify(c.activity).includes('Approved by slack:UAPPROVER')),
  ).toBe(true);
  const replies = connector.callsOf('reply').filter((c) => c.activityId === teamsCardId);
  expect(replies.length).toBeGreaterThanOrEqual(2);
  expect(replies.some((c) => JSON.stringify(c.activity).includes('finished: COMPLETED'))).toBe(true);
}, 240_000);
