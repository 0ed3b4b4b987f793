/**
 * Slack in Socket Mode for real: the chat front end built as `patchops up` builds it (loadConfig with
 * SLACK_APP_TOKEN and SLACK_API_URL → createChatChannels → createChatFrontEnds → start), connected to a local
 * fake that speaks Slack's Socket Mode protocol (apps.connections.open, hello, envelopes, acks, disconnect) on the
 * port of the fake Web API; a real database and a recording CycleService.
 */
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { RecordingCycleService } from '../../../test/fakes/recording-cycle-service';
import { startFakeSlackApi } from '../../../test/fakes/slack-api';
import { startFakeSlackSocketMode, type FakeSlackSocketMode } from '../../../test/fakes/slack-socket-mode';
import { createTestDatabase, type TestDatabase } from '../../../test/helpers/db';
import { blockActionsBody, slashCommandBody, viewSubmissionBody } from '../../../test/helpers/slack-sign';
import { loadConfig } from '../../config/index';
import { grantRole } from '../../db/identities';
import { ErrorCode } from '../../domain/errors';
import { createSlackWebClient, SlackChatChannel } from './channel';
import { createLogger } from '../../logging';
import { freePort } from '../../temporal/dev-server';
import { createChatChannels, createChatFrontEnds, type ChatFrontEnds } from '../../runtime/chat-runtime';
import { ACTION } from '../core/card';
import { DecisionDesk } from '../core/decisions';
import { createCommandRunner } from '../../commands/runner';
import { createSlackBot, REJECT_MODAL } from './app';

const APP_TOKEN = 'xapp-1-A0PATCHOPS-1-socketmodetest';
const BOT_TOKEN = 'xoxb-test-token';
const REQUESTER = 'slack:UREQUESTER';
const logger = createLogger('silent');

let db: TestDatabase;
let slack: FakeSlackSocketMode;
let service: RecordingCycleService;
let frontEnds: ChatFrontEnds;

/** The product's path from environment to a running Slack front end. */
function startFrontEnds(env: Record<string, string>): ChatFrontEnds {
  const config = loadConfig({
    SLACK_BOT_TOKEN: BOT_TOKEN,
    SLACK_API_URL: slack.api.url,
    SLACK_DEFAULT_CHANNEL: 'C0PATCHING',
    ...env,
  });
  const channels = createChatChannels(config, db.db, logger);
  return createChatFrontEnds(config, { db: db.db, service, channels, logger });
}

/** What Slack puts in an envelope's payload: the JSON that HTTP mode carries in the `payload=` form field. */
const interactivePayload = (formBody: string) =>
  JSON.parse(new URLSearchParams(formBody).get('payload')!) as Record<string, unknown>;
/** A slash command's payload: HTTP mode's form fields as a JSON object. */
const commandPayload = (formBody: string) =>
  Object.fromEntries(new URLSearchParams(formBody)) as Record<string, unknown>;

const approveClick = (cycleId: string, userId: string) =>
  interactivePayload(
    blockActionsBody({
      userId,
      actionId: ACTION.approve,
      value: cycleId,
      channelId: 'C0PATCHING',
      messageTs: '1764237600.000200',
    }),
  );

beforeAll(async () => {
  db = await createTestDatabase();
  slack = await startFakeSlackSocketMode({ appToken: APP_TOKEN });
  service = new RecordingCycleService();
  await grantRole(db.db, { identity: 'slack:UADMIN', role: 'admin', by: 'test' });
  frontEnds = startFrontEnds({ SLACK_APP_TOKEN: APP_TOKEN });
  expect(frontEnds.routes).toHaveLength(0); // Socket Mode: no /slack/events; Teams is off (not configured): no /api/messages
  // fails with "expected connection 1" rather than a hook timeout if the app does not reach the fake
  await Promise.all([frontEnds.start(), slack.waitForConnection(1, 20_000)]);
}, 60_000);

afterAll(async () => {
  await frontEnds?.stop();
  await slack?.close();
  await db?.close();
});

beforeEach(() => {
  slack.api.reset();
  service.calls.length = 0;
});

describe('Slack Socket Mode against a fake speaking its protocol', () => {
  it('connects with the app-level token through SLACK_API_URL and waits for hello', async () => {
    await slack.waitForConnection(1);
    expect(slack.connections).toBe(1);
    expect(slack.refusedUpgrades).toBe(0);
  });

  it('an Approve click arrives as an interactive envelope: acked by envelope id, approved as slack:<user>', async () => {
    service.addCycle('cyc-sm-a', { requestedBy: REQUESTER });
    const ack = await slack.push('interactive', approveClick('cyc-sm-a', 'UAPPROVER'), {
      acceptsResponsePayload: false,
    });
    expect(ack.payload).toEqual({});
    const [eph] = await slack.api.waitFor('chat.postEphemeral');
    expect(eph!.token).toBe(BOT_TOKEN);
    expect(eph!.args).toMatchObject({ channel: 'C0PATCHING', user: 'UAPPROVER' });
    expect(String(eph!.args.text)).toContain('You approved cycle cyc-sm-a');
    expect(service.callsOf('approve')).toHaveLength(1);
    expect(service.callsOf('approve')[0]!.args).toEqual([
      'cyc-sm-a',
      { identity: 'slack:UAPPROVER', channel: 'slack', reason: undefined, messageRef: 'C0PATCHING:1764237600.000200' },
    ]);
    const audit = await db.db.execute<{ n: string }>(
      sql`select count(*)::text as n from audit_log where action = 'chat.approved'`,
    );
    expect(Number(audit.rows[0]!.n)).toBeGreaterThanOrEqual(1);
  });

  it('a /patch slash command arrives as a slash_commands envelope: acked, answered through its response_url', async () => {
    service.addCycle('cyc-sm-cmd', { requestedBy: REQUESTER });
    const payload = commandPayload(
      slashCommandBody({ userId: 'UADMIN', text: 'status cyc-sm-cmd', responseUrl: `${slack.api.responseUrlBase}sm1` }),
    );
    const ack = await slack.push('slash_commands', payload, { acceptsResponsePayload: true });
    expect(ack.payload).toEqual({});
    const [reply] = await slack.api.waitFor('response_url');
    expect(reply!.args).toMatchObject({ response_type: 'ephemeral', responseId: 'sm1' });
    expect(String(reply!.args.text)).toContain('cyc-sm-cmd — AWAIT_APPROVAL');
    expect(service.callsOf('status')[0]!.args).toEqual(['cyc-sm-cmd']);
  });

  it("a modal submitted without a reason is refused in the ack's response payload", async () => {
    service.addCycle('cyc-sm-r', { requestedBy: REQUESTER });
    const meta = JSON.stringify({ cycleId: 'cyc-sm-r', channel: 'C0PATCHING', ts: '1.2' });
    const empty = await slack.push(
      'interactive',
      interactivePayload(
        viewSubmissionBody({ userId: 'UREJECTER', callbackId: REJECT_MODAL, privateMetadata: meta, reason: ' ' }),
      ),
    );
    expect(empty.payload).toMatchObject({ response_action: 'errors', errors: { reason: expect.any(String) } });
    expect(service.calls).toHaveLength(0);
  });

  it.each([
    [
      'Slack asks it to (disconnect: refresh_requested)',
      (s: FakeSlackSocketMode) => s.requestDisconnect('refresh_requested'),
    ],
    ['the connection is cut without a close handshake', (s: FakeSlackSocketMode) => s.drop()],
  ])(
    'reconnects through apps.connections.open with a new ticket when %s, and still takes clicks',
    async (_name, disconnect) => {
      const before = slack.connections;
      disconnect(slack);
      await slack.waitForConnection(before + 1, 20_000);
      const opens = slack.api.callsTo('apps.connections.open');
      expect(opens).toHaveLength(1);
      expect(opens[0]!.token).toBe(APP_TOKEN);
      expect(slack.refusedUpgrades).toBe(0);

      const cycleId = `cyc-sm-re${before}`;
      service.addCycle(cycleId, { requestedBy: REQUESTER });
      const ack = await slack.push('interactive', approveClick(cycleId, 'UAPPROVER'), {
        acceptsResponsePayload: false,
      });
      expect(ack.connection).toBe(before + 1);
      await slack.api.waitFor('chat.postEphemeral');
      expect(service.callsOf('approve')[0]!.args[1]).toMatchObject({ identity: 'slack:UAPPROVER' });
    },
    30_000,
  );
});

describe('Socket Mode startup', () => {
  it('refuses to start with an app-level token Slack does not accept, and says what to fix', async () => {
    const bad = startFrontEnds({ SLACK_APP_TOKEN: 'xapp-1-A0PATCHOPS-1-revoked' });
    const failure = bad.start();
    await expect(failure).rejects.toMatchObject({ code: ErrorCode.ConfigInvalid });
    await expect(failure).rejects.toThrow(
      'Slack refused the Socket Mode connection: apps.connections.open answered invalid_auth',
    );
    await expect(failure).rejects.toThrow(/SLACK_APP_TOKEN must be an app-level token \(xapp-…\)/);
    await bad.stop();
    const opens = slack.api.callsTo('apps.connections.open');
    expect(opens).toHaveLength(1);
    expect(opens[0]!.token).toBe('xapp-1-A0PATCHOPS-1-revoked');
  });

  it.each([
    ['the Web API cannot be reached', 'api'],
    ['the WebSocket URL cannot be reached', 'socket'],
  ] as const)(
    'gives up after connectTimeoutMs with a clear error when %s, instead of hanging',
    async (_name, blocked) => {
      const closed = `127.0.0.1:${await freePort()}`;
      const api = await startFakeSlackApi();
      try {
        api.handle('apps.connections.open', () => ({
          ok: true,
          url: `ws://${closed}/link/?ticket=t1&app_id=A0PATCHOPS`,
        }));
        const apiUrl = blocked === 'api' ? `http://${closed}/api/` : api.url;
        const channel = new SlackChatChannel({
          client: createSlackWebClient(BOT_TOKEN, apiUrl),
          db: db.db,
          logger,
          defaultChannel: 'C0PATCHING',
        });
        const bot = createSlackBot({
          botToken: BOT_TOKEN,
          appToken: APP_TOKEN,
          apiUrl,
          db: db.db,
          service,
          desk: new DecisionDesk({ service, db: db.db, logger, chat: channel }),
          runCommand: createCommandRunner({ service, db: db.db, logger }),
          channel,
          logger,
          connectTimeoutMs: 1500,
        });
        const t0 = Date.now();
        const failure = bot.start();
        await expect(failure).rejects.toMatchObject({ code: ErrorCode.DependencyDown });
        await expect(failure).rejects.toThrow(
          `Slack Socket Mode could not connect: no connection within 1.5 s. Check that this host reaches ${apiUrl}`,
        );
        expect(Date.now() - t0).toBeLessThan(5000);
        expect(api.callsTo('apps.connections.open').length).toBe(blocked === 'api' ? 0 : 1);
        await bot.stop();
      } finally {
        await api.close();
      }
    },
  );
});
