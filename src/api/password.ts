/**
 * The password check of POST /api/v1/login: the dashboard's web accounts (scrypt hashes in web_users, roles of
 * `web:<user>` in identity_roles), without making a dashboard session. Returns the person's identity, or null for
 * a wrong name or password or a user without any role; a failure is audited like the dashboard's.
 */
import { eq } from 'drizzle-orm';
import type { Db } from '../db/client';
import { appendAudit } from '../db/audit';
import { rolesOf } from '../db/identities';
import { webUsers } from '../db/schema/index';
import { hashPassword, isValidUsername, verifyPassword, webIdentity } from '../server/dashboard/auth';

export async function checkWebPassword(
  db: Db,
  username: string,
  password: string,
  from: string,
): Promise<string | null> {
  if (!isValidUsername(username)) return null;
  const [user] = await db.select().from(webUsers).where(eq(webUsers.username, username)).limit(1);
  // Hash even for an unknown user so timing does not reveal which names exist.
  const ok = user ? await verifyPassword(password, user.passwordHash) : (await hashPassword(password), false);
  const identity = webIdentity(username);
  const hasRole = ok && (await rolesOf(db, identity)).length > 0;
  if (!hasRole) {
    await appendAudit(db, {
      actor: identity,
      action: 'login.failed',
      subjectType: 'web_user',
      subjectId: username,
      details: { reason: ok ? 'no role' : 'wrong user name or password', from, channel: 'api' },
    });
    return null;
  }
  return identity;
}
