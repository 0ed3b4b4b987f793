/**
 * Local web accounts and sessions. Passwords are hashed with scrypt (node:crypto); sessions are random
 * tokens whose sha256 is stored, with an expiry and a per-session CSRF token. Roles come from
 * identity_roles: web user `alice` is identity `web:alice`. Every user change and login is audited.
 */
import { createHash, randomBytes, scrypt as scryptCb, timingSafeEqual, type ScryptOptions } from 'node:crypto';
import { and, eq, gt, lt } from 'drizzle-orm';
import type { Db } from '../../db/client';
import { appendAudit } from '../../db/audit';
import { grantRole, revokeRole, rolesOf, ROLES, type Role } from '../../db/identities';
import { identityRoles, webSessions, webUsers } from '../../db/schema/index';
import { CodedError, ErrorCode } from '../../domain/errors';

/**
 * OWASP Password Storage Cheat Sheet's scrypt parameters: N=2^17, r=8, p=1 (128 MiB, about a second here).
 * A stored hash with weaker parameters is re-hashed at its owner's next successful sign-in.
 */
const SCRYPT = { N: 2 ** 17, r: 8, p: 1, keylen: 32 };
/** scrypt needs 128·N·r bytes; the stored N of a hash is capped so no row can ask for more. */
const SCRYPT_MAXMEM = 256 * 1024 * 1024;
const SCRYPT_MAX_N = 2 ** 20;

function scrypt(password: string, salt: Buffer, keylen: number, options: ScryptOptions): Promise<Buffer> {
  return new Promise((resolve, reject) =>
    scryptCb(password, salt, keylen, options, (err, key) => (err ? reject(err) : resolve(key))),
  );
}

export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(16);
  const key = await scrypt(password, salt, SCRYPT.keylen, {
    N: SCRYPT.N,
    r: SCRYPT.r,
    p: SCRYPT.p,
    maxmem: SCRYPT_MAXMEM,
  });
  return `scrypt$${SCRYPT.N}$${SCRYPT.r}$${SCRYPT.p}$${salt.toString('base64')}$${key.toString('base64')}`;
}

export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const parts = stored.split('$');
  if (parts.length !== 6 || parts[0] !== 'scrypt') return false;
  const [N, r, p] = [Number(parts[1]), Number(parts[2]), Number(parts[3])];
  if (
    !Number.isInteger(N) ||
    N < 2 ||
    N > SCRYPT_MAX_N ||
    !Number.isInteger(r) ||
    r < 1 ||
    r > 32 ||
    !Number.isInteger(p) ||
    p < 1 ||
    p > 16
  )
    return false;
  const salt = Buffer.from(parts[4]!, 'base64');
  const expected = Buffer.from(parts[5]!, 'base64');
  if (expected.length < 16) return false;
  const key = await scrypt(password, salt, expected.length, { N, r, p, maxmem: Math.max(SCRYPT_MAXMEM, 256 * N * r) });
  return key.length === expected.length && timingSafeEqual(key, expected);
}

/** True when a stored hash was made with other parameters than today's (it is re-hashed at the next sign-in). */
export function needsRehash(stored: string): boolean {
  const parts = stored.split('$');
  return (
    parts[0] !== 'scrypt' ||
    Number(parts[1]) !== SCRYPT.N ||
    Number(parts[2]) !== SCRYPT.r ||
    Number(parts[3]) !== SCRYPT.p
  );
}

export const webIdentity = (username: string) => `web:${username}`;

const USERNAME = /^[a-z0-9][a-z0-9._-]{0,62}$/;

/** A web user name: 1–63 lower-case letters, digits, dot, dash or underscore, starting with a letter or digit. */
export function isValidUsername(username: string): boolean {
  return USERNAME.test(username);
}

export interface WebUserSummary {
  username: string;
  roles: Role[];
  createdAt: string;
  lastLoginAt: string | null;
}

/** The role a web user acts with: the strongest one they hold. */
export function effectiveRole(roles: Role[]): Role | null {
  for (const r of ROLES) if (roles.includes(r)) return r;
  return null;
}

/**
 * Creates a web user with a role (admins are approvers too, as in bootstrapIdentities).
 * Throws INVALID_INPUT for a bad name, role or short password, CONFLICT when the name is taken.
 */
export async function addWebUser(
  db: Db,
  input: { username: string; password: string; role: Role; by: string },
): Promise<void> {
  if (!USERNAME.test(input.username)) {
    throw new CodedError(
      ErrorCode.InvalidInput,
      `user name "${input.username}" is not valid: use lower-case letters, digits, dot, dash or underscore (up to 63 characters)`,
    );
  }
  if (!ROLES.includes(input.role))
    throw new CodedError(ErrorCode.InvalidInput, `role "${input.role}" is not one of ${ROLES.join(', ')}`);
  if (input.password.length < 10)
    throw new CodedError(ErrorCode.InvalidInput, 'the password is too short: use at least 10 characters');
  const passwordHash = await hashPassword(input.password);
  const inserted = await db
    .insert(webUsers)
    .values({ username: input.username, passwordHash, createdBy: input.by })
    .onConflictDoNothing()
    .returning({ username: webUsers.username });
  if (inserted.length === 0)
    throw new CodedError(
      ErrorCode.Conflict,
      `web user "${input.username}" already exists: remove it first or pick another name`,
    );
  await appendAudit(db, {
    actor: input.by,
    action: 'user.added',
    subjectType: 'web_user',
    subjectId: input.username,
    details: { role: input.role },
  });
  const identity = webIdentity(input.username);
  await grantRole(db, { identity, role: input.role, by: input.by });
  if (input.role === 'admin') await grantRole(db, { identity, role: 'approver', by: input.by });
}

/** Removes a web user, their sessions and their roles. Returns false when there was no such user. */
export async function removeWebUser(db: Db, username: string, by: string): Promise<boolean> {
  const removed = await db
    .delete(webUsers)
    .where(eq(webUsers.username, username))
    .returning({ username: webUsers.username });
  if (removed.length === 0) return false;
  for (const g of await rolesOf(db, webIdentity(username)))
    await revokeRole(db, { identity: g.identity, role: g.role, groupName: g.groupName, by });
  await appendAudit(db, { actor: by, action: 'user.removed', subjectType: 'web_user', subjectId: username });
  return true;
}

export async function listWebUsers(db: Db): Promise<WebUserSummary[]> {
  const users = await db.select().from(webUsers).orderBy(webUsers.username);
  const grants = await db.select({ identity: identityRoles.identity, role: identityRoles.role }).from(identityRoles);
  return users.map((u) => ({
    username: u.username,
    roles: ROLES.filter((r) => grants.some((g) => g.identity === webIdentity(u.username) && g.role === r)),
    createdAt: u.createdAt.toISOString(),
    lastLoginAt: u.lastLoginAt?.toISOString() ?? null,
  }));
}

/**
 * First start: when no web user holds admin, creates `admin` with PATCHOPS_ADMIN_PASSWORD or a generated
 * password. Idempotent. Returns the generated password (to print once) or null.
 */
export async function ensureFirstAdmin(
  db: Db,
  password: string | undefined,
): Promise<{ username: string; generatedPassword: string | null } | null> {
  const admins = await db
    .select({ identity: identityRoles.identity })
    .from(identityRoles)
    .where(eq(identityRoles.role, 'admin'));
  const users = new Set(
    (await db.select({ username: webUsers.username }).from(webUsers)).map((u) => webIdentity(u.username)),
  );
  if (admins.some((a) => users.has(a.identity))) return null;
  const generated = password ? null : randomBytes(12).toString('base64url');
  try {
    await addWebUser(db, {
      username: 'admin',
      password: password ?? generated!,
      role: 'admin',
      by: 'system:first-start',
    });
  } catch (e) {
    // A web user "admin" exists without the admin role (someone changed it on purpose): leave it alone.
    if (e instanceof CodedError && e.code === ErrorCode.Conflict) return null;
    throw e;
  }
  return { username: 'admin', generatedPassword: generated };
}

// ---------------------------------------------------------------- sessions

export interface WebSession {
  username: string;
  identity: string;
  role: Role;
  csrfToken: string;
  expiresAt: Date;
}

const tokenHash = (token: string) => createHash('sha256').update(token).digest('hex');

/**
 * Checks the password; returns a new session token, or null (and audits the failure). A user name that
 * could not exist (isValidUsername) or an over-long password is INVALID_INPUT, refused before anything is
 * read or stored. A correct password under an older hash is re-hashed with today's parameters.
 */
export async function login(
  db: Db,
  input: { username: string; password: string; ttlMs: number; now?: Date; from?: string },
): Promise<{ token: string; session: WebSession } | null> {
  if (!isValidUsername(input.username)) {
    throw new CodedError(
      ErrorCode.InvalidInput,
      'That is not a user name: user names are 1-63 lower-case letters, digits, dot, dash or underscore.',
    );
  }
  if (input.password.length > 1024)
    throw new CodedError(ErrorCode.InvalidInput, 'The password is too long (over 1024 characters).');
  const now = input.now ?? new Date();
  const [user] = await db.select().from(webUsers).where(eq(webUsers.username, input.username)).limit(1);
  // Hash even for an unknown user so timing does not reveal which names exist.
  const ok = user
    ? await verifyPassword(input.password, user.passwordHash)
    : (await hashPassword(input.password), false);
  if (ok && user && needsRehash(user.passwordHash)) {
    await db
      .update(webUsers)
      .set({ passwordHash: await hashPassword(input.password) })
      .where(eq(webUsers.username, input.username));
  }
  const role = ok ? effectiveRole((await rolesOf(db, webIdentity(input.username))).map((g) => g.role)) : null;
  if (!ok || !role) {
    await appendAudit(db, {
      actor: webIdentity(input.username),
      action: 'login.failed',
      subjectType: 'web_user',
      subjectId: input.username,
      details: { reason: !ok ? 'wrong user name or password' : 'no role', from: input.from ?? null },
      at: now,
    });
    return null;
  }
  const token = randomBytes(32).toString('base64url');
  const csrfToken = randomBytes(24).toString('base64url');
  const expiresAt = new Date(now.getTime() + input.ttlMs);
  await db.delete(webSessions).where(lt(webSessions.expiresAt, now));
  await db
    .insert(webSessions)
    .values({ tokenHash: tokenHash(token), username: input.username, csrfToken, createdAt: now, expiresAt });
  await db.update(webUsers).set({ lastLoginAt: now }).where(eq(webUsers.username, input.username));
  await appendAudit(db, {
    actor: webIdentity(input.username),
    action: 'login',
    subjectType: 'web_user',
    subjectId: input.username,
    details: { role, from: input.from ?? null },
    at: now,
  });
  return {
    token,
    session: { username: input.username, identity: webIdentity(input.username), role, csrfToken, expiresAt },
  };
}

/** The live session for a cookie token, with the user's current role; null when unknown or expired. */
export async function sessionFor(db: Db, token: string | undefined, now = new Date()): Promise<WebSession | null> {
  if (!token) return null;
  const [s] = await db
    .select()
    .from(webSessions)
    .where(and(eq(webSessions.tokenHash, tokenHash(token)), gt(webSessions.expiresAt, now)))
    .limit(1);
  if (!s) return null;
  const role = effectiveRole((await rolesOf(db, webIdentity(s.username))).map((g) => g.role));
  if (!role) return null;
  return {
    username: s.username,
    identity: webIdentity(s.username),
    role,
    csrfToken: s.csrfToken,
    expiresAt: s.expiresAt,
  };
}

export async function logout(db: Db, token: string): Promise<void> {
  const removed = await db
    .delete(webSessions)
    .where(eq(webSessions.tokenHash, tokenHash(token)))
    .returning({ username: webSessions.username });
  if (removed[0])
    await appendAudit(db, {
      actor: webIdentity(removed[0].username),
      action: 'logout',
      subjectType: 'web_user',
      subjectId: removed[0].username,
    });
}

const RANK: Record<Role, number> = { viewer: 1, approver: 2, admin: 3 };

/** Does a user with `role` have at least `needed`? admin > approver > viewer. */
export function roleAtLeast(role: Role, needed: Role): boolean {
  return RANK[role] >= RANK[needed];
}
