import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import { CodedError, ErrorCode } from '../domain/errors';
import type { Logger } from '../logging';
import { installErrorHandler } from './errors';
import type { HealthCheck, RouteModule } from '../shared/contracts';
import { runHealthChecks } from './health';
import { refuseNul } from './input';

export interface ServerOptions {
  logger: Logger;
  health: HealthCheck[];
  routes?: RouteModule[];
  bodyLimit?: number;
  /**
   * TRUST_PROXY: the reverse proxies (addresses, CIDRs, `loopback`) whose X-Forwarded-For is believed.
   * Empty or absent: none, so req.ip is the socket's address and a client cannot choose its own.
   */
  trustProxy?: string[];
  /** Called for each route as it is registered (the fuzz suite enumerates every route this way). */
  onRoute?: (route: { method: string | string[]; url: string }) => void;
  /** Called once per answered request with its route pattern (`/agent/v1/jobs/:id/result`, not the URL), for metrics. */
  observe?: (route: string, method: string, status: number, seconds: number) => void;
}

/** The one HTTP server. Routes come in as modules so each part owns its own; one error handler serves them all. */
export async function buildServer(o: ServerOptions): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: o.logger as FastifyBaseLogger,
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: o.bodyLimit ?? 10 * 1024 * 1024,
    trustProxy: o.trustProxy?.length ? o.trustProxy : false,
    // Job ids are deterministic from (cycle, wave, endpoint, kind) and run past Fastify's default of 100.
    routerOptions: { maxParamLength: 1024 },
  });
  installErrorHandler(app, o.logger);
  if (o.onRoute) app.addHook('onRoute', (r) => o.onRoute!({ method: r.method, url: r.url }));
  if (o.observe) {
    const observe = o.observe;
    app.addHook('onResponse', async (req, reply) => {
      observe(req.routeOptions.url ?? 'unmatched', req.method, reply.statusCode, reply.elapsedTime / 1000);
    });
  }

  // PostgreSQL text cannot hold NUL: refuse it at the door, in the URL and in any parsed body, for every route.
  app.addHook('onRequest', async (req) => {
    if (req.url.includes('\u0000') || /%00/i.test(req.url))
      throw new CodedError(ErrorCode.InvalidInput, 'the URL contains a NUL byte (%00): remove it and retry');
  });
  app.addHook('preValidation', async (req) => {
    refuseNul(req.body, 'body');
  });

  app.get('/healthz', async (_req, reply) => {
    const report = await runHealthChecks(o.health);
    return reply.code(report.status === 'ok' ? 200 : 503).send(report);
  });

  for (const mount of o.routes ?? []) await mount(app);
  return app;
}
