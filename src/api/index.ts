/**
 * The REST API, /api/v1: a route module for the one server. Its routes validate with zod (fastify-type-provider-zod),
 * and @fastify/swagger builds the OpenAPI 3.1 document from the same schemas (GET /api/v1/openapi.json, a reference
 * page at /api/v1/docs). Every call that names its person (a valid token) is attributed in the audit log as
 * `api.call` on channel `api`, with its route and status; what a call changes is audited besides by the code that
 * changes it.
 */
import fastifySwagger from '@fastify/swagger';
import fastifySwaggerUi from '@fastify/swagger-ui';
import type { FastifyInstance } from 'fastify';
import { jsonSchemaTransform, serializerCompiler, validatorCompiler } from 'fastify-type-provider-zod';
import { appendAudit } from '../db/audit';
import type { RouteModule } from '../shared/contracts';
import { callerOf } from './auth';
import type { ApiDeps } from './deps';
import { agentRoutes } from './routes/agents';
import { auditRoutes } from './routes/audit';
import { commandRoutes } from './routes/commands';
import { cycleRoutes } from './routes/cycles';
import { fleetRoutes } from './routes/fleet';
import { groupRoutes } from './routes/groups';
import { patchRoutes } from './routes/patches';
import { peopleRoutes } from './routes/people';
import { policyRoutes } from './routes/policies';
import { reportRoutes } from './routes/reports';
import { repositoryRoutes } from './routes/repository';
import { tokenRoutes } from './routes/tokens';
import { userRoutes } from './routes/users';

export { authorizeRequest, type ApiCaller } from './auth';
export type { ApiDeps } from './deps';

export const API_PREFIX = '/api/v1';

async function apiPlugin(app: FastifyInstance, deps: ApiDeps): Promise<void> {
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  await app.register(fastifySwagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'patchops API',
        version: '1.0.0',
        description:
          'Patch cycles, fleet, policies, roles and the audit log. Authenticate with a personal access token: `Authorization: Bearer pat_…` (POST /api/v1/login or `patchops login`).',
      },
      components: {
        securitySchemes: {
          bearer: { type: 'http', scheme: 'bearer', description: 'a personal access token, pat_<id>_<secret>' },
        },
      },
      security: [{ bearer: [] }],
    },
    transform: jsonSchemaTransform,
  });
  await app.register(fastifySwaggerUi, { routePrefix: '/docs' });

  app.addHook('onResponse', async (req, reply) => {
    const caller = callerOf(req);
    if (!caller) return;
    try {
      await appendAudit(deps.db, {
        actor: caller.identity,
        action: 'api.call',
        subjectType: 'api_route',
        subjectId: `${req.method} ${req.routeOptions.url ?? req.url}`,
        details: { channel: 'api', status: reply.statusCode, tokenId: caller.tokenId, scope: caller.scope },
      });
    } catch (e) {
      deps.logger.error({ err: e, reqId: req.id }, 'could not audit an API call');
    }
  });

  app.get(
    '/openapi.json',
    { schema: { summary: 'This document (OpenAPI 3.1)', tags: ['meta'], security: [] } },
    async () => app.swagger(),
  );
  tokenRoutes(app, deps);
  commandRoutes(app, deps);
  cycleRoutes(app, deps);
  fleetRoutes(app, deps);
  groupRoutes(app, deps);
  patchRoutes(app, deps);
  peopleRoutes(app, deps);
  policyRoutes(app, deps);
  auditRoutes(app, deps);
  reportRoutes(app, deps);
  agentRoutes(app, deps);
  repositoryRoutes(app, deps);
  userRoutes(app, deps);
}

/**
 * Another part's routes that belong under /api/v1 (webhooks: `{ prefix: '/webhooks', routes: webhookRoutes }`).
 * Mounted inside the API's scope, so they get its zod validation, are in its OpenAPI document and its audit hook
 * attributes their calls; they authenticate with authorizeRequest like the API's own routes.
 */
export interface ApiMount {
  prefix: string;
  routes: RouteModule;
}

/** The API as a route module for buildServer (mounted by the composition root). */
export function apiRoutes(deps: ApiDeps, mounts: ApiMount[] = []): RouteModule {
  return async (app) => {
    await app.register(
      async (api) => {
        await apiPlugin(api, deps);
        for (const m of mounts) await api.register(async (child) => m.routes(child), { prefix: m.prefix });
      },
      { prefix: API_PREFIX },
    );
  };
}
