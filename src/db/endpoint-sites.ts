/**
 * Endpoint sites: the one `site:<site>` tag of an endpoint, and the endpoint_site_changes log that tells the
 * gateways (other processes) whose site changed, so they drop those endpoints from their key cache.
 */
import { eq, gt, lt, sql } from 'drizzle-orm';
import { siteOfTags } from '../domain/enrolment';
import { CodedError, ErrorCode } from '../domain/errors';
import { siteSchema } from '../shared/agent-protocol';
import { appendAudit } from './audit';
import type { Db } from './client';
import { endpointByIdOrHostname } from './endpoints';
import { endpoints, endpointSiteChanges } from './schema/index';

/** The endpoint's tags with every `site:` tag replaced by `site:<site>` (none when site is null), as an SQL expression. */
export function withSiteTag(site: string | null) {
  const others = sql`array(select t from unnest(${endpoints.tags}) as t where t not like 'site:%')`;
  return site ? sql`array_append(${others}, ${`site:${site}`}::text)` : others;
}

/** Logs that an endpoint's site changed (gateways read the log); rows older than a day are dropped. */
export async function logSiteChange(db: Db, endpointId: string, site: string | null): Promise<void> {
  await db.insert(endpointSiteChanges).values({ endpointId, site });
  await db.delete(endpointSiteChanges).where(lt(endpointSiteChanges.changedAt, sql`now() - interval '1 day'`));
}

/**
 * Sets (or, with null, removes) an endpoint's site: exactly one `site:<site>` tag, other tags kept. The endpoint
 * is named by id or by hostname. Errors: NotFound (no such endpoint), Conflict (the hostname names several
 * endpoints: use the id), InvalidInput (not a valid site name). Gateways pick the change up on their next refresh.
 */
export async function setEndpointSite(
  db: Db,
  endpoint: string,
  site: string | null,
  by = 'system',
): Promise<{ endpointId: string; hostname: string; site: string | null; previous: string | null }> {
  const parsed = site === null ? null : siteSchema.safeParse(site);
  if (parsed && !parsed.success)
    throw new CodedError(
      ErrorCode.InvalidInput,
      `"${site}" is not a site name: ${parsed.error.issues[0]?.message ?? 'invalid'}`,
    );
  const newSite = parsed ? parsed.data : null;
  return db.transaction(async (tx) => {
    const t = tx as unknown as Db;
    const ep = await endpointByIdOrHostname(t, endpoint, { forUpdate: true });
    const previous = siteOfTags(ep.tags);
    await t
      .update(endpoints)
      .set({ tags: withSiteTag(newSite) })
      .where(eq(endpoints.id, ep.id));
    await logSiteChange(t, ep.id, newSite);
    await appendAudit(t, {
      actor: by,
      action: 'endpoint.site.set',
      subjectType: 'endpoint',
      subjectId: ep.id,
      details: { site: newSite, previous },
    });
    return { endpointId: ep.id, hostname: ep.hostname, site: newSite, previous };
  });
}

/** Endpoints whose site changed in rows after `afterId` (the gateway's cursor), and the new cursor. */
export async function siteChangesSince(db: Db, afterId: number): Promise<{ endpointIds: string[]; lastId: number }> {
  const rows = await db
    .select({ id: endpointSiteChanges.id, endpointId: endpointSiteChanges.endpointId })
    .from(endpointSiteChanges)
    .where(gt(endpointSiteChanges.id, afterId))
    .orderBy(endpointSiteChanges.id);
  return { endpointIds: [...new Set(rows.map((r) => r.endpointId))], lastId: rows.at(-1)?.id ?? afterId };
}

/** The newest site-change row id (a gateway starts its cursor there: its cache is empty anyway). */
export async function lastSiteChangeId(db: Db): Promise<number> {
  const [row] = await db
    .select({ id: sql<number>`coalesce(max(${endpointSiteChanges.id}), 0)::bigint` })
    .from(endpointSiteChanges);
  return Number(row?.id ?? 0);
}
