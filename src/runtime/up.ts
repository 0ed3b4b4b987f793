import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { Worker } from '@temporalio/worker';
import { createActivities } from '../activities/index';
import { bootstrapIdentities } from '../db/identities';
import { seedPolicies } from '../db/policies';
import { cycleServiceFor, ensureScanSchedules } from '../services/cycles';
import { createChatChannels, createChatFrontEnds } from '../bot/core/chat-runtime';
import type { Config } from '../config/index';
import { installTemporalLogger, type Logger } from '../logging';
import { createAgentGateway } from '../server/agent-gateway';
import { ensureFirstAdmin } from '../server/dashboard/auth';
import { dashboardRoutes } from '../server/dashboard/index';
import { buildServer, type RouteModule } from '../server/app';
import type { HealthCheck } from '../server/health';
import { connectWorker } from '../temporal/connection';
import { createWorker } from '../worker/worker';
import { startDatabase, type RunningDatabase } from './database';
import { integrationStates } from './integrations';
import { startTemporal, type RunningTemporal } from './temporal';

export interface UpOptions {
  worker: boolean;
  server: boolean;
  onProgress?: (message: string) => void;
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
    // Slack and/or Teams behind the ChatNotifier port: the worker posts through it, the server's bots update it.
    const chat = createChatChannels(config, db.database.db, logger.child({ component: 'chat' }));

    let worker: Worker | undefined;
    if (options.worker) {
      await installTemporalLogger(logger);
      const connection = await connectWorker(config.temporal, temporal.address);
      worker = await createWorker({
        connection,
        namespace: config.temporal.namespace,
        activities: createActivities({
          database: db.database,
          logger: logger.child({ component: 'activities' }),
          chat: chat.notifier,
          reportRecipients: config.smtp.reportRecipients,
        }),
      });
      const running = worker.run();
      running.catch((err: unknown) => logger.error({ err }, 'worker stopped with an error'));
      const w = worker;
      stops.push(async () => {
        if (w.getState() === 'RUNNING') w.shutdown();
        await running.catch(() => undefined);
        await connection.close();
      });
      const schedules = await ensureScanSchedules(temporal.client, db.database.db).catch((err: unknown) => {
        logger.warn({ err }, 'fleet-scan schedules could not be created; scans still run on demand (patchops scan)');
        return [];
      });
      if (schedules.length) logger.info({ schedules }, 'fleet-scan schedules in place');
    }

    let server: FastifyInstance | undefined;
    let serverUrl: string | undefined;
    let firstAdmin: Running['firstAdmin'];
    if (options.server) {
      // The process that serves the dashboard creates its first admin, so a generated password is printed where it is used.
      firstAdmin = (await ensureFirstAdmin(db.database.db, config.bootstrap.adminPassword)) ?? undefined;
      const health: HealthCheck[] = [db.health, temporal.health, ...integrationStates(config).map((i) => i.health)];
      const agentGateway = createAgentGateway({
        database: db.database,
        logger: logger.child({ component: 'agent-gateway' }),
        leaseSeconds: config.agents.leaseSeconds,
        repositoryDir: path.join(config.dataDir, 'repository'),
        envEnrollSecret: config.agents.enrollSecret,
      });
      stops.push(() => agentGateway.close());
      const chatFrontEnds = createChatFrontEnds(config, {
        db: db.database.db,
        service: cycleServiceFor({ temporal, db }),
        channels: chat,
        logger: logger.child({ component: 'chat' }),
      });
      const routes: RouteModule[] = [
        ...chatFrontEnds.routes,
        agentGateway.routes,
        dashboardRoutes({
          db: db.database.db,
          logger: logger.child({ component: 'dashboard' }),
          temporalUiUrl: temporal.uiUrl,
          temporalNamespace: config.temporal.namespace,
          secureCookies: config.http.publicUrl.startsWith('https:'),
        }),
      ];
      server = await buildServer({ logger: logger.child({ component: 'http' }), health, routes });
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
    }

    return { db, temporal, worker, server, serverUrl, firstAdmin, stop: stopAll };
  } catch (e) {
    await stopAll();
    throw e;
  }
}
