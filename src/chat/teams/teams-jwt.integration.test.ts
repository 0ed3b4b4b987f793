/**
 * Teams with app credentials: Bot Framework JWTs validated for real by botbuilder's own code (OpenID metadata
 * and JWKS fetched by botframework-connector), against a local issuer that signs tokens with a key it
 * generated. Valid tokens are accepted and reach the cycle service; expired, mis-addressed, mis-issued,
 * forged and replayed-to-another-serviceUrl tokens are refused with 401 and change nothing. Replies go to the
 * fake connector carrying the app token the bot got from the fake login endpoint.
 */
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startFakeBotConnector, type FakeBotConnector } from '../../../test/fakes/bot-connector';
import {
  startFakeBotFrameworkIssuer,
  type BotFrameworkIssuerFake,
  type ChannelTokenOptions,
} from '../../../test/fakes/bot-framework-issuer';
import { RecordingCycleService } from '../../../test/fakes/recording-cycle-service';
import { createTestDatabase, type TestDatabase } from '../../../test/helpers/db';
import { listConversations } from '../../db/chat';
import { grantRole } from '../../db/identities';
import type { ApprovalRequest } from '../../domain/ports';
import { TeamsChatChannel } from './channel';
import { createLogger } from '../../logging';
import { buildServer } from '../../server/app';
import { ACTION } from '../core/card';
import { DecisionDesk } from '../core/decisions';
import { createCommandRunner } from '../../commands/runner';
import { createTeamsAdapter, createTeamsBot } from './bot';
import { serviceUrlPolicy } from './service-url';

const logger = createLogger('silent');
const APP_ID = '6c1f0a2e-94a1-4c2b-9d1e-2b7f5a0c1d3e';
const APP_PASSWORD = 'fake-client-secret~1';
const CONV = '19:secured@thread.tacv2';
const BOT = { id: `28:${APP_ID}`, name: 'patchops' };

let db: TestDatabase;
let connector: FakeBotConnector;
let issuer: BotFrameworkIssuerFake;
let server: FastifyInstance;
let url: string;
let service: RecordingCycleService;
let channel: TeamsChatChannel;
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

function token(o: Partial<ChannelTokenOptions> = {}): string {
  return issuer.channelToken({ appId: APP_ID, serviceUrl: connector.serviceUrl, ...o });
}

async function send(a: Record<string, unknown>, bearer: string | undefined) {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (bearer !== undefined) headers.authorization = `Bearer ${bearer}`;
  const res = await fetch(`${url}/api/messages`, { method: 'POST', headers, body: JSON.stringify(a) });
  const text = await res.text();
  let body: Record<string, unknown> | string | undefined;
  try {
    body = text ? (JSON.parse(text) as Record<string, unknown>) : undefined;
  } catch {
    body = text;
  }
  return { status: res.status, body };
}

function approveInvoke(cycleId: string, fromId: string, replyToId: string, o: Record<string, unknown> = {}) {
  return activity({
    type: 'invoke',
    name: 'adaptiveCard/action',
    from: { id: fromId, name: fromId, aadObjectId: '00000000-0000-0000-0000-0000000000b2' },
    replyToId,
    value: { action: { type: 'Action.Execute', verb: ACTION.approve, data: { cycleId } }, trigger: 'manual' },
    ...o,
  });
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

/** The app token the fake login endpoint issued to the bot for the Bot Framework connector. */
function appTokenHeader(): string {
  const grant = issuer.grants.findLast(
    (g) => g.clientId === APP_ID && g.scope === 'https://api.botframework.com/.default',
  );
  expect(grant, 'the bot asked the login endpoint for a connector token').toBeDefined();
  return `Bearer ${grant!.accessToken}`;
}

beforeAll(async () => {
  db = await createTestDatabase();
  connector = await startFakeBotConnector();
  issuer = await startFakeBotFrameworkIssuer();
  issuer.registerApp(APP_ID, APP_PASSWORD);
  service = new RecordingCycleService();
  const adapter = createTeamsAdapter(
    {
      appId: APP_ID,
      appPassword: APP_PASSWORD,
      cloud: issuer.cloudSettings,
      credentialsFactory: issuer.credentialsFactory({ appId: APP_ID, appPassword: APP_PASSWORD }),
    },
    logger,
  );
  const serviceUrlAllowed = serviceUrlPolicy({ configured: [connector.serviceUrl] });
  channel = new TeamsChatChannel({ adapter, appId: APP_ID, db: db.db, logger, serviceUrlAllowed });
  const desk = new DecisionDesk({ service, db: db.db, logger, chat: channel });
  const runner = createCommandRunner({ service, db: db.db, logger });
  const bot = createTeamsBot({
    adapter,
    db: db.db,
    desk,
    channel,
    logger,
    mode: 'jwt',
    serviceUrlAllowed,
    runCommand: runner,
  });
  server = await buildServer({ logger, health: [], routes: [bot.routes] });
  await server.listen({ host: '127.0.0.1', port: 0 });
  url = `http://127.0.0.1:${(server.server.address() as { port: number }).port}`;
  await grantRole(db.db, { identity: 'teams:29:admin', role: 'admin', by: 'test' });
}, 60_000);

afterAll(async () => {
  await server?.close();
  await issuer?.close();
  await connector?.close();
  await db?.close();
});

beforeEach(() => {
  connector.reset();
  service.calls.length = 0;
});

describe('Teams JWT validation against the local issuer: accepted', () => {
  it('an install and a typed command with valid tokens are handled, and the replies carry the app token', async () => {
    const res = await send(activity({ type: 'installationUpdate', action: 'add' }), token());
    expect(res.status).toBe(200);
    // botbuilder found the signing key the way it does in Azure: metadata document, then jwks_uri.
    expect(issuer.requests.slice(0, 2)).toEqual(['/v1/.well-known/openidconfiguration', '/v1/.well-known/keys']);
    const convs = await listConversations(db.db, 'teams');
    expect(convs.map((c) => c.conversationId)).toEqual([CONV]);
    const [welcome] = await connector.waitFor('reply');
    expect(String(welcome!.activity!.text)).toContain('patchops is installed here');
    expect(welcome!.authorization).toBe(appTokenHeader());

    service.addCycle('cyc-j0', { requestedBy: 'teams:29:requester' });
    const cmd = await send(activity({ type: 'message', text: 'status cyc-j0' }), token());
    expect(cmd.status).toBe(200);
    expect(service.callsOf('status')[0]!.args).toEqual(['cyc-j0']);
    const replies = await connector.waitFor('reply', 2);
    expect(replies.at(-1)!.activity!.text).toContain('cyc-j0 — AWAIT_APPROVAL');
  });

  it('an Approve invoke with a valid token reaches the cycle service as teams:<user id>, and the card is updated', async () => {
    service.addCycle('cyc-j1', { requestedBy: 'teams:29:requester' });
    await channel.requestApproval(request('cyc-j1'));
    const [posted] = await connector.waitFor('send');
    expect(posted!.authorization).toBe(appTokenHeader());
    const row = await db.db.query.chatMessages.findFirst({
      where: (m, { and, eq }) => and(eq(m.cycleId, 'cyc-j1'), eq(m.key, 'approval')),
    });
    const cardId = row!.messageRef!;
    connector.reset();

    const res = await send(approveInvoke('cyc-j1', '29:approver', cardId), token());
    expect(res.status).toBe(200);
    expect(JSON.stringify(res.body)).toContain('You approved cycle cyc-j1');
    expect(service.callsOf('approve')[0]!.args).toEqual([
      'cyc-j1',
      { identity: 'teams:29:approver', channel: 'teams', reason: undefined, messageRef: cardId },
    ]);
    const [update] = await connector.waitFor('update');
    expect(update!.activityId).toBe(cardId);
    expect(update!.authorization).toBe(appTokenHeader());
  });
});

describe('Teams JWT validation against the local issuer: refused with 401, nothing recorded', () => {
  const OTHER_SERVICE_URL = 'https://smba.trafficmanager.net/emea/';
  const cases: Array<{ name: string; bearer: () => string | undefined; activity?: Record<string, unknown> }> = [
    { name: 'no Authorization header', bearer: () => undefined },
    { name: 'a token that is not a JWT', bearer: () => 'not-a-jwt' },
    { name: 'an expired token', bearer: () => token({ expiresIn: -3600, notBefore: -7200 }) },
    { name: 'a token not valid yet', bearer: () => token({ notBefore: 3600, expiresIn: 7200 }) },
    {
      name: 'a token for another app (audience)',
      bearer: () => token({ audience: '0f9c6a1e-0000-4000-8000-00000000beef' }),
    },
    { name: 'a token from another issuer', bearer: () => token({ issuer: 'https://api.botframework.example' }) },
    { name: 'a token signed by another key (its own key id)', bearer: () => token({ signedBy: 'stranger' }) },
    {
      name: 'a token signed by another key under the published key id',
      bearer: () => token({ signedBy: 'stranger-same-kid' }),
    },
    { name: 'a token for another serviceUrl', bearer: () => token({ serviceUrl: OTHER_SERVICE_URL }) },
    {
      name: 'a valid token on an activity naming another serviceUrl',
      bearer: () => token(),
      activity: { serviceUrl: OTHER_SERVICE_URL },
    },
    {
      name: 'a token whose key is not endorsed for the channel',
      bearer: () => token(),
      activity: { channelId: 'webchat' },
    },
  ];

  it.each(cases)('$name', async (c) => {
    service.addCycle('cyc-x', { requestedBy: 'teams:29:requester' });
    const conversationsBefore = (await listConversations(db.db, 'teams')).length;

    const invoke = await send(approveInvoke('cyc-x', '29:admin', 'card-x', c.activity), c.bearer());
    expect(invoke.status).toBe(401);
    const install = await send(
      activity({
        type: 'installationUpdate',
        action: 'add',
        conversation: { id: '19:intruder@thread.tacv2', conversationType: 'channel' },
        ...c.activity,
      }),
      c.bearer(),
    );
    expect(install.status).toBe(401);
    const command = await send(activity({ type: 'message', text: 'cancel cyc-x', ...c.activity }), c.bearer());
    expect(command.status).toBe(401);

    expect(service.calls).toEqual([]);
    expect((await listConversations(db.db, 'teams')).length).toBe(conversationsBefore);
    await new Promise((r) => setTimeout(r, 100));
    expect(connector.calls).toEqual([]);
  });
});
