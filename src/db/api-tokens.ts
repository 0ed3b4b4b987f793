/**
 * Personal access tokens of the REST API. A token is `pat_<id>_<secret>`: the id finds the row, the secret is
 * compared by its SHA-256 (never stored in clear). Every token expires (90 days unless asked otherwise), can be
 * revoked, and has a scope; a call acts with the lower of the owner's role and that scope (effectiveRoles).
 * Creating and revoking is audited; using is recorded as last_used_at.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { and, desc, eq, isNull } from 'drizzle-orm';
import type { Db } from './client';
import { appendAudit } from './audit';
import { rolesOf, type Role, type RoleGrant } from './identities';
import { apiTokens } from './schema/index';
import { CodedError, ErrorCode } from '../domain/errors';

export type TokenScope = 'read' | 'approve' | 'admin';
export const TOKEN_SCOPES: readonly TokenScope[] = ['read', 'approve', 'admin'];
export const DEFAULT_TOKEN_DAYS = 90;
export const MAX_TOKEN_DAYS = 366;

/** The role each scope reaches at most. */
const SCOPE_ROLE: Record<TokenScope, Role> = { read: 'viewer', approve: 'approver', admin: 'admin' };
const ROLE_RANK: Record<Role, number> = { viewer: 1, approver: 2, admin: 3 };

/** The scopes a person whose strongest role is `role` may give a token: none above that role. */
export function scopesFor(role: Role): TokenScope[] {
  return TOKEN_SCOPES.filter((s) => ROLE_RANK[SCOPE_ROLE[s]] <= ROLE_RANK[role]);
}

/**
 * The grants a call with a `scope` token may use: each of the owner's grants lowered to the scope's role when it is
 * above it (an admin's read token acts as a viewer), so the call has the lower of the owner's role and the scope.
 */
export function effectiveGrants(grants: readonly RoleGrant[], scope: TokenScope): RoleGrant[] {
  const ceiling = SCOPE_ROLE[scope];
  return grants.map((g) => (ROLE_RANK[g.role] > ROLE_RANK[ceiling] ? { ...g, role: ceiling } : g));
}

export interface ApiTokenSummary {
  id: string;
  owner: string;
  name: string;
  scope: TokenScope;
  createdAt: string;
  expiresAt: string;
  revokedAt: string | null;
  lastUsedAt: string | null;
}

/** Who a valid token acts for, with the roles it may use. */
export interface TokenCaller {
  tokenId: string;
  owner: string;
  scope: TokenScope;
  roles: Role[];
}

const TOKEN_TEXT = /^pat_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$/;
const sha256Hex = (s: string): string => createHash('sha256').update(s).digest('hex');

function summary(r: typeof apiTokens.$inferSelect): ApiTokenSummary {
  return {
    id: r.id,
    owner: r.owner,
    name: r.name,
    scope: r.scope as TokenScope,
    createdAt: r.createdAt.toISOString(),
    expiresAt: r.expiresAt.toISOString(),
    revokedAt: r.revokedAt?.toISOString() ?? null,
    lastUsedAt: r.lastUsedAt?.toISOString() ?? null,
  };
}

/**
 * Makes a token for `owner`; the returned `token` text is shown once and never stored. Throws INVALID_INPUT for
 * an unknown scope, an empty or long name, or a lifetime outside 1..366 days.
 */
export async function createApiToken(
  db: Db,
  input: { owner: string; name: string; scope: TokenScope; expiresInDays?: number; by?: string; now?: Date },
): Promise<{ token: string; summary: ApiTokenSummary }> {
  if (!TOKEN_SCOPES.includes(input.scope))
    throw new CodedError(ErrorCode.InvalidInput, `scope "${input.scope}" is not one of ${TOKEN_SCOPES.join(', ')}`);
  const name = input.name.trim();
  if (name.length === 0 || name.length > 100)
    throw new CodedError(
      ErrorCode.InvalidInput,
      'a token needs a name of 1 to 100 characters (what it is for, e.g. "laptop CLI")',
    );
  const days = input.expiresInDays ?? DEFAULT_TOKEN_DAYS;
  if (!Number.isInteger(days) || days < 1 || days > MAX_TOKEN_DAYS)
    throw new CodedError(ErrorCode.InvalidInput, `expiresInDays must be a whole number from 1 to ${MAX_TOKEN_DAYS}`);
  const now = input.now ?? new Date();
  const id = randomBytes(8).toString('hex');
  const secret = randomBytes(32).toString('base64url');
  const [row] = await db
    .insert(apiTokens)
    .values({
      id,
      owner: input.owner,
      name,
      scope: input.scope,
      secretHash: sha256Hex(secret),
      createdAt: now,
      expiresAt: new Date(now.getTime() + days * 86_400_000),
    })
    .returning();
  await appendAudit(db, {
    actor: input.by ?? input.owner,
    action: 'api_token.created',
    subjectType: 'api_token',
    subjectId: id,
    details: { owner: input.owner, name, scope: input.scope, days, channel: 'api' },
  });
  return { token: `pat_${id}_${secret}`, summary: summary(row!) };
}

/**
 * The caller a token text stands for, or null when it is malformed, unknown, revoked or expired. Records the use
 * (last_used_at). The roles are read now, so a role revoked from the owner takes effect at the next call.
 */
export async function verifyApiToken(db: Db, text: string, now = new Date()): Promise<TokenCaller | null> {
  const m = TOKEN_TEXT.exec(text);
  if (!m) return null;
  const [, id, secret] = m;
  const [row] = await db.select().from(apiTokens).where(eq(apiTokens.id, id!)).limit(1);
  if (!row) return null;
  const given = Buffer.from(sha256Hex(secret!), 'hex');
  const stored = Buffer.from(row.secretHash, 'hex');
  if (given.length !== stored.length || !timingSafeEqual(given, stored)) return null;
  if (row.revokedAt || row.expiresAt.getTime() <= now.getTime()) return null;
  await db.update(apiTokens).set({ lastUsedAt: now }).where(eq(apiTokens.id, row.id));
  const scope = row.scope as TokenScope;
  const roles = [...new Set(effectiveGrants(await rolesOf(db, row.owner), scope).map((g) => g.role))];
  return { tokenId: row.id, owner: row.owner, scope, roles };
}

/** Tokens of `owner` (every owner's when omitted), newest first, revoked and expired ones included. */
export async function listApiTokens(db: Db, owner?: string): Promise<ApiTokenSummary[]> {
  const rows = await db
    .select()
    .from(apiTokens)
    .where(owner ? eq(apiTokens.owner, owner) : undefined)
    .orderBy(desc(apiTokens.createdAt));
  return rows.map(summary);
}

/**
 * Revokes a token. `owner` limits it to that person's tokens (an admin passes none). Throws NOT_FOUND when there is
 * no such live token (of that owner). Audited.
 */
export async function revokeApiToken(
  db: Db,
  id: string,
  opts: { owner?: string; by: string; now?: Date },
): Promise<ApiTokenSummary> {
  const where = and(
    eq(apiTokens.id, id),
    isNull(apiTokens.revokedAt),
    opts.owner ? eq(apiTokens.owner, opts.owner) : undefined,
  );
  const [row] = await db
    .update(apiTokens)
    .set({ revokedAt: opts.now ?? new Date() })
    .where(where)
    .returning();
  if (!row)
    throw new CodedError(
      ErrorCode.NotFound,
      `no live token ${id}${opts.owner ? ` of ${opts.owner}` : ''}: list them with GET /api/v1/tokens`,
    );
  await appendAudit(db, {
    actor: opts.by,
    action: 'api_token.revoked',
    subjectType: 'api_token',
    subjectId: id,
    details: { owner: row.owner, channel: 'api' },
  });
  return summary(row);
}
