import { and, eq, inArray } from 'drizzle-orm';
import type { Db } from './client';
import { appendAudit } from './audit';
import { identityRoles } from './schema/index';

export type Role = 'admin' | 'approver' | 'viewer';
export const ROLES: readonly Role[] = ['admin', 'approver', 'viewer'];

export interface RoleGrant {
  identity: string;
  role: Role;
  groupName: string;
}

/** Grants a role (idempotent) and audits it. */
export async function grantRole(
  db: Db,
  grant: { identity: string; role: Role; groupName?: string; by: string },
): Promise<void> {
  const groupName = grant.groupName ?? 'default';
  const inserted = await db
    .insert(identityRoles)
    .values({ identity: grant.identity, role: grant.role, groupName, grantedBy: grant.by })
    .onConflictDoNothing()
    .returning({ identity: identityRoles.identity });
  if (inserted.length > 0) {
    await appendAudit(db, {
      actor: grant.by,
      action: 'role.granted',
      subjectType: 'identity',
      subjectId: grant.identity,
      details: { role: grant.role, groupName },
    });
  }
}

/** Revokes a role; returns false when the identity did not hold it. */
export async function revokeRole(
  db: Db,
  grant: { identity: string; role: Role; groupName?: string; by: string },
): Promise<boolean> {
  const groupName = grant.groupName ?? 'default';
  const removed = await db
    .delete(identityRoles)
    .where(
      and(
        eq(identityRoles.identity, grant.identity),
        eq(identityRoles.role, grant.role),
        eq(identityRoles.groupName, groupName),
      ),
    )
    .returning({ identity: identityRoles.identity });
  if (removed.length === 0) return false;
  await appendAudit(db, {
    actor: grant.by,
    action: 'role.revoked',
    subjectType: 'identity',
    subjectId: grant.identity,
    details: { role: grant.role, groupName },
  });
  return true;
}

export async function rolesOf(db: Db, identity: string): Promise<RoleGrant[]> {
  const rows = await db.select().from(identityRoles).where(eq(identityRoles.identity, identity));
  return rows.map((r) => ({ identity: r.identity, role: r.role as Role, groupName: r.groupName }));
}

export async function hasRole(db: Db, identity: string, role: Role): Promise<boolean> {
  const rows = await db
    .select({ identity: identityRoles.identity })
    .from(identityRoles)
    .where(and(eq(identityRoles.identity, identity), eq(identityRoles.role, role)))
    .limit(1);
  return rows.length > 0;
}

/** Identities holding `role` in any of `groups` (all groups when omitted). */
export async function identitiesWithRole(db: Db, role: Role, groups?: string[]): Promise<string[]> {
  const rows = await db
    .selectDistinct({ identity: identityRoles.identity })
    .from(identityRoles)
    .where(
      groups && groups.length > 0
        ? and(eq(identityRoles.role, role), inArray(identityRoles.groupName, groups))
        : eq(identityRoles.role, role),
    );
  return rows.map((r) => r.identity).sort();
}

/** First-run bootstrap from PATCHOPS_ADMINS / PATCHOPS_APPROVERS (idempotent). Admins are approvers too. */
export async function bootstrapIdentities(db: Db, admins: string[], approvers: string[]): Promise<void> {
  for (const identity of admins) {
    await grantRole(db, { identity, role: 'admin', by: 'system:bootstrap' });
    await grantRole(db, { identity, role: 'approver', by: 'system:bootstrap' });
  }
  for (const identity of approvers) await grantRole(db, { identity, role: 'approver', by: 'system:bootstrap' });
}
