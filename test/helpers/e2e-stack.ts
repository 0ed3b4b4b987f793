/**
 * The in-process stack the end-to-end cases run on: the real workflow bundle on the Temporal dev server of the
 * run, the real activities on a database of the test's own, the real HTTP routes (Slack events, Teams
 * messages, the ServiceNow webhook) on one server, and the fakes speaking the real wire formats: the Slack
 * Web API, the Bot Framework connector, ServiceNow (its business rule calls the webhook) and an SMTP sink.
 * The dashboard is served there too. The product composes these pieces the way `patchops up` does
 * (runtime/up.ts); a case drives them only through their public interfaces.
 */
import type { FastifyInstance } from 'fastify';
import { createActivities } from '../../src/activities/index';
import { PgDeliveryReceipts } from '../../src/db/delivery-receipts';
import { getCycleRow } from '../../src/db/cycles';
import { workflowIdForCycle, type CycleStatus } from '../../src/domain/cycle';
import { SmtpMailer } from '../../src/integrations/email/smtp-mailer';
import { ServiceNowChangeDesk } from '../../src/integrations/servicenow/change-desk';
import { ServiceNowClient } from '../../src/integrations/servicenow/client';
import { withChangeWorkNotes } from '../../src/integrations/servicenow/work-notes';
import { createLogger } from '../../src/logging';
import { installationUpdateActivity } from '../../src/chat/teams/installation';
import { createChatChannels, createChatFrontEnds, type ChatChannels } from '../../src/runtime/chat-runtime';
import { buildServer } from '../../src/server/app';
import { addWebUser } from '../../src/server/dashboard/auth';
import { dashboardRoutes } from '../../src/server/dashboard/index';
import { serviceNowWebhookRoute } from '../../src/server/servicenow-webhook';
import type { CycleService } from '../../src/services/cycle-service';
import { createCycleService } from '../../src/services/temporal-cycle-service';
import { cycleStatusQuery } from '../../src/workflows/messages';
import { HttpClient } from '../browser/http-client';
import { startFakeBotConnector, type FakeBotConnector } from '../fakes/bot-connector';
import { ServiceNowFake } from '../fakes/servicenow';
import { startFakeSlackApi, type FakeSlackApi } from '../fakes/slack-api';
import { SmtpSink } from '../fakes/smtp-sink';
import { createTestDatabase, type TestDatabase } from './db';
import { signedHeaders } from './slack-sign';
import { createWorkflowTestEnv, type WorkflowTestEnv } from './temporal';

export const SLACK_CHANNEL = 'C0PATCHING';
export const TEAMS_CONVERSATION = '19:ops@thread.tacv2';
const SIGNING_SECRET = 'e2e-signing-secret-abcdef';
const WEBHOOK_SECRET = 'e2e-servicenow-webhook-secret';
export const REPORT_RECIPIENT = 'cab@example.test';

export interface E2eStack {
  db: TestDatabase;
  temporal: WorkflowTestEnv;
  slack: FakeSlackApi;
  connector: FakeBotConnector;
  serviceNow: ServiceNowFake;
  smtp: SmtpSink;
  service: CycleService;
  channels: ChatChannels;
  /** The HTTP server's base URL. */
  url: string;
  /** Runs `fn` while a worker with the real workflow bundle and the real activities polls the stack's queue. */
  withWorker<T>(fn: () => Promise<T>): Promise<T>;
  /** The bot is added to the Teams channel (installationUpdate): its conversation is kept for proactive cards. */
  installTeams(): Promise<void>;
  /** POSTs a body to /slack/events signed as Slack signs it. */
  slackRequest(body: string): Promise<Response>;
  /** An invoke from Teams: Action.Execute of `verb` on the card `replyToId`, by `from`. */
  teamsAction(o: { replyToId: string; from: string; verb: string; data: Record<string, unknown> }): Promise<{ statusCode: number; value: unknown }>;
  /** A browser-like client of the dashboard, signed in as a viewer. */
  dashboard(): Promise<HttpClient>;
  /** The cycle's live status (the workflow's query). */
  status(cycleId: string): Promise<CycleStatus>;
  /** The cycle's result, once its workflow ends. */
  result(cycleId: string): Promise<CycleStatus>;
  /** The Slack message ts / Teams activity id of the cycle's chat message `key` (e.g. "approval"), once posted. */
  messageRef(cycleId: string, platform: 'slack' | 'teams', key: string): Promise<string>;
  close(): Promise<void>;
}

export async function waitFor<T>(what: string, fn: () => Promise<T | undefined> | T | undefined, timeoutMs = 30_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 150));
  }
}

export async function startE2eStack(): Promise<E2eStack> {
  const logger = createLogger(process.env.E2E_LOG_LEVEL ?? 'silent');
  const db = await createTestDatabase();
  const temporal = await createWorkflowTestEnv();
  const slack = await startFakeSlackApi();
  const connector = await startFakeBotConnector();
  const serviceNow = new ServiceNowFake({ users: [{ username: 'patchops', password: 'patchops-password' }] });
  const instanceUrl = await serviceNow.start();
  const smtp = new SmtpSink();
  const smtpUrl = await smtp.start();

  const config = {
    slack: { enabled: true as const, botToken: 'xoxb-e2e', signingSecret: SIGNING_SECRET, appToken: undefined, apiUrl: slack.url, defaultChannel: SLACK_CHANNEL },
    teams: { enabled: true, mode: 'emulator' as const, appId: undefined, appPassword: undefined, tenantId: undefined, serviceUrls: [] },
  };
  const channels = createChatChannels(config, db.db, logger);
  const service = createCycleService({ client: temporal.env.client, db: db.db, taskQueue: temporal.taskQueue });
  const fronts = createChatFrontEnds(config, { db: db.db, service, channels, logger });
  const client = new ServiceNowClient({ instanceUrl, auth: { kind: 'basic', username: 'patchops', password: 'patchops-password' }, logger });
  const desk = new ServiceNowChangeDesk({ client, logger });
  const changeUrl = (n: string) => `${instanceUrl}/nav_to.do?uri=change_request.do?sysparm_query=number=${encodeURIComponent(n)}`;
  const mailer = new SmtpMailer({ url: smtpUrl, from: 'patchops@example.test', publicUrl: 'http://patchops.example.test', logger, changeUrl });

  const server: FastifyInstance = await buildServer({
    logger,
    health: [],
    routes: [
      ...fronts.routes,
      serviceNowWebhookRoute({ cycles: service, secret: WEBHOOK_SECRET, changes: desk, receipts: new PgDeliveryReceipts(db.db), logger }),
      dashboardRoutes({ db: db.db, logger, cycles: service }),
    ],
  });
  await server.listen({ host: '127.0.0.1', port: 0 });
  const url = `http://127.0.0.1:${(server.server.address() as { port: number }).port}`;
  serviceNow.webhook = { url: `${url}/webhooks/servicenow`, secret: WEBHOOK_SECRET };

  // As `patchops up` wires them: stage messages also become work notes on the cycle's change request.
  const activities = createActivities({
    database: db,
    logger,
    chat: withChangeWorkNotes({
      chat: channels.notifier,
      desk,
      changeNumberOf: async (cycleId) => (await getCycleRow(db.db, cycleId))?.changeNumber ?? null,
      logger,
    }),
    changeDesk: desk,
    mailer,
    reportRecipients: [REPORT_RECIPIENT],
  });
  const handle = (cycleId: string) => temporal.env.client.workflow.getHandle(workflowIdForCycle(cycleId));

  return {
    db,
    temporal,
    slack,
    connector,
    serviceNow,
    smtp,
    service,
    channels,
    url,
    withWorker: (fn) => temporal.withWorker({ ...activities }, fn),
    async installTeams() {
      const res = await fetch(`${url}/api/messages`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(installationUpdateActivity({ id: 'install-1', serviceUrl: connector.serviceUrl, conversationId: TEAMS_CONVERSATION, tenantId: 't1', fromId: '29:admin' })),
      });
      if (res.status !== 200) throw new Error(`Teams installationUpdate answered ${res.status}`);
    },
    slackRequest: (body) => fetch(`${url}/slack/events`, { method: 'POST', headers: signedHeaders(SIGNING_SECRET, body), body }),
    async teamsAction(o) {
      const res = await fetch(`${url}/api/messages`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          type: 'invoke',
          name: 'adaptiveCard/action',
          id: `invoke-${Date.now()}`,
          replyToId: o.replyToId,
          serviceUrl: connector.serviceUrl,
          channelId: 'msteams',
          from: { id: o.from, name: o.from },
          recipient: { id: '28:patchops-bot' },
          conversation: { id: TEAMS_CONVERSATION, conversationType: 'channel', tenantId: 't1' },
          value: { action: { type: 'Action.Execute', verb: o.verb, data: o.data }, trigger: 'manual' },
        }),
      });
      if (res.status !== 200) throw new Error(`Teams invoke answered ${res.status}`);
      return (await res.json()) as { statusCode: number; value: unknown };
    },
    async dashboard() {
      const username = `viewer${Date.now().toString(36)}`;
      await addWebUser(db.db, { username, password: `${username}-password`, role: 'viewer', by: 'cli:test' });
      const client = new HttpClient(url);
      const signedIn = await client.login(username, `${username}-password`);
      if (signedIn.status !== 303 || signedIn.location !== '/') throw new Error(`dashboard sign-in failed: ${signedIn.status} ${signedIn.location}`);
      return client;
    },
    status: (cycleId) => handle(cycleId).query(cycleStatusQuery) as Promise<CycleStatus>,
    result: (cycleId) => handle(cycleId).result() as Promise<CycleStatus>,
    messageRef: (cycleId, platform, key) =>
      waitFor(`the ${platform} message "${key}" of ${cycleId}`, async () => {
        const row = await db.db.query.chatMessages.findFirst({ where: (m, { and, eq }) => and(eq(m.cycleId, cycleId), eq(m.platform, platform), eq(m.key, key)) });
        if (!row?.messageRef) return undefined;
        return platform === 'slack' ? row.messageRef.split(':')[1] : row.messageRef;
      }),
    async close() {
      await server.close();
      mailer.close();
      await slack.close();
      await connector.close();
      await serviceNow.stop();
      await smtp.stop();
      await temporal.teardown();
      await db.close();
    },
  };
}
