/**
 * Teams over real HTTP: Bot Framework activities posted to /api/messages (emulator mode, no JWT, from loopback) with
 * serviceUrl at the fake connector, which records what the bot sends back; a real database.
 */
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startFakeBotConnector, type FakeBotConnector } from '../../../test/fakes/bot-connector';
import { RecordingCycleService } from '../../../test/fakes/recording-cycle-service';
import { createTestDatabase, type TestDatabase } from '../../../test/helpers/db';
import { listConversations } from '../../db/chat';
import { grantRole } from '../../db/identities';
import type { ApprovalRequest } from '../../domain/ports';
import { TeamsChatChannel } from './channel';
import { createLogger } from '../../logging';
import { buildServer } from '../../server/app';
import { ACTION } from '../core/card';
import type { CommandCaller } from '../../commands/runner-types';
import { DecisionDesk } from '../core/decisions';
import { createCommandRunner } from '../../commands/runner';
import { createTeamsAdapter, createTeamsBot } from './bot';
import { serviceUrlPolicy } from './service-url';

const logger = createLogger('silent');
const CONV = '19:patching@thread.tacv2';
const BOT = { id: '28:patchops-bot', name: 'patchops' };

let db: TestDatabase;
let connector: FakeBotConnector;
let server: FastifyInstance;
let url: string;
let service: RecordingCycleService;
let channel: TeamsChatChannel;
const commands: Array<{ text: string; caller: CommandCaller }> = [];
let seq = 0;

function activity(o: Record<string, unknown>): Record<string, unknown> {
  seq += 1;
  return {
    id: `incoming-${seq}`,
    timestamp: new Date().toISOString(),
    serviceUrl: connector.serviceUrl,
    channelId: 'msteams',
    from: { id: '29:admin', name: 'Ada Admin', aadObjectId: '00000000-0000-0000-0000-0000000000a1' },
    conversation: { id: CONV, conversationType: 'channel', tenantId: 'tenant-1', isGroup: true },
    recipient: BOT,
    channelData: { tenant: { id: 'tenant-1' } },
    locale: 'en-GB',
    ...o,
  };
}

async function send(a: Record<string, unknown>) {
  const res = await fetch(`${url}/api/messages`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(a),
  });
  const text = await res.text();
  return { status: res.status, body: text ? (JSON.parse(text) as Record<string, unknown>) : undefined };
}

function execute(verb: string, data: Record<string, unknown>, fromId: string, replyToId: string) {
  return send(
    activity({
      type: 'invoke',
      name: 'adaptiveCard/action',
      from: { id: fromId, name: fromId },
      replyToId,
      value: { action: { type: 'Action.Execute', verb, data }, trigger: 'manual' },
    }),
  );
}

function request(cycleId: string): ApprovalRequest {
  return {
    cycleId,
    policyName: 'monthly-servers',
    emergency: false,
    requestedBy: 'teams:29:requester',
    scope: { groups: ['web'] },
    endpoints: 4,
    bySeverity: { important: 3 },
    byType: { security: 3 },
    topPatches: [
      {
        patchId: 'KB2',
        title: 'Edge update',
        severity: 'important',
        type: 'security',
        cves: ['CVE-2026-1111'],
        knownExploited: false,
        endpoints: 4,
      },
    ],
    approvalsNeeded: 1,
  };
}

beforeAll(async () => {
  db = await createTestDatabase();
  connector = await startFakeBotConnector();
  service = new RecordingCycleService();
  const adapter = createTeamsAdapter({ emulator: true }, logger);
  channel = new TeamsChatChannel({
    adapter,
    appId: undefined,
    db: db.db,
    logger,
    serviceUrlAllowed: serviceUrlPolicy({ allowLoopback: true }),
  });
  const desk = new DecisionDesk({ service, db: db.db, logger, chat: channel });
  const runner = createCommandRunner({ service, db: db.db, logger });
  const bot = createTeamsBot({
    adapter,
    db: db.db,
    desk,
    channel,
    logger,
    mode: 'emulator',
    serviceUrlAllowed: serviceUrlPolicy({ allowLoopback: true }),
    runCommand: async (text, caller) => {
      commands.push({ text, caller });
      return runner(text, caller);
    },
  });
  server = await buildServer({ logger, health: [], routes: [bot.routes] });
  await server.listen({ host: '127.0.0.1', port: 0 });
  url = `http://127.0.0.1:${(server.server.address() as { port: number }).port}`;
  await grantRole(db.db, { identity: 'teams:29:admin', role: 'admin', by: 'test' });
}, 60_000);

afterAll(async () => {
  await server?.close();
  await connector?.close();
  await db?.close();
});

beforeEach(() => {
  connector.reset();
  service.calls.length = 0;
});

async function install() {
  const res = await send(activity({ type: 'installationUpdate', action: 'add' }));
  expect(res.status).toBe(200);
}

async function postedCard(cycleId: string): Promise<string> {
  await channel.requestApproval(request(cycleId));
  expect(connector.callsOf('send').some((c) => JSON.stringify(c.activity).includes(cycleId))).toBe(true);
  const row = await db.db.query.chatMessages.findFirst({
    where: (m, { and, eq }) => and(eq(m.cycleId, cycleId), eq(m.key, 'approval')),
  });
  return row!.messageRef!;
}

describe('Teams install and commands', () => {
  it('stores the conversation reference on install and answers typed commands as the Teams user', async () => {
    service.addCycle('cyc-t0', { requestedBy: 'teams:29:requester' });
    await install();
    const convs = await listConversations(db.db, 'teams');
    expect(convs).toHaveLength(1);
    expect(convs[0]).toMatchObject({ conversationId: CONV, kind: 'channel', tenantId: 'tenant-1' });
    expect(convs[0]!.reference).toMatchObject({ serviceUrl: connector.serviceUrl, conversation: { id: CONV } });
    const [welcome] = await connector.waitFor('reply');
    expect(String(welcome!.activity!.text)).toContain('patchops is installed here');

    const res = await send(
      activity({
        type: 'message',
        text: '<at>patchops</at> status cyc-t0',
        entities: [{ type: 'mention', text: '<at>patchops</at>', mentioned: BOT }],
      }),
    );
    expect(res.status).toBe(200);
    expect(commands.at(-1)).toMatchObject({
      text: 'status cyc-t0',
      caller: { identity: 'teams:29:admin', channel: 'teams', conversationId: CONV },
    });
    const replies = await connector.waitFor('reply', 2);
    expect(replies.at(-1)!.activity!.text).toContain('cyc-t0 — AWAIT_APPROVAL');
    await send(activity({ type: 'message', from: { id: '29:nobody' }, text: 'cancel cyc-t0' }));
    const denied = await connector.waitFor('reply', 3);
    expect(denied.at(-1)!.activity!.text).toContain('only admins may use "cancel"');
    expect(service.callsOf('cancel')).toHaveLength(0);
  });
});

describe('Teams commands need a role to read', () => {
  it('a Teams user with no role is told to ask for the viewer role; a viewer gets the status as a card', async () => {
    service.addCycle('cyc-tv', { requestedBy: 'teams:29:requester' });
    await send(activity({ type: 'message', from: { id: '29:norole' }, text: 'status cyc-tv' }));
    const [denied] = await connector.waitFor('reply');
    expect(denied!.activity!.text).toBe(
      'you need the viewer role to use "status"; ask an admin: roles grant teams:29:norole viewer',
    );
    expect(service.callsOf('status')).toHaveLength(0);

    await grantRole(db.db, { identity: 'teams:29:viewer', role: 'viewer', by: 'test' });
    await send(activity({ type: 'message', from: { id: '29:viewer' }, text: 'status cyc-tv' }));
    const replies = await connector.waitFor('reply', 2);
    const reply = replies.at(-1)!.activity as {
      text?: string;
      attachments?: Array<{ contentType: string; content: unknown }>;
    };
    expect(reply.text).toBe('cyc-tv — AWAIT_APPROVAL');
    expect(reply.attachments![0]!.contentType).toBe('application/vnd.microsoft.card.adaptive');
    expect(JSON.stringify(reply.attachments![0]!.content)).toContain(
      '"title":"Requested by","value":"teams:29:requester"',
    );
    expect(service.callsOf('status')[0]!.args).toEqual(['cyc-tv']);
  });
});

describe('Teams approval card', () => {
  it('is posted once as an Adaptive Card 1.5 with Action.Execute, and re-asking updates it', async () => {
    await install();
    connector.reset();
    service.addCycle('cyc-t1', { requestedBy: 'teams:29:requester' });
    await channel.requestApproval(request('cyc-t1'));
    await channel.requestApproval(request('cyc-t1'));
    expect(connector.callsOf('send')).toHaveLength(1);
    expect(connector.callsOf('update')).toHaveLength(1);
    const att = (
      connector.callsOf('send')[0]!.activity!.attachments as Array<{
        contentType: string;
        content: Record<string, unknown>;
      }>
    )[0]!;
    expect(att.contentType).toBe('application/vnd.microsoft.card.adaptive');
    expect(att.content).toMatchObject({ type: 'AdaptiveCard', version: '1.5' });
    const actions = att.content.actions as Array<{ type: string; verb: string }>;
    expect(actions.map((a) => [a.type, a.verb])).toEqual([
      ['Action.Execute', ACTION.approve],
      ['Action.Execute', ACTION.reject],
    ]);
    expect(JSON.stringify(att.content)).toContain('CVE-2026-1111');
  });

  it('Approve: the invoke is answered with the updated card and every copy is updated in place', async () => {
    service.addCycle('cyc-t2', { requestedBy: 'teams:29:requester' });
    const cardId = await postedCard('cyc-t2');
    connector.reset();
    const res = await execute(ACTION.approve, { cycleId: 'cyc-t2' }, '29:approver', cardId);
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ statusCode: 200, type: 'application/vnd.microsoft.card.adaptive' });
    const shown = JSON.stringify(res.body!.value);
    expect(shown).toContain('You approved cycle cyc-t2');
    expect(shown).toContain('Approved by teams:29:approver');
    expect(shown).not.toContain(ACTION.approve);
    expect(service.callsOf('approve')[0]!.args).toEqual([
      'cyc-t2',
      { identity: 'teams:29:approver', channel: 'teams', reason: undefined, messageRef: cardId },
    ]);
    const [update] = await connector.waitFor('update');
    expect(update!.activityId).toBe(cardId);
    expect(JSON.stringify(update!.activity)).toContain('Approved by teams:29:approver');
  });

  it('a duplicate invoke is counted once; a refusal shows the reason only to the clicker', async () => {
    service.addCycle('cyc-t3', { requestedBy: 'teams:29:requester', needed: 2 });
    const cardId = await postedCard('cyc-t3');
    connector.reset();
    const [a, b] = await Promise.all([
      execute(ACTION.approve, { cycleId: 'cyc-t3' }, '29:twice', cardId),
      execute(ACTION.approve, { cycleId: 'cyc-t3' }, '29:twice', cardId),
    ]);
    expect([a.status, b.status]).toEqual([200, 200]);
    expect(service.callsOf('approve')).toHaveLength(1);
    expect(service.cycles.get('cyc-t3')!.votes).toHaveLength(1);

    const refused = await execute(ACTION.approve, { cycleId: 'cyc-t3' }, '29:requester', cardId);
    expect(JSON.stringify(refused.body!.value)).toContain('you requested this cycle; someone else must approve');
    expect(service.cycles.get('cyc-t3')!.votes).toHaveLength(1);
  });

  it('Reject needs a reason; with one, the cycle is rejected with it', async () => {
    service.addCycle('cyc-t4', { requestedBy: 'teams:29:requester' });
    const cardId = await postedCard('cyc-t4');
    connector.reset();
    const empty = await execute(ACTION.reject, { cycleId: 'cyc-t4', reason: '  ' }, '29:rejecter', cardId);
    expect(JSON.stringify(empty.body!.value)).toContain('A rejection needs a reason');
    expect(service.callsOf('reject')).toHaveLength(0);
    expect(connector.callsOf('update')).toHaveLength(0);

    const ok = await execute(
      ACTION.reject,
      { cycleId: 'cyc-t4', reason: 'change freeze this week' },
      '29:rejecter',
      cardId,
    );
    expect(JSON.stringify(ok.body!.value)).toContain('Rejected by teams:29:rejecter');
    expect(service.callsOf('reject')[0]!.args[1]).toMatchObject({
      identity: 'teams:29:rejecter',
      reason: 'change freeze this week',
    });
    await connector.waitFor('update');
  });

  it('stages are replies to the card, posted once; Resume on a pause card is for admins', async () => {
    service.addCycle('cyc-t5', { requestedBy: 'teams:29:requester' });
    const cardId = await postedCard('cyc-t5');
    connector.reset();
    const u = { cycleId: 'cyc-t5', stage: 'TEST' as const, text: 'Test ring: 2/2 succeeded' };
    await channel.stageUpdate(u);
    await channel.stageUpdate(u);
    expect(connector.callsOf('reply')).toHaveLength(1);
    expect(connector.callsOf('reply')[0]!.activityId).toBe(cardId);

    await channel.pauseQuestion({ cycleId: 'cyc-t5', reason: 'failure threshold reached' });
    const pauseRow = await db.db.query.chatMessages.findFirst({
      where: (m, { and, eq, like }) => and(eq(m.cycleId, 'cyc-t5'), like(m.key, 'pause:%')),
    });
    const pauseId = pauseRow!.messageRef!;
    const denied = await execute(ACTION.resume, { cycleId: 'cyc-t5' }, '29:nobody', pauseId);
    expect(JSON.stringify(denied.body!.value)).toContain('only admins');
    expect(service.callsOf('resume')).toHaveLength(0);
    const ok = await execute(ACTION.resume, { cycleId: 'cyc-t5' }, '29:admin', pauseId);
    expect(JSON.stringify(ok.body!.value)).toContain('Resumed by teams:29:admin');
    expect(service.callsOf('resume')[0]!.args).toEqual(['cyc-t5', 'teams:29:admin']);
  });
});

describe('Teams with app credentials (JWT validation on)', () => {
  it('refuses an unauthenticated activity with 401 and stores nothing', async () => {
    const adapter = createTeamsAdapter(
      { appId: '6c1f0a2e-94a1-4c2b-9d1e-2b7f5a0c1d3e', appPassword: 'not-a-real-secret' },
      logger,
    );
    const desk = new DecisionDesk({ service, db: db.db, logger });
    const bot = createTeamsBot({
      adapter,
      db: db.db,
      desk,
      channel,
      logger,
      mode: 'jwt',
      serviceUrlAllowed: serviceUrlPolicy({ configured: [connector.serviceUrl] }),
      runCommand: async () => ({ ok: true, data: { verb: 'help', usage: 'ran' }, text: 'ran' }),
    });
    const secured = await buildServer({ logger, health: [], routes: [bot.routes] });
    await secured.listen({ host: '127.0.0.1', port: 0 });
    try {
      const before = (await listConversations(db.db, 'teams')).length;
      const res = await fetch(`http://127.0.0.1:${(secured.server.address() as { port: number }).port}/api/messages`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(
          activity({
            type: 'installationUpdate',
            action: 'add',
            conversation: { id: '19:intruder@thread.tacv2', conversationType: 'channel' },
          }),
        ),
      });
      expect(res.status).toBe(401);
      expect((await listConversations(db.db, 'teams')).length).toBe(before);
      expect(connector.calls).toHaveLength(0);
    } finally {
      await secured.close();
    }
  });
});
