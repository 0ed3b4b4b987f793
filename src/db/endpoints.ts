/**
 * The endpoints table's own reads and writes shared by the agent areas: naming an endpoint by id or hostname, and
 * recording that endpoints were heard from.
 */
import { eq, inArray, sql, type SQL } from 'drizzle-orm';
import { CodedError, ErrorCode } from '../domain/errors';
import type { Db } from './client';
import { endpoints } from './schema/index';

/** The endpoint named by id, else by hostname. NotFound (none), Conflict (the hostname names several: use the id).
 * With forUpdate the row is locked for the caller's transaction. */
export async function endpointByIdOrHostname(
  db: Db,
  endpoint: string,
  opts: { forUpdate?: boolean } = {},
): Promise<{ id: string; hostname: string; tags: string[] }> {
  const find = (where: SQL) => {
    const q = db
      .select({ id: endpoints.id, hostname: endpoints.hostname, tags: endpoints.tags })
      .from(endpoints)
      .where(where);
    return opts.forUpdate ? q.for('update') : q;
  };
  let rows = await find(eq(endpoints.id, endpoint));
  if (rows.length === 0) rows = await find(eq(endpoints.hostname, endpoint));
  if (rows.length === 0)
    throw new CodedError(
      ErrorCode.NotFound,
      `no endpoint with id or hostname "${endpoint}"; see \`patchops agents list\``,
    );
  if (rows.length > 1)
    throw new CodedError(
      ErrorCode.Conflict,
      `${rows.length} endpoints are named "${endpoint}" (${rows.map((r) => r.id).join(', ')}): give the endpoint id`,
    );
  return rows[0]!;
}

/** Records that these endpoints were heard from (batched by the gateway); an unreachable endpoint becomes active again. */
export async function touchEndpoints(db: Db, endpointIds: string[], now: Date): Promise<void> {
  if (endpointIds.length === 0) return;
  await db
    .update(endpoints)
    .set({
      lastSeenAt: now,
      status: sql`case when ${endpoints.status} = 'unreachable' then 'active' else ${endpoints.status} end`,
    })
    .where(inArray(endpoints.id, endpointIds));
}
