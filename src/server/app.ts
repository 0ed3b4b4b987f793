import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Logger } from '../logging';
import { runHealthChecks, type HealthCheck } from './health';

/** A part of the product that mounts routes on the one HTTP server (Slack, Teams, agent gateway, webhooks, dashboard). */
export type RouteModule = (app: FastifyInstance) => Promise<void> | void;

export interface ServerOptions {
  logger: Logger;
  health: HealthCheck[];
  routes?: RouteModule[];
  bodyLimit?: number;
}

/** The one HTTP server. Routes come in as modules so each part owns its own. */
export async function buildServer(o: ServerOptions): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: o.logger as FastifyBaseLogger,
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: o.bodyLimit ?? 10 * 1024 * 1024,
    trustProxy: true,
    // Job ids are deterministic from (cycle, wave, endpoint, kind) and run past Fastify's default of 100.
    routerOptions: { maxParamLength: 1024 },
  });

  app.get('/healthz', async (_req, reply) => {
    const report = await runHealthChecks(o.health);
    return reply.code(report.status === 'ok' ? 200 : 503).send(report);
  });

  for (const mount of o.routes ?? []) await mount(app);
  return app;
}
