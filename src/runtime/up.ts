import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { Worker } from '@temporalio/worker';
import { createActivities } from '../activities/index';
import { apiRoutes } from '../api/index';
import { webhooksMount } from '../api/webhooks-mount';
import { ensureDigestSchedule } from '../activities/digest';
import { getCycleRow } from '../db/cycles';
import { startEmail } from '../integrations/email/runtime';
import { startServiceNow } from '../integrations/servicenow/runtime';
import { withChangeWorkNotes } from '../integrations/servicenow/work-notes';
import { serviceNowWebhookRoute } from '../server/servicenow-webhook';
import { PgDeliveryReceipts } from '../db/delivery-receipts';
import { PgLoginThrottle } from '../db/login-failures';
import { bootstrapIdentities } from '../db/identities';
import { seedPolicies } from '../db/policies';
import { cycleServiceFor, ensureScanSchedules } from '../services/temporal-cycle-service';
import { createChatChannels, createChatFrontEnds } from './chat-runtime';
import type { TeamsAuthOptions } from '../chat/teams/bot';
import type { Config } from '../config/index';
import { installTemporalLogger, type Logger } from '../logging';
import { createAgentGateway } from '../server/agent-gateway';
import { ensureFirstAdmin } from '../server/dashboard/auth';
import { dashboardRoutes } from '../server/dashboard/index';
import { startDashboardJobs } from './dashboard-jobs';
import { buildServer } from '../server/app';
import type { RouteModule } from '../shared/contracts';
import type { HealthCheck } from '../shared/contracts';
import { connectWorker } from '../temporal/connection';
import { createWorker } from '../worker/worker';
import { kevCatalog } from '../integrations/kev';
import { startCycleReconciler } from './cycle-reconciler';
import { manifestResigningJob, startPeriodicJobs } from './periodic-jobs';
import { startDatabase, type RunningDatabase } from './database';
import { integrationStates } from './integrations';
import { createMetrics, startMetricsServer, type Metrics } from './metrics';
import { startTemporal, type RunningTemporal } from './temporal';
import { secretBoxFor } from '../db/secret-box';
import { startWebhookDeliverer } from '../webhooks/deliverer';

export interface UpOptions {
  worker: boolean;
  server: boolean;
  onProgress?: (message: string) => void;
  /**
   * Teams with app credentials against a Bot Framework login other than Microsoft's public cloud: the OpenID
   * metadata incoming tokens are checked against, and where the bot's own app tokens come from. Only the demo
   * sets it (its local issuer, test/fakes/bot-framework-issuer.ts); unset, botbuilder's public-cloud defaults.
   */
  teamsAuth?: Pick<TeamsAuthOptions, 'cloud' | 'credentialsFactory'>;
}

export interface Running {
  db: RunningDatabase;
  temporal: RunningTemporal;
  worker?: Worker;
  server?: FastifyInstance;
  serverUrl?: string;
  /** Set when this start created the first dashboard admin; generatedPassword is printed once. */
  firstAdmin?: { username: string; generatedPassword: string | null };
  stop(): Promise<void>;
}

/**
 * Starts what the options ask for, in dependency order: database (migrated), Temporal, worker, HTTP server.
 * stop() undoes it in reverse order. A failure part-way stops what had started.
 */
export async function up(config: Config, logger: Logger, options: UpOptions): Promise<Running> {
  const stops: Array<() => Promise<void>> = [];
  const stopAll = async () => {
    for (const stop of stops.reverse()) {
      try {
        await stop();
      } catch (e) {
        logger.warn({ err: e }, 'error while stopping');
      }
    }
    stops.length = 0;
  };
  try {
    const db = await startDatabase(config, logger);
    stops.push(db.stop);
    await bootstrapIdentities(db.database.db, config.bootstrap.admins, config.bootstrap.approvers);
    await seedPolicies(db.database.db);
    const temporal = await startTemporal(config, logger, options.onProgress);
    stops.push(temporal.stop);
    let metrics: Metrics | undefined;
    if (config.metrics.address) {
      metrics = createMetrics({ db: db.database.db, logger: logger.child({ component: 'metrics' }) });
      const endpoint = await startMetricsServer(metrics, config.metrics.address, logger);
      stops.push(endpoint.stop);
      logger.info({ url: endpoint.url }, 'Prometheus metrics served');
    }
    // Slack and/or Teams behind the ChatNotifier port: the worker posts through it, the server's bots update it.
    const chat = createChatChannels(config, db.database.db, logger.child({ component: 'chat' }), options.teamsAuth);
    // ServiceNow change desk and email (real services, or the local fakes in demo mode).
    const serviceNow = await startServiceNow(config, logger);
    if (serviceNow) stops.push(serviceNow.stop);
    const email = await startEmail(config, logger, serviceNow ? { changeUrl: serviceNow.changeUrl } : {});
    if (email) stops.push(email.stop);

    let worker: Worker | undefined;
    if (options.worker) {
      await installTemporalLogger(logger, { metricsAddress: config.metrics.temporalAddress });
      const connection = await connectWorker(config.temporal, temporal.address);
      const activities = createActivities({
        database: db.database,
        logger: logger.child({ component: 'activities' }),
        // Stage messages also become work notes on the cycle's change request.
        chat: serviceNow
          ? withChangeWorkNotes({
              chat: chat.notifier,
              desk: serviceNow.desk,
              changeNumberOf: async (cycleId) => (await getCycleRow(db.database.db, cycleId))?.changeNumber ?? null,
              logger: logger.child({ component: 'servicenow' }),
              ...(serviceNow.waveTasks ? { waveTasks: serviceNow.desk } : {}),
            })
          : chat.notifier,
        changeDesk: serviceNow?.desk ?? null,
        mailer: email?.mailer ?? null,
        digestMailer: email?.mailer ?? null,
        reportRecipients: email?.recipients ?? config.smtp.reportRecipients,
        kevCatalog: kevCatalog(),
      });
      worker = await createWorker({
        connection,
        namespace: config.temporal.namespace,
        activities,
        ...(metrics ? { interceptors: { activity: [metrics.activityInterceptor] } } : {}),
      });
      const running = worker.run();
      running.catch((err: unknown) => logger.error({ err }, 'worker stopped with an error'));
      const w = worker;
      stops.push(async () => {
        if (w.getState() === 'RUNNING') w.shutdown();
        await running.catch(() => undefined);
        await connection.close();
      });
      // Cycles whose workflow closed without an ending of its own (terminated, timed out) are ended here.
      const reconciler = startCycleReconciler({
        db: db.database.db,
        client: temporal.client,
        activities,
        logger: logger.child({ component: 'cycle-reconciler' }),
      });
      stops.push(() => reconciler.stop());
      const schedules = await ensureScanSchedules(temporal.client, db.database.db).catch((err: unknown) => {
        logger.warn({ err }, 'fleet-scan schedules could not be created; scans still run on demand (patchops scan)');
        return [];
      });
      if (schedules.length) logger.info({ schedules }, 'fleet-scan schedules in place');
      if (email) {
        await ensureDigestSchedule(temporal.client)
          .then((id) => logger.info({ schedule: id }, 'weekly compliance digest schedule in place'))
          .catch((err: unknown) =>
            logger.warn({ err }, 'the weekly digest schedule could not be created; reports still go out per cycle'),
          );
      }
    }

    let server: FastifyInstance | undefined;
    let serverUrl: string | undefined;
    let firstAdmin: Running['firstAdmin'];
    if (options.server) {
      // The process that serves the dashboard creates its first admin, so a generated password is printed where it is used.
      firstAdmin = (await ensureFirstAdmin(db.database.db, config.bootstrap.adminPassword)) ?? undefined;
      const health: HealthCheck[] = [
        db.health,
        temporal.health,
        ...integrationStates(config).map((i) =>
          i.name === 'servicenow' && serviceNow
            ? serviceNow.health
            : i.name === 'email' && email
              ? email.health
              : i.health,
        ),
      ];
      const secretBox = await secretBoxFor(config);
      // Failed sign-ins, counted together for the dashboard's form and the API's POST /api/v1/login, by every server.
      const loginThrottle = new PgLoginThrottle(db.database.db);
      const agentGateway = createAgentGateway({
        database: db.database,
        logger: logger.child({ component: 'agent-gateway' }),
        leaseSeconds: config.agents.leaseSeconds,
        maxHeldPolls: config.agents.maxHeldPolls,
        secretBox,
        repositoryDir: path.join(config.dataDir, 'repository'),
        envEnrollSecret: config.agents.enrollSecret,
      });
      stops.push(() => agentGateway.close());
      const periodic = startPeriodicJobs(
        [manifestResigningJob({ db: db.database.db, secretBox, logger: logger.child({ component: 'repository' }) })],
        logger,
      );
      stops.push(() => periodic.stop());
      const chatFrontEnds = createChatFrontEnds(config, {
        db: db.database.db,
        service: cycleServiceFor({ temporal, db }),
        channels: chat,
        logger: logger.child({ component: 'chat' }),
      });
      const routes: RouteModule[] = [
        ...chatFrontEnds.routes,
        agentGateway.routes,
        serviceNowWebhookRoute({
          cycles: cycleServiceFor({ temporal, db }),
          secret: serviceNow?.webhookSecret ?? config.serviceNow.webhookSecret,
          changes: serviceNow?.desk ?? null,
          receipts: new PgDeliveryReceipts(db.database.db),
          logger: logger.child({ component: 'servicenow-webhook' }),
        }),
        dashboardRoutes({
          db: db.database.db,
          logger: logger.child({ component: 'dashboard' }),
          cycles: cycleServiceFor({ temporal, db }),
          temporalUiUrl: temporal.uiUrl,
          temporalNamespace: config.temporal.namespace,
          secureCookies: config.http.publicUrl.startsWith('https:'),
          loginThrottle,
          publicUrl: config.http.publicUrl,
          envEnrollSecret: Boolean(config.agents.enrollSecret),
        }),
        apiRoutes(
          {
            db: db.database.db,
            service: cycleServiceFor({ temporal, db }),
            logger: logger.child({ component: 'api' }),
            loginThrottle,
            auditCheckpointFile: config.audit.checkpointFile,
            repository: {
              box: secretBox,
              dir: path.join(config.dataDir, 'repository'),
              maxUploadBytes: config.repository.maxUploadBytes,
            },
          },
          [webhooksMount({ db: db.database.db, box: secretBox, allowPrivate: config.webhooks.allowPrivate })],
        ),
      ];
      const dashboardJobs = startDashboardJobs({
        db: db.database.db,
        logger: logger.child({ component: 'dashboard-jobs' }),
      });
      stops.push(async () => dashboardJobs.stop());
      server = await buildServer({
        logger: logger.child({ component: 'http' }),
        health,
        routes,
        trustProxy: config.http.trustProxy,
        ...(metrics ? { observe: metrics.observeHttp } : {}),
      });
      await server.listen({ host: config.http.host, port: config.http.port });
      const s = server;
      stops.push(async () => {
        await s.close();
      });
      await chatFrontEnds.start();
      stops.push(() => chatFrontEnds.stop());
      const addr = server.server.address();
      const port = typeof addr === 'object' && addr ? addr.port : config.http.port;
      serverUrl = `http://${config.http.host === '0.0.0.0' ? '127.0.0.1' : config.http.host}:${port}`;
      serviceNow?.serverListening(serverUrl);
      const webhooks = startWebhookDeliverer({
        db: db.database.db,
        box: secretBox,
        logger: logger.child({ component: 'webhooks' }),
        allowPrivate: config.webhooks.allowPrivate,
        ...(metrics ? { onOutcome: metrics.observeWebhookDelivery } : {}),
      });
      stops.push(() => webhooks.stop());
    }

    return { db, temporal, worker, server, serverUrl, firstAdmin, stop: stopAll };
  } catch (e) {
    await stopAll();
    throw e;
  }
}
