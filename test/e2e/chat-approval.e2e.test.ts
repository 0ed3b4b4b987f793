/**
 * End to end: a real patch cycle (the real workflow bundle on the real Temporal dev server, the real
 * activities, a real database) whose approval is given by a signed Slack click AND a Teams Action.Execute
 * invoke, posted over HTTP to the real server routes; the fake Slack Web API and the fake Bot Framework
 * connector record what the bot says back. The policy needs two approvals, one from each chat.
 */
import { randomUUID } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createChatChannels, createChatFrontEnds } from '../../src/runtime/chat-runtime';
import { ACTION } from '../../src/chat/core/card';
import { createActivities } from '../../src/activities/index';
import { CycleStage, workflowIdForCycle, type CycleStatus } from '../../src/domain/cycle';
import { createLogger } from '../../src/logging';
import { buildServer } from '../../src/server/app';
import { createCycleService } from '../../src/services/temporal-cycle-service';
import { cycleStatusQuery } from '../../src/workflows/messages';
import { startFakeBotConnector, type FakeBotConnector } from '../fakes/bot-connector';
import { startFakeSlackApi, type FakeSlackApi } from '../fakes/slack-api';
import { grantApprovers, saveTestPolicy, seedFleet } from '../helpers/cycle-fixtures';
import { createTestDatabase, type TestDatabase } from '../helpers/db';
import { startFakeAgent } from '../helpers/fake-agent';
import { blockActionsBody, signedHeaders } from '../helpers/slack-sign';
import { createWorkflowTestEnv, type WorkflowTestEnv } from '../helpers/temporal';

const SECRET = 'e2e-signing-secret-abcdef';
const CHANNEL = 'C0PATCHING';
const TEAMS_CONV = '19:ops@thread.tacv2';
const logger = createLogger(process.env.E2E_LOG_LEVEL ?? 'silent');

let db: TestDatabase;
let t: WorkflowTestEnv;
let slack: FakeSlackApi;
let connector: FakeBotConnector;
let server: FastifyInstance;
let url: string;

beforeAll(async () => {
  db = await createTestDatabase();
  t = await createWorkflowTestEnv();
  slack = await startFakeSlackApi();
  connector = await startFakeBotConnector();
});

afterAll(async () => {
  await server?.close();
  await slack?.close();
  await connector?.close();
  await t?.teardown();
  await db?.close();
});

async function waitFor<T>(what: string, fn: () => Promise<T | undefined> | T | undefined, timeoutMs = 30_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 150));
  }
}

it('a cycle is approved by a Slack click and a Teams Action.Execute, then deploys to completion with the thread kept up to date', async () => {
  const prefix = `chat${randomUUID().slice(0, 6)}`;
  const fleet = await seedFleet(db.db, { prefix, testEndpoints: 1, endpoints: 4 });
  await saveTestPolicy(db.db, prefix, fleet.testGroup, {
    approval: { approverGroups: ['ops'], quorum: { low: 2, moderate: 2, high: 2, critical: 2 } },
  });
  await grantApprovers(db.db, ['slack:UAPPROVER', 'teams:29:approver']);

  const config = {
    slack: { enabled: true as const, botToken: 'xoxb-e2e', signingSecret: SECRET, appToken: undefined, apiUrl: slack.url, defaultChannel: CHANNEL },
    teams: { enabled: true, mode: 'emulator' as const, appId: undefined, appPassword: undefined, tenantId: undefined, serviceUrls: [] },
  };
  const channels = createChatChannels(config, db.db, logger);
  const service = createCycleService({ client: t.env.client, db: db.db, taskQueue: t.taskQueue });
  const fronts = createChatFrontEnds(config, { db: db.db, service, channels, logger });
  server = await buildServer({ logger, health: [], routes: fronts.routes });
  await server.listen({ host: '127.0.0.1', port: 0 });
  url = `http://127.0.0.1:${(server.server.address() as { port: number }).port}`;

  // The bot is installed in a Teams channel: its conversation reference is stored for proactive cards.
  const install = await fetch(`${url}/api/messages`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      type: 'installationUpdate',
      action: 'add',
      id: 'install-1',
      serviceUrl: connector.serviceUrl,
      channelId: 'msteams',
      from: { id: '29:admin' },
      recipient: { id: '28:patchops-bot', name: 'patchops' },
      conversation: { id: TEAMS_CONV, conversationType: 'channel', tenantId: 't1' },
      channelData: { tenant: { id: 't1' } },
    }),
  });
  expect(install.status).toBe(200);

  const agent = startFakeAgent(db.db);
  let teamsCardId = '';
  try {
    const final = await t.withWorker({ ...createActivities({ database: db, logger, chat: channels.notifier, changeDesk: null }) }, async () => {
      const { cycleId } = await service.start({ policyName: prefix, scope: { groups: [fleet.testGroup, fleet.prodGroup] }, requestedBy: 'cli:requester' });
      const handle = t.env.client.workflow.getHandle(workflowIdForCycle(cycleId));

      // The approval request reaches both chats.
      const post = await waitFor('the Slack approval message', () => slack.callsTo('chat.postMessage').find((c) => JSON.stringify(c.args.blocks ?? '').includes(ACTION.approve)));
      expect(post.args.channel).toBe(CHANNEL);
      expect(JSON.stringify(post.args.blocks)).toContain(cycleId);
      const card = await waitFor('the Teams approval card', () => connector.callsOf('send').find((c) => JSON.stringify(c.activity).includes(ACTION.approve)));
      expect(card.conversationId).toBe(TEAMS_CONV);
      const st = (await handle.query(cycleStatusQuery)) as CycleStatus;
      expect(st.stage).toBe(CycleStage.AWAIT_APPROVAL);
      expect(st.approvals.needed).toBe(2);

      // 1) Slack: a signed click, acknowledged fast, the Update called as slack:UAPPROVER.
      const ts = await waitFor('the stored Slack ts', async () => {
        const row = await db.db.query.chatMessages.findFirst({ where: (m, { and, eq }) => and(eq(m.cycleId, cycleId), eq(m.platform, 'slack'), eq(m.key, 'approval')) });
        return row?.messageRef?.split(':')[1];
      });
      const body = blockActionsBody({ userId: 'UAPPROVER', actionId: ACTION.approve, value: cycleId, channelId: CHANNEL, messageTs: ts });
      const t0 = performance.now();
      const click = await fetch(`${url}/slack/events`, { method: 'POST', headers: signedHeaders(SECRET, body), body });
      const ackMs = performance.now() - t0;
      expect(click.status).toBe(200);
      expect(ackMs).toBeLessThan(3000);
      const eph = await waitFor('the ephemeral outcome', () => slack.callsTo('chat.postEphemeral').find((c) => c.args.user === 'UAPPROVER'));
      expect(String(eph.args.text)).toContain(`You approved cycle ${cycleId}. 1 of 2 approvals so far.`);

      // 2) Teams: Action.Execute on the card, answered with the updated card.
      const cardId = await waitFor('the stored Teams activity id', async () => {
        const row = await db.db.query.chatMessages.findFirst({ where: (m, { and, eq }) => and(eq(m.cycleId, cycleId), eq(m.platform, 'teams'), eq(m.key, 'approval')) });
        return row?.messageRef ?? undefined;
      });
      teamsCardId = cardId;
      const invoke = await fetch(`${url}/api/messages`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          type: 'invoke',
          name: 'adaptiveCard/action',
          id: 'invoke-1',
          replyToId: cardId,
          serviceUrl: connector.serviceUrl,
          channelId: 'msteams',
          from: { id: '29:approver', name: 'Approver' },
          recipient: { id: '28:patchops-bot' },
          conversation: { id: TEAMS_CONV, conversationType: 'channel', tenantId: 't1' },
          value: { action: { type: 'Action.Execute', verb: ACTION.approve, data: { cycleId } }, trigger: 'manual' },
        }),
      });
      expect(invoke.status).toBe(200);
      const answer = (await invoke.json()) as { statusCode: number; type: string; value: unknown };
      expect(answer.statusCode).toBe(200);
      expect(JSON.stringify(answer.value)).toContain(`You approved cycle ${cycleId}. The cycle is approved.`);

      return (await handle.result()) as CycleStatus;
    });

    expect(final.stage).toBe(CycleStage.COMPLETED);
    expect(final.approvals.records.map((r) => [r.identity, r.channel, r.decision])).toEqual([
      ['slack:UAPPROVER', 'slack', 'approve'],
      ['teams:29:approver', 'teams', 'approve'],
    ]);
    // The Slack message was updated in place to show both decisions; the thread got the stages and the summary.
    const lastUpdate = slack.callsTo('chat.update').at(-1)!;
    expect(JSON.stringify(lastUpdate.args.blocks)).toContain('Approved by <@UAPPROVER>');
    expect(JSON.stringify(lastUpdate.args.blocks)).toContain('Approved by teams:29:approver');
    const threadTs = lastUpdate.args.ts;
    const inThread = slack.callsTo('chat.postMessage').filter((c) => c.args.thread_ts === threadTs);
    expect(inThread.length).toBeGreaterThanOrEqual(2);
    expect(inThread.some((c) => String(c.args.text).includes('finished: COMPLETED'))).toBe(true);
    // Teams: every copy of the card updated, stages as replies to it.
    expect(connector.callsOf('update').some((c) => JSON.stringify(c.activity).includes('Approved by slack:UAPPROVER'))).toBe(true);
    const replies = connector.callsOf('reply').filter((c) => c.activityId === teamsCardId);
    expect(replies.length).toBeGreaterThanOrEqual(2);
    expect(replies.some((c) => JSON.stringify(c.activity).includes('finished: COMPLETED'))).toBe(true);
  } finally {
    await agent.stop();
  }
}, 120_000);
