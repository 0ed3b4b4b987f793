/**
 * Agents and what they enrol and fetch with, for admins (viewers may list): enrolled agents (list, revoke, site),
 * re-enrolments waiting for approval (list, approve, reject), enrolment secrets (list, add, revoke), distribution
 * points (list, register, remove) and the signed repository manifest (read). Each change is audited by the db
 * function it calls, as the token's person.
 */
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { addEnrollSecret, listEnrollSecrets, revokeEnrollSecret } from '../../db/agent-enroll-secrets';
import { approveEnrollment, listPendingEnrollments, rejectEnrollment } from '../../db/agent-enrolment';
import { listAgents, revokeAgent } from '../../db/agent-keys';
import { addDistributionPoint, listDistributionPoints, removeDistributionPoint } from '../../db/distribution-points';
import { setEndpointSite } from '../../db/endpoint-sites';
import { latestManifest } from '../../db/repository';
import { authorizeRequest } from '../auth';
import type { ApiDeps } from '../deps';
import { AUTH_ERRORS } from '../schemas';

const Endpoint = z.object({ endpoint: z.string().min(1).max(300).describe('endpoint id or hostname') });
const Request = z
  .object({
    requestId: z.number().int().min(1).optional().describe('which request, when several wait for the endpoint'),
  })
  .default({});
const AgentSummary = z.object({
  endpointId: z.string(),
  hostname: z.string(),
  osFamily: z.string(),
  osVersion: z.string(),
  status: z.string(),
  lastSeenAt: z.string().nullable(),
  activeKeys: z.number().int(),
  site: z.string().nullable(),
  pendingEnrolments: z.number().int(),
  duplicateMachineId: z.boolean(),
});
const PendingEnrollment = z.object({
  requestId: z.number().int(),
  endpointId: z.string(),
  currentHostname: z.string(),
  hostname: z.string(),
  osFamily: z.string(),
  osVersion: z.string(),
  site: z.string().nullable(),
  remoteAddress: z.string().nullable(),
  requestedAt: z.string(),
  duplicateMachineId: z.boolean(),
  currentAgentSeenAt: z.string().nullable(),
});
const DistributionPointSummary = z.object({
  name: z.string(),
  site: z.string(),
  url: z.string(),
  registeredAt: z.string(),
  registeredBy: z.string().nullable(),
  tokenReissued: z.object({ at: z.string(), by: z.string() }).nullable(),
  hasToken: z.boolean(),
});

export function agentRoutes(app: FastifyInstance, deps: ApiDeps): void {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const { db } = deps;

  r.get(
    '/agents',
    {
      schema: {
        summary: 'Enrolled agents, last seen, site, waiting re-enrolments',
        tags: ['agents'],
        response: { 200: z.object({ agents: z.array(AgentSummary) }), ...AUTH_ERRORS },
      },
    },
    async (req) => {
      await authorizeRequest(db, req, 'viewer');
      return { agents: await listAgents(db) };
    },
  );
  r.post(
    '/agents/:endpoint/revoke',
    {
      schema: {
        summary: "Revoke an agent's node keys (it must enrol again)",
        tags: ['agents'],
        params: Endpoint,
        response: { 200: z.object({ endpointId: z.string(), revokedKeys: z.number().int() }), ...AUTH_ERRORS },
      },
    },
    async (req) => {
      const c = await authorizeRequest(db, req, 'admin');
      return { endpointId: req.params.endpoint, revokedKeys: await revokeAgent(db, req.params.endpoint, c.identity) };
    },
  );
  r.put(
    '/agents/:endpoint/site',
    {
      schema: {
        summary: "Set (or with null clear) an endpoint's site",
        tags: ['agents'],
        params: Endpoint,
        body: z.object({ site: z.string().min(1).max(100).nullable() }),
        response: {
          200: z.object({
            endpointId: z.string(),
            hostname: z.string(),
            site: z.string().nullable(),
            previous: z.string().nullable(),
          }),
          ...AUTH_ERRORS,
        },
      },
    },
    async (req) => {
      const c = await authorizeRequest(db, req, 'admin');
      return setEndpointSite(db, req.params.endpoint, req.body.site, c.identity);
    },
  );

  r.get(
    '/enrolments',
    {
      schema: {
        summary: 'Re-enrolments waiting for an admin, oldest first',
        tags: ['agents'],
        response: { 200: z.object({ enrolments: z.array(PendingEnrollment) }), ...AUTH_ERRORS },
      },
    },
    async (req) => {
      await authorizeRequest(db, req, 'viewer');
      return { enrolments: await listPendingEnrollments(db) };
    },
  );
  for (const decision of ['approve', 'reject'] as const) {
    r.post(
      `/enrolments/:endpoint/${decision}`,
      {
        schema: {
          summary: `${decision === 'approve' ? 'Approve' : 'Reject'} a waiting re-enrolment of an endpoint`,
          tags: ['agents'],
          params: Endpoint,
          body: Request,
          response: { 200: z.looseObject({ endpointId: z.string(), requestId: z.number().int() }), ...AUTH_ERRORS },
        },
      },
      async (req) => {
        const c = await authorizeRequest(db, req, 'admin');
        const opts = { by: c.identity, ...(req.body.requestId ? { requestId: req.body.requestId } : {}) };
        return decision === 'approve'
          ? approveEnrollment(db, req.params.endpoint, opts)
          : rejectEnrollment(db, req.params.endpoint, opts);
      },
    );
  }

  const SecretInfo = z.object({
    id: z.number().int(),
    name: z.string(),
    createdAt: z.string(),
    revokedAt: z.string().nullable(),
  });
  r.get(
    '/enroll-secrets',
    {
      schema: {
        summary: 'Agent enrolment secrets (names and dates; never the secrets)',
        tags: ['enrolment secrets'],
        response: { 200: z.object({ secrets: z.array(SecretInfo) }), ...AUTH_ERRORS },
      },
    },
    async (req) => {
      await authorizeRequest(db, req, 'admin');
      return { secrets: await listEnrollSecrets(db) };
    },
  );
  r.post(
    '/enroll-secrets',
    {
      schema: {
        summary: 'Add an enrolment secret (generated when not given; shown once)',
        tags: ['enrolment secrets'],
        body: z.object({ name: z.string().min(1).max(100), secret: z.string().min(16).max(500).optional() }),
        response: { 200: z.object({ name: z.string(), secret: z.string() }), ...AUTH_ERRORS },
      },
    },
    async (req) => {
      const c = await authorizeRequest(db, req, 'admin');
      return addEnrollSecret(db, {
        name: req.body.name,
        ...(req.body.secret ? { secret: req.body.secret } : {}),
        by: c.identity,
      });
    },
  );
  r.delete(
    '/enroll-secrets/:name',
    {
      schema: {
        summary: 'Revoke an enrolment secret (enrolled agents keep working)',
        tags: ['enrolment secrets'],
        params: z.object({ name: z.string().min(1).max(100) }),
        response: { 200: z.object({ name: z.string(), revoked: z.literal(true) }), ...AUTH_ERRORS },
      },
    },
    async (req) => {
      const c = await authorizeRequest(db, req, 'admin');
      await revokeEnrollSecret(db, req.params.name, c.identity);
      return { name: req.params.name, revoked: true as const };
    },
  );

  r.get(
    '/distribution-points',
    {
      schema: {
        summary: 'Registered distribution points',
        tags: ['distribution points'],
        response: { 200: z.object({ distributionPoints: z.array(DistributionPointSummary) }), ...AUTH_ERRORS },
      },
    },
    async (req) => {
      await authorizeRequest(db, req, 'viewer');
      return { distributionPoints: await listDistributionPoints(db) };
    },
  );
  r.post(
    '/distribution-points',
    {
      schema: {
        summary: 'Register a distribution point (again with the same name: a new token); the token is shown once',
        tags: ['distribution points'],
        body: z.object({
          name: z.string().min(1).max(100),
          url: z.string().min(1).max(2000),
          site: z.string().min(1).max(100),
        }),
        response: { 200: z.object({ name: z.string(), site: z.string(), token: z.string() }), ...AUTH_ERRORS },
      },
    },
    async (req) => {
      const c = await authorizeRequest(db, req, 'admin');
      return addDistributionPoint(db, req.body, c.identity);
    },
  );
  r.delete(
    '/distribution-points/:name',
    {
      schema: {
        summary: 'Remove a distribution point: its token is refused from now on',
        tags: ['distribution points'],
        params: z.object({ name: z.string().min(1).max(100) }),
        response: { 200: z.object({ name: z.string(), site: z.string(), url: z.string() }), ...AUTH_ERRORS },
      },
    },
    async (req) => {
      const c = await authorizeRequest(db, req, 'admin');
      return removeDistributionPoint(db, req.params.name, c.identity);
    },
  );

  r.get(
    '/repository',
    {
      schema: {
        summary: 'The latest signed repository manifest (null when none was published)',
        tags: ['repository'],
        response: { 200: z.object({ manifest: z.looseObject({}).nullable() }), ...AUTH_ERRORS },
      },
    },
    async (req) => {
      await authorizeRequest(db, req, 'viewer');
      return { manifest: ((await latestManifest(db)) as unknown as Record<string, unknown> | null) ?? null };
    },
  );
}
