/**
 * Bearer authentication of the REST API: `Authorization: Bearer pat_<id>_<secret>`. A missing, malformed,
 * unknown, revoked or expired token is 401; a valid token whose roles (the owner's, lowered to the token's scope:
 * db/api-tokens.ts effectiveGrants) do not reach what the route needs is 403, before anything is read or changed.
 * The caller found is remembered per request so the plugin can attribute the call in the audit log.
 */
import type { FastifyRequest } from 'fastify';
import type { Db } from '../db/client';
import { verifyApiToken, type TokenScope } from '../db/api-tokens';
import type { Role } from '../db/identities';
import { CodedError, ErrorCode } from '../domain/errors';
import { HttpError } from '../server/errors';

/** The person a call acts for. */
export interface ApiCaller {
  /** The person's identity, as in identity_roles (`web:alice`). */
  identity: string;
  tokenId: string;
  scope: TokenScope;
  /** The roles the call may use: the owner's, none above the token's scope. */
  roles: Role[];
}

const RANK: Record<Role, number> = { viewer: 1, approver: 2, admin: 3 };

const callers = new WeakMap<FastifyRequest, ApiCaller>();

/** The caller authorizeRequest found for `req`, if any (for the audit hook). */
export function callerOf(req: FastifyRequest): ApiCaller | undefined {
  return callers.get(req);
}

function bearerToken(req: FastifyRequest): string | null {
  const h = req.headers.authorization;
  if (typeof h !== 'string') return null;
  const m = /^Bearer\s+(\S+)\s*$/i.exec(h);
  return m ? m[1]! : null;
}

const unauthorized = (message: string) =>
  new HttpError(ErrorCode.Unauthorized, message, { 'www-authenticate': 'Bearer realm="patchops"' });

/**
 * The acting person of an API request, or a throw: 401 (no valid token) or 403 (`needed` is above what the
 * token may do). `needed` null only authenticates (the command core then checks the verb's role itself).
 * For other route modules mounted under /api/v1 (webhooks): call it first in a preHandler or the handler.
 */
export async function authorizeRequest(db: Db, req: FastifyRequest, needed: Role | null): Promise<ApiCaller> {
  const token = bearerToken(req);
  if (!token)
    throw unauthorized(
      'this call needs a personal access token: send "Authorization: Bearer pat_…" (make one with POST /api/v1/login or `patchops login`)',
    );
  const found = await verifyApiToken(db, token);
  if (!found)
    throw unauthorized(
      'the token is unknown, revoked or expired: make a new one with POST /api/v1/login or `patchops login`',
    );
  const caller: ApiCaller = { identity: found.owner, tokenId: found.tokenId, scope: found.scope, roles: found.roles };
  callers.set(req, caller);
  if (needed !== null && !caller.roles.some((r) => RANK[r] >= RANK[needed])) {
    throw new CodedError(
      ErrorCode.Forbidden,
      `this call needs the ${needed} role; the token (scope ${caller.scope}) of ${caller.identity} reaches ${caller.roles.length ? caller.roles.join(', ') : 'no role'}: use a token with a wider scope, or ask an admin for the role`,
    );
  }
  return caller;
}
