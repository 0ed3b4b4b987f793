/**
 * Deployment policies: stored, versioned, validated. A cycle records the version it ran under.
 * seedPolicies makes `default` and `emergency` exist after the first start (idempotent).
 */
import { and, desc, eq, sql } from 'drizzle-orm';
import { CodedError, ErrorCode } from '../domain/errors';
import { DEFAULT_POLICY, EMERGENCY_POLICY, parsePolicy, type DeploymentPolicy } from '../domain/policy';
import { appendAudit } from './audit';
import type { Db } from './client';
import { deploymentPolicies } from './schema/index';

export interface StoredPolicy {
  name: string;
  version: number;
  policy: DeploymentPolicy;
  createdBy: string;
  createdAt: string;
}

const POLICY_LOCK_KEY = 0x706f6c69; // 'poli'

function toStored(row: typeof deploymentPolicies.$inferSelect): StoredPolicy {
  return {
    name: row.name,
    version: row.version,
    policy: parsePolicy(row.definition),
    createdBy: row.createdBy,
    createdAt: row.createdAt.toISOString(),
  };
}

/** Stores DEFAULT_POLICY and EMERGENCY_POLICY as version 1 when no version of them exists yet. */
export async function seedPolicies(db: Db): Promise<void> {
  for (const p of [DEFAULT_POLICY, EMERGENCY_POLICY]) {
    const existing = await db
      .select({ v: deploymentPolicies.version })
      .from(deploymentPolicies)
      .where(eq(deploymentPolicies.name, p.name))
      .limit(1);
    if (existing.length > 0) continue;
    const inserted = await db
      .insert(deploymentPolicies)
      .values({
        name: p.name,
        version: 1,
        definition: p as unknown as Record<string, unknown>,
        createdBy: 'system:seed',
      })
      .onConflictDoNothing()
      .returning({ id: deploymentPolicies.id });
    if (inserted.length > 0) {
      await appendAudit(db, {
        actor: 'system:seed',
        action: 'policy.saved',
        subjectType: 'policy',
        subjectId: p.name,
        details: { version: 1 },
      });
    }
  }
}

/** The latest version of a policy, or a given version. Throws NOT_FOUND naming the known policies. */
export async function getPolicy(db: Db, name: string, version?: number): Promise<StoredPolicy> {
  const rows = await db
    .select()
    .from(deploymentPolicies)
    .where(
      version === undefined
        ? eq(deploymentPolicies.name, name)
        : and(eq(deploymentPolicies.name, name), eq(deploymentPolicies.version, version)),
    )
    .orderBy(desc(deploymentPolicies.version))
    .limit(1);
  const row = rows[0];
  if (!row) {
    const names = (await listPolicies(db)).map((p) => p.name);
    throw new CodedError(
      ErrorCode.NotFound,
      version === undefined
        ? `no policy named "${name}"; known policies: ${names.join(', ') || 'none'} (add one with \`patchops policies set <file>\`)`
        : `policy "${name}" has no version ${version}`,
    );
  }
  return toStored(row);
}

/** The latest version of every policy, by name. */
export async function listPolicies(
  db: Db,
): Promise<Array<{ name: string; version: number; description: string; createdBy: string; createdAt: string }>> {
  const rows = await db.execute<{
    name: string;
    version: number;
    definition: Record<string, unknown>;
    created_by: string;
    created_at: string | Date;
  }>(
    sql`select distinct on (name) name, version, definition, created_by, created_at from deployment_policies order by name, version desc`,
  );
  return rows.rows.map((r) => ({
    name: r.name,
    version: Number(r.version),
    description: typeof r.definition.description === 'string' ? r.definition.description : '',
    createdBy: r.created_by,
    createdAt: new Date(r.created_at).toISOString(),
  }));
}

/** Validates and stores a new version of a policy (version = latest + 1), audited. Throws POLICY_INVALID. */
export async function savePolicy(db: Db, doc: unknown, by: string): Promise<StoredPolicy> {
  const policy = parsePolicy(doc);
  const row = await db.transaction(async (tx) => {
    await tx.execute(sql`select pg_advisory_xact_lock(${POLICY_LOCK_KEY})`);
    const [last] = await tx
      .select({ v: deploymentPolicies.version })
      .from(deploymentPolicies)
      .where(eq(deploymentPolicies.name, policy.name))
      .orderBy(desc(deploymentPolicies.version))
      .limit(1);
    const version = (last?.v ?? 0) + 1;
    const [inserted] = await tx
      .insert(deploymentPolicies)
      .values({ name: policy.name, version, definition: policy as unknown as Record<string, unknown>, createdBy: by })
      .returning();
    return inserted!;
  });
  await appendAudit(db, {
    actor: by,
    action: 'policy.saved',
    subjectType: 'policy',
    subjectId: policy.name,
    details: { version: row.version },
  });
  return toStored(row);
}

export function policyNotFound(e: unknown): boolean {
  return e instanceof CodedError && e.code === ErrorCode.NotFound;
}
