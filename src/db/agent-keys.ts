/**
 * The agent_node_keys table: which endpoint a node key belongs to, revocations, and the list of agents with their
 * active keys.
 */
import { and, eq, gt, isNull, sql } from 'drizzle-orm';
import { siteOfTags } from '../domain/enrolment';
import { CodedError, ErrorCode } from '../domain/errors';
import { listPendingEnrollments } from './agent-enrolment';
import { appendAudit } from './audit';
import type { Db } from './client';
import { sha256Hex } from './hashed-secrets';
import { agentNodeKeys, endpoints } from './schema/index';

/** The endpoint a node key belongs to (with its site tag), or null when the key is unknown or revoked. */
export async function endpointForKey(
  db: Db,
  nodeKey: string,
): Promise<{ endpointId: string; site: string | null } | null> {
  const [row] = await db
    .select({ endpointId: agentNodeKeys.endpointId, tags: endpoints.tags })
    .from(agentNodeKeys)
    .innerJoin(endpoints, eq(endpoints.id, agentNodeKeys.endpointId))
    .where(and(eq(agentNodeKeys.keyHash, sha256Hex(nodeKey)), isNull(agentNodeKeys.revokedAt)));
  if (!row) return null;
  return { endpointId: row.endpointId, site: siteOfTags(row.tags) };
}

/** Key hashes revoked after `since` (the gateway drops them from its cache). */
export async function keysRevokedSince(db: Db, since: Date): Promise<{ hashes: string[]; latest: Date | null }> {
  const rows = await db
    .select({ keyHash: agentNodeKeys.keyHash, revokedAt: agentNodeKeys.revokedAt })
    .from(agentNodeKeys)
    .where(gt(agentNodeKeys.revokedAt, since));
  let latest: Date | null = null;
  for (const r of rows) if (r.revokedAt && (!latest || r.revokedAt > latest)) latest = r.revokedAt;
  return { hashes: rows.map((r) => r.keyHash), latest };
}

/** Revokes every active key of an endpoint; returns how many. NotFound when the endpoint does not exist. */
export async function revokeAgent(db: Db, endpointId: string, by = 'system'): Promise<number> {
  const [ep] = await db.select({ id: endpoints.id }).from(endpoints).where(eq(endpoints.id, endpointId));
  if (!ep) throw new CodedError(ErrorCode.NotFound, `no endpoint "${endpointId}"; see \`patchops agents list\``);
  const rows = await db
    .update(agentNodeKeys)
    .set({ revokedAt: new Date() })
    .where(and(eq(agentNodeKeys.endpointId, endpointId), isNull(agentNodeKeys.revokedAt)))
    .returning({ id: agentNodeKeys.id });
  await appendAudit(db, {
    actor: by,
    action: 'agent.revoked',
    subjectType: 'endpoint',
    subjectId: endpointId,
    details: { keys: rows.length },
  });
  return rows.length;
}

export interface AgentSummary {
  endpointId: string;
  hostname: string;
  osFamily: string;
  osVersion: string;
  status: string;
  lastSeenAt: string | null;
  activeKeys: number;
  /** From the endpoint's `site:<site>` tag; null when it has none. */
  site: string | null;
  /** Re-enrolments of this machine waiting for an admin (`patchops agents approve`). */
  pendingEnrolments: number;
  /** A waiting re-enrolment while the current agent is alive: two agents claim this machine id. */
  duplicateMachineId: boolean;
}

export async function listAgents(db: Db): Promise<AgentSummary[]> {
  const rows = await db
    .select({
      endpointId: endpoints.id,
      hostname: endpoints.hostname,
      osFamily: endpoints.osFamily,
      osVersion: endpoints.osVersion,
      status: endpoints.status,
      lastSeenAt: endpoints.lastSeenAt,
      tags: endpoints.tags,
      // Qualified by hand: in a one-table select drizzle writes ${endpoints.id} as a bare "id", which inside the
      // subquery would be k.id.
      activeKeys: sql<number>`(select count(*)::int from ${agentNodeKeys} k where k.endpoint_id = ${endpoints}.${sql.identifier('id')} and k.revoked_at is null)`,
    })
    .from(endpoints)
    .orderBy(endpoints.hostname);
  const pending = await listPendingEnrollments(db);
  return rows.map(({ tags, ...r }) => {
    const mine = pending.filter((p) => p.endpointId === r.endpointId);
    return {
      ...r,
      lastSeenAt: r.lastSeenAt?.toISOString() ?? null,
      site: siteOfTags(tags),
      pendingEnrolments: mine.length,
      duplicateMachineId: mine.some((p) => p.duplicateMachineId),
    };
  });
}
