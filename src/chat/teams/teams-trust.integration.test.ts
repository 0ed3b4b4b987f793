/**
 * Issue #11 item 2, the attack over real HTTP against the server as `up` composes it: with TEAMS_APP_ID unset
 * a forged activity carrying a seeded admin's `from.id` ran commands and stored a conversation whose
 * serviceUrl then received every reply. Now /api/messages exists only when Teams is configured, emulator
 * mode serves loopback callers only, and an activity (even with a valid Bot Framework JWT) or a stored
 * conversation naming a serviceUrl that is not an allowed connector gets nothing sent to it.
 */
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startFakeBotConnector, type FakeBotConnector } from '../../../test/fakes/bot-connector';
import { startFakeBotFrameworkIssuer, type BotFrameworkIssuerFake } from '../../../test/fakes/bot-framework-issuer';
import { RecordingCycleService } from '../../../test/fakes/recording-cycle-service';
import { createTestDatabase, type TestDatabase } from '../../../test/helpers/db';
import { loadConfig } from '../../config/index';
import { listConversations, saveConversation } from '../../db/chat';
import { grantRole, rolesOf } from '../../db/identities';
import type { ApprovalRequest } from '../../domain/ports';
import { TeamsChatChannel } from './channel';
import { createLogger } from '../../logging';
import { buildServer } from '../../server/app';
import { createChatChannels, createChatFrontEnds } from '../../runtime/chat-runtime';
import { DecisionDesk } from '../core/decisions';
import { createTeamsAdapter, createTeamsBot } from './bot';
import { serviceUrlPolicy } from './service-url';

const logger = createLogger('silent');
const ADMIN = '29:seeded-admin';
const APP_ID = '6c1f0a2e-94a1-4c2b-9d1e-2b7f5a0c1d3e';
const APP_PASSWORD = 'fake-client-secret~1';

let db: TestDatabase;
let connector: FakeBotConnector;
let evil: FakeBotConnector;
let service: RecordingCycleService;
let seq = 0;

function activity(serviceUrl: string, o: Record<string, unknown> = {}): Record<string, unknown> {
  seq += 1;
  return {
    id: `forged-${seq}`,
    timestamp: new Date().toISOString(),
    serviceUrl,
    channelId: 'msteams',
    from: { id: ADMIN, name: 'Seeded Admin' },
    conversation: { id: `19:attacker-${seq}@thread.tacv2`, conversationType: 'channel', tenantId: 't1' },
    recipient: { id: `28:${APP_ID}`, name: 'patchops' },
    channelData: { tenant: { id: 't1' } },
    ...o,
  };
}

/** The server `up` would build for this environment (chat part only). */
async function serverFor(env: Record<string, string>): Promise<{ app: FastifyInstance; url: string }> {
  const config = loadConfig(env);
  const channels = createChatChannels(config, db.db, logger);
  const fronts = createChatFrontEnds(config, { db: db.db, service, channels, logger });
  const app = await buildServer({ logger, health: [], routes: fronts.routes, trustProxy: config.http.trustProxy });
  await app.listen({ host: '127.0.0.1', port: 0 });
  return { app, url: `http://127.0.0.1:${(app.server.address() as { port: number }).port}` };
}

async function post(url: string, body: Record<string, unknown>, headers: Record<string, string> = {}) {
  const res = await fetch(`${url}/api/messages`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
  });
  return { status: res.status, text: await res.text() };
}

/** What a forged activity could change: stored conversations, roles, calls to the cycle service, posts anywhere. */
async function footprint() {
  return {
    conversations: (await listConversations(db.db, 'teams')).length,
    roles: (await rolesOf(db.db, 'teams:29:attacker')).length,
    calls: service.calls.length,
    posted: connector.calls.length + evil.calls.length,
  };
}

beforeAll(async () => {
  db = await createTestDatabase();
  connector = await startFakeBotConnector();
  evil = await startFakeBotConnector();
  service = new RecordingCycleService();
  await grantRole(db.db, { identity: `teams:${ADMIN}`, role: 'admin', by: 'test' });
}, 60_000);

afterAll(async () => {
  await connector?.close();
  await evil?.close();
  await db?.close();
});

beforeEach(() => {
  connector.reset();
  evil.reset();
  service.calls.length = 0;
});

describe('Teams not configured (no TEAMS_APP_ID, no TEAMS_EMULATOR)', () => {
  it('has no /api/messages: a forged install and admin command from a seeded admin id get 404 and change nothing', async () => {
    const { app, url } = await serverFor({});
    try {
      const before = await footprint();
      const install = await post(url, activity(evil.serviceUrl, { type: 'installationUpdate', action: 'add' }));
      const command = await post(url, activity(evil.serviceUrl, { type: 'message', text: 'agents' }));
      const grant = await post(url, activity(evil.serviceUrl, { type: 'message', text: 'cycles start default' }));
      expect([install.status, command.status, grant.status]).toEqual([404, 404, 404]);
      expect(await footprint()).toEqual(before);
    } finally {
      await app.close();
    }
  });
});

describe('Teams emulator mode (TEAMS_EMULATOR=true)', () => {
  it('refuses a caller that is not on loopback, also when it claims to be with X-Forwarded-For', async () => {
    const { app } = await serverFor({ TEAMS_EMULATOR: 'true' });
    try {
      const before = await footprint();
      for (const headers of [{}, { 'x-forwarded-for': '127.0.0.1' }]) {
        const res = await app.inject({
          method: 'POST',
          url: '/api/messages',
          remoteAddress: '203.0.113.7',
          headers: { 'content-type': 'application/json', ...headers },
          payload: activity(connector.serviceUrl, { type: 'installationUpdate', action: 'add' }),
        });
        expect(res.statusCode).toBe(403);
        expect(res.json()).toMatchObject({
          error: 'FORBIDDEN',
          message: expect.stringContaining('from this machine only'),
        });
      }
      expect(await footprint()).toEqual(before);
    } finally {
      await app.close();
    }
  });

  it('refuses an activity whose serviceUrl is not a connector, and serves a loopback emulator', async () => {
    const { app, url } = await serverFor({ TEAMS_EMULATOR: 'true' });
    try {
      const before = await footprint();
      for (const serviceUrl of [
        'https://evil.example/',
        'https://smba.trafficmanager.net.evil.example/amer/',
        'https://user@smba.trafficmanager.net/amer/',
        'file:///etc/passwd',
      ]) {
        const res = await post(url, activity(serviceUrl, { type: 'installationUpdate', action: 'add' }));
        expect(res.status, serviceUrl).toBe(403);
        expect(res.text).toContain('serviceUrl is not a Bot Framework Teams connector');
      }
      expect(await footprint()).toEqual(before);
      // The Bot Framework Emulator on this machine still works: its connector is on loopback.
      const ok = await post(url, activity(connector.serviceUrl, { type: 'installationUpdate', action: 'add' }));
      expect(ok.status).toBe(200);
      expect(connector.calls).toHaveLength(1);
    } finally {
      await app.close();
    }
  });
});

describe('Teams with app credentials: replies only to allowed connectors', () => {
  let issuer: BotFrameworkIssuerFake;
  let app: FastifyInstance;
  let url: string;
  let channel: TeamsChatChannel;

  beforeAll(async () => {
    issuer = await startFakeBotFrameworkIssuer();
    issuer.registerApp(APP_ID, APP_PASSWORD);
    const adapter = createTeamsAdapter(
      {
        appId: APP_ID,
        appPassword: APP_PASSWORD,
        cloud: issuer.cloudSettings,
        credentialsFactory: issuer.credentialsFactory({ appId: APP_ID, appPassword: APP_PASSWORD }),
      },
      logger,
    );
    // TEAMS_SERVICE_URLS = the good fake connector; the evil one is another port on this machine.
    const serviceUrlAllowed = serviceUrlPolicy({ configured: [connector.serviceUrl] });
    channel = new TeamsChatChannel({ adapter, appId: APP_ID, db: db.db, logger, serviceUrlAllowed });
    const desk = new DecisionDesk({ service, db: db.db, logger, chat: channel });
    const bot = createTeamsBot({
      adapter,
      db: db.db,
      desk,
      channel,
      logger,
      mode: 'jwt',
      serviceUrlAllowed,
      runCommand: async () => ({ ok: true, data: { verb: 'help', usage: 'ran' }, text: 'ran' }),
    });
    app = await buildServer({ logger, health: [], routes: [bot.routes] });
    await app.listen({ host: '127.0.0.1', port: 0 });
    url = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`;
  }, 60_000);

  afterAll(async () => {
    await app?.close();
    await issuer?.close();
  });

  it('refuses an activity naming another serviceUrl even with a valid token for it, and sends nothing there', async () => {
    const before = await footprint();
    const a = activity(evil.serviceUrl, { type: 'message', text: 'agents' });
    const res = await post(url, a, {
      authorization: `Bearer ${issuer.channelToken({ appId: APP_ID, serviceUrl: evil.serviceUrl })}`,
    });
    expect(res.status).toBe(403);
    expect(await footprint()).toEqual(before);
    expect(evil.calls).toHaveLength(0);
  });

  it('skips a stored conversation whose serviceUrl is not allowed when posting an approval', async () => {
    const reference = (serviceUrl: string, id: string) => ({
      serviceUrl,
      channelId: 'msteams',
      conversation: { id },
      bot: { id: `28:${APP_ID}` },
    });
    await saveConversation(db.db, {
      platform: 'teams',
      conversationId: '19:planted@thread.tacv2',
      kind: 'channel',
      reference: reference(evil.serviceUrl, '19:planted@thread.tacv2'),
    });
    await saveConversation(db.db, {
      platform: 'teams',
      conversationId: '19:ops@thread.tacv2',
      kind: 'channel',
      reference: reference(connector.serviceUrl, '19:ops@thread.tacv2'),
    });
    const req: ApprovalRequest = {
      cycleId: 'cyc-trust-1',
      policyName: 'monthly',
      emergency: false,
      requestedBy: 'web:someone',
      scope: { groups: ['web'] },
      endpoints: 2,
      bySeverity: { critical: 1 },
      byType: { security: 1 },
      topPatches: [],
      approvalsNeeded: 1,
    };
    await channel.requestApproval(req);
    expect(evil.calls).toHaveLength(0);
    const posted = connector.calls.map((c) => c.conversationId);
    expect(posted).toContain('19:ops@thread.tacv2');
    expect(posted).not.toContain('19:planted@thread.tacv2');
  });
});
