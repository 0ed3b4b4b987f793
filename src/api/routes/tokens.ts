/**
 * Tokens: POST /login (user name and password → a new token, shown once), GET /whoami, GET /tokens (your own;
 * an admin token sees everyone's with ?all=true), DELETE /tokens/:id (your own; an admin's any).
 */
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import {
  createApiToken,
  DEFAULT_TOKEN_DAYS,
  listApiTokens,
  MAX_TOKEN_DAYS,
  revokeApiToken,
  type TokenScope as Scope,
} from '../../db/api-tokens';
import { CodedError, ErrorCode } from '../../domain/errors';
import { HttpError, HttpErrorCode } from '../../server/errors';
import { MemoryLoginThrottle } from '../../server/dashboard/login-throttle';
import { authorizeRequest } from '../auth';
import type { ApiDeps } from '../deps';
import { checkWebPassword } from '../password';
import { AUTH_ERRORS, ErrorReply, RoleName, TokenScope, TokenSummary } from '../schemas';

export function tokenRoutes(app: FastifyInstance, deps: ApiDeps): void {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const throttle = deps.loginThrottle ?? new MemoryLoginThrottle();
  const now = deps.now ?? (() => new Date());

  r.post(
    '/login',
    {
      schema: {
        summary: 'Sign in with a web user name and password and get a personal access token',
        tags: ['tokens'],
        security: [],
        body: z.object({
          user: z.string().min(1).max(63),
          password: z.string().min(1).max(1024),
          scope: TokenScope.default('read'),
          name: z.string().min(1).max(100).default('api'),
          expiresInDays: z.number().int().min(1).max(MAX_TOKEN_DAYS).default(DEFAULT_TOKEN_DAYS),
        }),
        response: {
          200: z.object({
            token: z.string().describe('pat_<id>_<secret>: shown once, keep it secret'),
            summary: TokenSummary,
          }),
          400: ErrorReply,
          401: ErrorReply,
          429: ErrorReply,
        },
      },
    },
    async (req) => {
      const { user, password, scope, name, expiresInDays } = req.body;
      const keys = [`ip:${req.ip}`, `user:${user}`];
      const wait = await throttle.retryAfterMs(keys, now().getTime());
      if (wait > 0)
        throw new HttpError(
          HttpErrorCode.RateLimited,
          `too many failed sign-ins: try again in ${Math.ceil(wait / 1000)} s`,
          { 'retry-after': String(Math.ceil(wait / 1000)) },
        );
      const identity = await checkWebPassword(deps.db, user, password, req.ip);
      if (!identity) {
        await throttle.failure(keys, now().getTime());
        throw new HttpError(ErrorCode.Unauthorized, 'wrong user name or password, or the user holds no role');
      }
      await throttle.success(`user:${user}`);
      return createApiToken(deps.db, { owner: identity, name, scope: scope as Scope, expiresInDays, now: now() });
    },
  );

  r.get(
    '/whoami',
    {
      schema: {
        summary: 'The person, scope and roles of the token',
        tags: ['tokens'],
        response: {
          200: z.object({ identity: z.string(), tokenId: z.string(), scope: TokenScope, roles: z.array(RoleName) }),
          ...AUTH_ERRORS,
        },
      },
    },
    async (req) => {
      const c = await authorizeRequest(deps.db, req, null);
      return { identity: c.identity, tokenId: c.tokenId, scope: c.scope, roles: c.roles };
    },
  );

  r.get(
    '/tokens',
    {
      schema: {
        summary: "Your tokens (with ?all=true and an admin token: everyone's)",
        tags: ['tokens'],
        querystring: z.object({ all: z.enum(['true', 'false']).default('false') }),
        response: { 200: z.object({ tokens: z.array(TokenSummary) }), ...AUTH_ERRORS },
      },
    },
    async (req) => {
      const all = req.query.all === 'true';
      const c = await authorizeRequest(deps.db, req, all ? 'admin' : null);
      return { tokens: await listApiTokens(deps.db, all ? undefined : c.identity) };
    },
  );

  r.delete(
    '/tokens/:id',
    {
      schema: {
        summary: "Revoke a token (your own; an admin token may revoke anyone's)",
        tags: ['tokens'],
        params: z.object({ id: z.string().min(1).max(64) }),
        response: { 200: TokenSummary, ...AUTH_ERRORS },
      },
    },
    async (req) => {
      const c = await authorizeRequest(deps.db, req, null);
      if (!/^[0-9a-f]{16}$/.test(req.params.id)) throw new CodedError(ErrorCode.NotFound, `no token ${req.params.id}`);
      const isAdmin = c.roles.includes('admin');
      return revokeApiToken(deps.db, req.params.id, {
        ...(isAdmin ? {} : { owner: c.identity }),
        by: c.identity,
        now: now(),
      });
    },
  );
}
