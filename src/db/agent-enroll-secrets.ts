/**
 * The agent_enroll_secrets table: the shared secrets an agent shows to enrol. Only their sha256 is stored.
 */
import { and, eq, isNull } from 'drizzle-orm';
import { CodedError, ErrorCode } from '../domain/errors';
import { appendAudit } from './audit';
import type { Db } from './client';
import { randomSecret, sha256Hex } from './hashed-secrets';
import { agentEnrollSecrets } from './schema/index';

export interface EnrollSecretInfo {
  id: number;
  name: string;
  createdAt: string;
  revokedAt: string | null;
}

/** Adds an enrol secret (given, or generated) and returns it; the plain secret is never stored. Conflict when the name exists. */
export async function addEnrollSecret(
  db: Db,
  input: { name: string; secret?: string; by?: string },
): Promise<{ name: string; secret: string }> {
  const secret = input.secret ?? randomSecret();
  if (secret.length < 16)
    throw new CodedError(
      ErrorCode.InvalidInput,
      'an enrol secret needs at least 16 characters; leave it out to have one generated',
    );
  const rows = await db
    .insert(agentEnrollSecrets)
    .values({ name: input.name, secretHash: sha256Hex(secret), createdBy: input.by ?? 'system' })
    .onConflictDoNothing()
    .returning({ id: agentEnrollSecrets.id });
  if (rows.length === 0)
    throw new CodedError(
      ErrorCode.Conflict,
      `an enrol secret named "${input.name}" (or with that value) exists already; pick another name`,
    );
  await appendAudit(db, {
    actor: input.by ?? 'system',
    action: 'agent.enroll_secret.added',
    subjectType: 'enroll_secret',
    subjectId: input.name,
    details: {},
  });
  return { name: input.name, secret };
}

/** Makes sure the configured secret (AGENT_ENROLL_SECRET) is active under the name "env". Idempotent. */
export async function ensureEnvEnrollSecret(db: Db, secret: string): Promise<void> {
  await db
    .insert(agentEnrollSecrets)
    .values({
      name: `env-${sha256Hex(secret).slice(0, 8)}`,
      secretHash: sha256Hex(secret),
      createdBy: 'AGENT_ENROLL_SECRET',
    })
    .onConflictDoNothing();
}

export async function listEnrollSecrets(db: Db): Promise<EnrollSecretInfo[]> {
  const rows = await db.select().from(agentEnrollSecrets).orderBy(agentEnrollSecrets.id);
  return rows.map((r) => ({
    id: r.id,
    name: r.name,
    createdAt: r.createdAt.toISOString(),
    revokedAt: r.revokedAt?.toISOString() ?? null,
  }));
}

/** Revokes an enrol secret; NotFound when no active secret has that name. Agents already enrolled keep their keys. */
export async function revokeEnrollSecret(db: Db, name: string, by = 'system'): Promise<void> {
  const rows = await db
    .update(agentEnrollSecrets)
    .set({ revokedAt: new Date() })
    .where(and(eq(agentEnrollSecrets.name, name), isNull(agentEnrollSecrets.revokedAt)))
    .returning({ id: agentEnrollSecrets.id });
  if (rows.length === 0)
    throw new CodedError(
      ErrorCode.NotFound,
      `no active enrol secret named "${name}"; see \`patchops enroll-secret list\``,
    );
  await appendAudit(db, {
    actor: by,
    action: 'agent.enroll_secret.revoked',
    subjectType: 'enroll_secret',
    subjectId: name,
    details: {},
  });
}
