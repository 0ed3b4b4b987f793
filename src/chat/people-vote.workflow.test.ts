/**
 * People, not identities, vote — through real HTTP: signed Slack interactivity requests and slash commands, Teams
 * `adaptiveCard/action` invokes (emulator mode), the real DecisionDesk, the real cycle service, a real Temporal
 * server running the real patch-cycle workflow, and a real database. The fake Slack Web API answers `users.info`
 * and the fake Bot Connector answers the Teams roster (`GET /v3/conversations/{id}/members/{id}`), so an identity
 * linked to nobody is linked to its person by e-mail on its first vote.
 */
import { randomUUID } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeBotConnector, type FakeBotConnector } from '../../test/fakes/bot-connector';
import { startFakeSlackApi, type FakeSlackApi } from '../../test/fakes/slack-api';
import { grantApprovers, saveTestPolicy, seedFleet } from '../../test/helpers/cycle-fixtures';
import { createTestDatabase, type TestDatabase } from '../../test/helpers/db';
import { startFakeAgent } from '../../test/helpers/fake-agent';
import { RecordingChatNotifier } from '../../test/helpers/ports';
import { blockActionsBody, signedHeaders, slashCommandBody } from '../../test/helpers/slack-sign';
import { createWorkflowTestEnv, type WorkflowTestEnv } from '../../test/helpers/temporal';
import { createActivities } from '../activities/index';
import { createCommandRunner } from '../commands/runner';
import { grantRole } from '../db/identities';
import { listPeople } from '../db/people';
import { CycleStage, workflowIdForCycle, type CycleStatus } from '../domain/cycle';
import { createLogger } from '../logging';
import { buildServer } from '../server/app';
import type { CycleService } from '../services/cycle-service';
import { createCycleService } from '../services/temporal-cycle-service';
import { ACTION } from './core/card';
import { DecisionDesk } from './core/decisions';
import { createSlackBot } from './slack/app';
import { SlackIdentityDirectory } from './slack/directory';
import { createSlackWebClient, SlackChatChannel } from './slack/channel';
import { createTeamsAdapter, createTeamsBot } from './teams/bot';
import { TeamsChatChannel } from './teams/channel';
import { serviceUrlPolicy } from './teams/service-url';

const SECRET = 'test-signing-secret-0123456789';
const logger = createLogger('silent');
const CONV = '19:patching@thread.tacv2';

let db: TestDatabase;
let t: WorkflowTestEnv;
let service: CycleService;
let slack: FakeSlackApi;
let connector: FakeBotConnector;
let server: FastifyInstance;
let url: string;
let seq = 0;

beforeAll(async () => {
  db = await createTestDatabase();
  t = await createWorkflowTestEnv();
  service = createCycleService({ client: t.env.client, db: db.db, taskQueue: t.taskQueue });
  slack = await startFakeSlackApi();
  connector = await startFakeBotConnector();
  const desk = new DecisionDesk({ service, db: db.db, logger });
  const slackChannel = new SlackChatChannel({
    client: createSlackWebClient('xoxb-test-token', slack.url),
    db: db.db,
    logger,
    defaultChannel: 'C0PATCHING',
  });
  const runCommand = createCommandRunner({
    service,
    db: db.db,
    logger,
    directory: new SlackIdentityDirectory(slackChannel.client),
  });
  const slackBot = createSlackBot({
    botToken: 'xoxb-test-token',
    signingSecret: SECRET,
    apiUrl: slack.url,
    db: db.db,
    service,
    desk,
    channel: slackChannel,
    logger,
    runCommand,
  });
  const adapter = createTeamsAdapter({ emulator: true }, logger);
  const teamsChannel = new TeamsChatChannel({
    adapter,
    appId: undefined,
    db: db.db,
    logger,
    serviceUrlAllowed: serviceUrlPolicy({ allowLoopback: true }),
  });
  const teamsBot = createTeamsBot({
    adapter,
    db: db.db,
    desk,
    channel: teamsChannel,
    logger,
    mode: 'emulator',
    serviceUrlAllowed: serviceUrlPolicy({ allowLoopback: true }),
    runCommand,
  });
  server = await buildServer({ logger, health: [], routes: [slackBot.routes!, teamsBot.routes] });
  await server.listen({ host: '127.0.0.1', port: 0 });
  url = `http://127.0.0.1:${(server.server.address() as { port: number }).port}`;
  await grantRole(db.db, { identity: 'slack:UOPS', role: 'admin', by: 'test' });
}, 120_000);

afterAll(async () => {
  await server?.close();
  await slack?.close();
  await connector?.close();
  await t?.teardown();
  await db?.close();
});

// ------------------------------------------------------------------ the platforms, over HTTP

async function slackPost(body: string): Promise<void> {
  const res = await fetch(`${url}/slack/events`, { method: 'POST', body, headers: signedHeaders(SECRET, body) });
  expect(res.status).toBe(200);
}

/** A click on Approve in Slack; returns what the clicker was told (the ephemeral message). */
async function slackApprove(userId: string, cycleId: string): Promise<string> {
  const before = slack.callsTo('chat.postEphemeral').length;
  await slackPost(
    blockActionsBody({
      userId,
      actionId: ACTION.approve,
      value: cycleId,
      channelId: 'C0PATCHING',
      messageTs: `1700000000.${String(++seq).padStart(6, '0')}`,
    }),
  );
  const calls = await slack.waitFor('chat.postEphemeral', before + 1, 20_000);
  return String(calls.at(-1)!.args.text);
}

/** `/patch <text>` in Slack; returns the reply posted to the response_url. */
async function slackCommand(userId: string, text: string): Promise<string> {
  const before = slack.callsTo('response_url').length;
  await slackPost(
    slashCommandBody({ userId, text, channelId: 'C0PATCHING', responseUrl: `${slack.responseUrlBase}${++seq}` }),
  );
  const calls = await slack.waitFor('response_url', before + 1, 20_000);
  return String(calls.at(-1)!.args.text);
}

/** An Approve on the Teams card (Action.Execute); returns the text of the card the bot answers with. */
async function teamsApprove(fromId: string, cycleId: string): Promise<string> {
  seq += 1;
  const activity = {
    type: 'invoke',
    name: 'adaptiveCard/action',
    id: `incoming-${seq}`,
    timestamp: new Date().toISOString(),
    serviceUrl: connector.serviceUrl,
    channelId: 'msteams',
    from: { id: fromId, name: fromId },
    conversation: { id: CONV, conversationType: 'channel', tenantId: 'tenant-1', isGroup: true },
    recipient: { id: '28:patchops-bot', name: 'patchops' },
    channelData: { tenant: { id: 'tenant-1' } },
    replyToId: `card-${seq}`,
    value: { action: { type: 'Action.Execute', verb: ACTION.approve, data: { cycleId } }, trigger: 'manual' },
  };
  const res = await fetch(`${url}/api/messages`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(activity),
  });
  expect(res.status).toBe(200);
  return JSON.stringify(await res.json());
}

// ------------------------------------------------------------------ cycles

async function until(cycleId: string, ok: (s: CycleStatus) => boolean, ms = 30_000): Promise<CycleStatus> {
  const end = Date.now() + ms;
  for (;;) {
    const s = await service.status(cycleId);
    if (ok(s) || Date.now() > end) return s;
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** A fleet and a policy of their own whose every risk needs two approvers (separation of duties on, the default). */
async function twoPersonPolicy(): Promise<{ policy: string; scope: string }> {
  const prefix = `pv${randomUUID().slice(0, 8)}`;
  const f = await seedFleet(db.db, { prefix, testEndpoints: 1, endpoints: 2 });
  await saveTestPolicy(db.db, prefix, f.testGroup, {
    approval: { approverGroups: ['ops'], quorum: { low: 2, moderate: 2, high: 2, critical: 2 } },
  });
  return { policy: prefix, scope: `group:${f.testGroup},${f.prodGroup}` };
}

/** Runs `fn` with a worker and the fake agent; terminates the cycle's workflow afterwards so nothing is left running. */
async function withCycleWorker(fn: (cycleIds: string[]) => Promise<void>): Promise<void> {
  const agent = startFakeAgent(db.db);
  const cycleIds: string[] = [];
  try {
    await t.withWorker(createActivities({ database: db, logger, chat: new RecordingChatNotifier() }), () =>
      fn(cycleIds),
    );
  } finally {
    await agent.stop();
    for (const id of cycleIds)
      await t.env.client.workflow
        .getHandle(workflowIdForCycle(id))
        .terminate('test over')
        .catch(() => undefined);
  }
}

describe('people, not identities, vote', () => {
  it('a person with linked Slack and Teams identities counts once toward a two-person quorum; a second person completes it', async () => {
    const { policy, scope } = await twoPersonPolicy();
    await grantApprovers(db.db, ['slack:UALICE', 'teams:29:alice', 'slack:UBOB']);
    // The admin links alice's identities with the command core's verb, from Slack.
    expect(await slackCommand('UOPS', 'people link alice slack:UALICE')).toContain('slack:UALICE is now alice');
    expect(await slackCommand('UOPS', 'people link alice teams:29:alice')).toContain('teams:29:alice is now alice');
    expect(await slackCommand('UOPS', 'people list')).toContain('alice  slack:UALICE, teams:29:alice');

    await withCycleWorker(async (ids) => {
      const { cycleId } = await service.start({
        policyName: policy,
        scope: { groups: scope.slice('group:'.length).split(',') },
        requestedBy: 'slack:UOPS',
      });
      ids.push(cycleId);
      expect((await until(cycleId, (s) => s.stage === CycleStage.AWAIT_APPROVAL)).stage).toBe(
        CycleStage.AWAIT_APPROVAL,
      );

      expect(await slackApprove('UALICE', cycleId)).toContain(
        `You approved cycle ${cycleId}. 1 of 2 approvals so far.`,
      );
      const second = await teamsApprove('29:alice', cycleId);
      expect(second).toContain('was not recorded: you already voted (approve at');
      expect(second).toContain('as slack:UALICE');
      const waiting = await service.status(cycleId);
      expect(waiting.stage).toBe(CycleStage.AWAIT_APPROVAL);
      expect(waiting.approvals).toMatchObject({ received: 1, needed: 2 });
      expect(waiting.approvals.records).toEqual([
        expect.objectContaining({ identity: 'slack:UALICE', person: 'person:alice', decision: 'approve' }),
      ]);

      expect(await slackApprove('UBOB', cycleId)).toContain(`You approved cycle ${cycleId}. The cycle is approved.`);
      const approved = await until(cycleId, (s) => s.stage !== CycleStage.AWAIT_APPROVAL);
      expect(approved.approvals).toMatchObject({ received: 2, needed: 2 });
      expect(approved.reasons).toContain('approved by slack:UALICE, slack:UBOB');
    });
  });

  it('the person who started a cycle from Slack cannot approve it from Teams (linked by the Teams roster e-mail); another person can', async () => {
    const { policy, scope } = await twoPersonPolicy();
    await grantRole(db.db, { identity: 'slack:UCAROL', role: 'admin', by: 'test' });
    await grantApprovers(db.db, ['slack:UCAROL', 'teams:29:carol', 'slack:UDAVE', 'teams:29:erin']);
    expect(await slackCommand('UOPS', 'people link carol slack:UCAROL email:carol@example.com')).toContain(
      'slack:UCAROL is now carol',
    );
    // Carol's Teams identity is linked to nobody; the Teams roster knows her e-mail (as userPrincipalName).
    connector.addMember({
      id: '29:carol',
      name: 'Carol',
      objectId: '00000000-0000-0000-0000-00000000c0c0',
      userPrincipalName: 'Carol@Example.com',
    });
    // Dave is a person by e-mail only; Slack's users.info tells his Slack identity's address.
    expect(await slackCommand('UOPS', 'people link dave web:dave email:dave@example.com')).toContain(
      'web:dave is now dave',
    );
    slack.addUser({ id: 'UDAVE', name: 'dave', email: 'dave@example.com' });
    // Erin is in no people row: her Teams identity is her own person (the roster lookup finds nothing and the vote goes on).

    await withCycleWorker(async (ids) => {
      const started = await slackCommand('UCAROL', `start ${policy} ${scope}`);
      const cycleId = /cycle (PC-\S+) started/.exec(started)?.[1];
      expect(cycleId, started).toBeDefined();
      ids.push(cycleId!);
      await until(cycleId!, (s) => s.stage === CycleStage.AWAIT_APPROVAL);

      const own = await teamsApprove('29:carol', cycleId!);
      expect(own).toContain('you requested this cycle; someone else must approve');
      expect(connector.callsOf('getMember').map((c) => c.activityId)).toContain('29:carol');
      expect((await listPeople(db.db)).find((p) => p.name === 'carol')?.identities).toEqual([
        'slack:UCAROL',
        'teams:29:carol',
      ]);
      expect((await service.status(cycleId!)).approvals).toMatchObject({ received: 0, records: [] });

      expect(await slackApprove('UDAVE', cycleId!)).toContain('1 of 2 approvals so far.');
      expect(slack.callsTo('users.info').map((c) => c.args.user)).toContain('UDAVE');
      expect((await listPeople(db.db)).find((p) => p.name === 'dave')?.identities).toEqual(['slack:UDAVE', 'web:dave']);
      expect(await teamsApprove('29:erin', cycleId!)).toContain(
        `You approved cycle ${cycleId}. The cycle is approved.`,
      );
      const done = await until(cycleId!, (s) => s.stage !== CycleStage.AWAIT_APPROVAL);
      expect(done.approvals.records.map((r) => [r.identity, r.person])).toEqual([
        ['slack:UDAVE', 'person:dave'],
        ['teams:29:erin', 'teams:29:erin'],
      ]);
    });
  });

  it("people link slack:U… records the person's e-mail from Slack users.info, so their Teams identity links by it", async () => {
    slack.addUser({ id: 'UFRANK', name: 'frank', email: 'frank@example.com' });
    expect(await slackCommand('UOPS', 'people link frank slack:UFRANK')).toContain(
      "slack:UFRANK is now frank; their votes count as one person's (e-mail frank@example.com from the platform)",
    );
    expect((await listPeople(db.db)).find((p) => p.name === 'frank')).toEqual({
      name: 'frank',
      email: 'frank@example.com',
      identities: ['slack:UFRANK'],
    });
    // Without the users:read.email scope Slack leaves the address out: the link is made, no e-mail recorded.
    slack.addUser({ id: 'UGRACE', name: 'grace' });
    expect(await slackCommand('UOPS', 'people link grace slack:UGRACE')).toMatch(
      /slack:UGRACE is now grace; their votes count as one person's$/,
    );
    // Slack failing does not fail the link.
    slack.failNext('users.info', 'ratelimited');
    expect(await slackCommand('UOPS', 'people link heidi slack:UHEIDI')).toContain('slack:UHEIDI is now heidi');
    expect((await listPeople(db.db)).filter((p) => ['grace', 'heidi'].includes(p.name)).map((p) => p.email)).toEqual([
      null,
      null,
    ]);
  });
});
