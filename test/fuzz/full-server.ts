/**
 * The whole HTTP server as `patchops up` composes it (buildServer with every route module: Slack over HTTP,
 * Teams, the agent gateway, the ServiceNow webhook, the dashboard), on a real database, with the outside
 * services replaced by the local fakes that speak their wire formats and the cycle service by the
 * recording double (no Temporal). Every route registered is recorded through the onRoute hook, so a route
 * added later is covered without editing the fuzz suite. Also a signed-in dashboard session and an
 * enrolled agent, so generated requests reach past authentication.
 */
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { sql } from 'drizzle-orm';
import type { FastifyInstance } from 'fastify';
import { createChatChannels, createChatFrontEnds } from '../../src/runtime/chat-runtime';
import { loadConfig, type Config } from '../../src/config/index';
import { addEnrollSecret } from '../../src/db/agent-enroll-secrets';
import { enrollAgent } from '../../src/db/agent-enrolment';
import { SecretBox } from '../../src/db/secret-box';
import { createLogger } from '../../src/logging';
import { createAgentGateway } from '../../src/server/agent-gateway';
import { buildServer } from '../../src/server/app';
import type { RouteModule } from '../../src/shared/contracts';
import { addWebUser, login } from '../../src/server/dashboard/auth';
import { dashboardRoutes } from '../../src/server/dashboard/index';
import type { LoginThrottle } from '../../src/shared/contracts';
import { serviceNowWebhookRoute } from '../../src/server/servicenow-webhook';
import { startFakeBotConnector, type FakeBotConnector } from '../fakes/bot-connector';
import { RecordingCycleService } from '../fakes/recording-cycle-service';
import { startFakeSlackApi, type FakeSlackApi } from '../fakes/slack-api';
import { createTestDatabase, type TestDatabase } from '../helpers/db';

export const FUZZ_SLACK_SECRET = 'fuzz-slack-signing-secret';
export const FUZZ_SERVICENOW_SECRET = 'fuzz-servicenow-secret-0123';
export const FUZZ_ENROLL_SECRET = 'fuzz-enrol-secret-0123456789';

export interface FullServer {
  app: FastifyInstance;
  url: string;
  db: TestDatabase;
  config: Config;
  service: RecordingCycleService;
  connector: FakeBotConnector;
  slack: FakeSlackApi;
  /** Every (method, url) the server registered, HEAD included. */
  routes: Array<{ method: string; url: string }>;
  /** A signed-in admin's session cookie and CSRF token. */
  session: { cookie: string; csrf: string };
  /** An enrolled agent's bearer header. */
  agentAuth: string;
  agentId: string;
  /** Row count of every table in the public schema. */
  rowCounts(): Promise<Record<string, number>>;
  close(): Promise<void>;
}

export async function startFullServer(
  o: { env?: Record<string, string>; logLevel?: string; loginThrottle?: LoginThrottle } = {},
): Promise<FullServer> {
  const logger = createLogger(o.logLevel ?? process.env.TEST_LOG ?? 'silent');
  const db = await createTestDatabase();
  const slack = await startFakeSlackApi();
  const connector = await startFakeBotConnector();
  const repositoryDir = await fs.mkdtemp(path.join(os.tmpdir(), 'po-fuzz-repo-'));
  const config = loadConfig({
    SLACK_BOT_TOKEN: 'xoxb-fuzz',
    SLACK_SIGNING_SECRET: FUZZ_SLACK_SECRET,
    SLACK_API_URL: slack.url,
    SLACK_DEFAULT_CHANNEL: 'C0FUZZ',
    TEAMS_EMULATOR: 'true',
    SERVICENOW_WEBHOOK_SECRET: FUZZ_SERVICENOW_SECRET,
    ...o.env,
  });
  const service = new RecordingCycleService();
  service.addCycle('cyc-fuzz', { requestedBy: 'web:someone' });
  const channels = createChatChannels(config, db.db, logger);
  const fronts = createChatFrontEnds(config, { db: db.db, service, channels, logger });
  const gateway = createAgentGateway({
    database: db,
    secretBox: SecretBox.ephemeral(),
    logger,
    leaseSeconds: 30,
    maxWaitSeconds: 0.05,
    repositoryDir,
    envEnrollSecret: FUZZ_ENROLL_SECRET,
  });
  const routeModules: RouteModule[] = [
    ...fronts.routes,
    gateway.routes,
    serviceNowWebhookRoute({ cycles: service, secret: config.serviceNow.webhookSecret, logger }),
    dashboardRoutes({ db: db.db, logger, cycles: service, loginThrottle: o.loginThrottle }),
  ];
  const routes: FullServer['routes'] = [];
  const app = await buildServer({
    logger,
    health: [],
    routes: routeModules,
    trustProxy: config.http.trustProxy,
    onRoute: (r) => {
      for (const m of Array.isArray(r.method) ? r.method : [r.method]) routes.push({ method: m, url: r.url });
    },
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const url = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`;

  await addWebUser(db.db, { username: 'fuzz-admin', password: 'fuzz-admin-password', role: 'admin', by: 'test' });
  const signedIn = await login(db.db, {
    username: 'fuzz-admin',
    password: 'fuzz-admin-password',
    ttlMs: 24 * 3600_000,
  });
  if (!signedIn) throw new Error('the fuzz admin could not sign in');
  await addEnrollSecret(db.db, { name: 'fuzz', secret: `${FUZZ_ENROLL_SECRET}-2` });
  const agent = await enrollAgent(db.db, {
    enrollSecret: FUZZ_ENROLL_SECRET,
    machineId: 'fuzz-machine-0001',
    hostname: 'fuzz-host',
    osFamily: 'linux',
    osName: 'Debian',
    osVersion: '12',
    arch: 'x86_64',
  });

  const tables = (
    await db.db.execute<{ name: string }>(
      sql`select quote_ident(table_name) as name from information_schema.tables where table_schema = 'public' and table_type = 'BASE TABLE' order by 1`,
    )
  ).rows.map((r) => r.name);
  const countSql = sql.raw(`select ${tables.map((t) => `(select count(*) from ${t})::int as ${t}`).join(', ')}`);

  return {
    app,
    url,
    db,
    config,
    service,
    connector,
    slack,
    routes,
    session: { cookie: `patchops_session=${signedIn.token}`, csrf: signedIn.session.csrfToken },
    agentAuth: `Bearer ${agent.nodeKey}`,
    agentId: agent.endpointId,
    async rowCounts() {
      const [row] = (await db.db.execute<Record<string, number>>(countSql)).rows;
      return row!;
    },
    async close() {
      await fronts.stop();
      await app.close();
      await connector.close();
      await slack.close();
      await db.close();
      await fs.rm(repositoryDir, { recursive: true, force: true });
    },
  };
}
