/**
 * The distribution_points table: caches of the repository's files per site, each with its own token (stored as
 * its sha256).
 */
import { and, eq, inArray } from 'drizzle-orm';
import { CodedError, ErrorCode } from '../domain/errors';
import { siteSchema } from '../shared/agent-protocol';
import { appendAudit } from './audit';
import type { Db } from './client';
import { randomSecret, sha256Hex } from './hashed-secrets';
import { auditLog, distributionPoints } from './schema/index';

/**
 * Registers a distribution point (or updates the one with that name) and issues it a new token: 256 random bits,
 * returned only now, stored as its sha256. Registering a name again replaces its token (rotation: the old one stops
 * working). InvalidInput when the site is not a site name or the URL is not http(s).
 */
export async function addDistributionPoint(
  db: Db,
  dp: { name: string; url: string; site: string },
  by = 'system',
): Promise<{ name: string; site: string; token: string }> {
  const site = siteSchema.safeParse(dp.site);
  if (!site.success)
    throw new CodedError(
      ErrorCode.InvalidInput,
      `"${dp.site}" is not a site name: ${site.error.issues[0]?.message ?? 'invalid'}`,
    );
  if (!/^https?:\/\/[^/\s]+/i.test(dp.url))
    throw new CodedError(
      ErrorCode.InvalidInput,
      `"${dp.url}" is not an http(s) URL agents can reach, e.g. http://dp1.branch.example:8081`,
    );
  const token = randomSecret();
  const values = { name: dp.name, url: dp.url.replace(/\/+$/, ''), site: site.data, tokenHash: sha256Hex(token) };
  await db
    .insert(distributionPoints)
    .values(values)
    .onConflictDoUpdate({
      target: distributionPoints.name,
      set: { url: values.url, site: values.site, tokenHash: values.tokenHash },
    });
  await appendAudit(db, {
    actor: by,
    action: 'distribution_point.registered',
    subjectType: 'distribution_point',
    subjectId: dp.name,
    details: { url: values.url, site: values.site },
  });
  return { name: dp.name, site: site.data, token };
}

/** The distribution point a token belongs to, or null when no registered point has it. */
export async function distributionPointForToken(db: Db, token: string): Promise<{ name: string; site: string } | null> {
  const [row] = await db
    .select({ name: distributionPoints.name, site: distributionPoints.site })
    .from(distributionPoints)
    .where(eq(distributionPoints.tokenHash, sha256Hex(token)));
  return row ?? null;
}

/** Distribution point URLs per site (endpoints tagged `site:<site>` use them). */
export async function distributionPointsBySite(db: Db): Promise<Map<string, string[]>> {
  const rows = await db.select().from(distributionPoints).orderBy(distributionPoints.id);
  const out = new Map<string, string[]>();
  for (const r of rows) out.set(r.site, [...(out.get(r.site) ?? []), r.url]);
  return out;
}

export interface DistributionPointSummary {
  name: string;
  site: string;
  url: string;
  /** When the point was first registered under this name (re-registering keeps it). */
  registeredAt: string;
  /** Who registered it, from the audit log; null when the log has no entry for it. */
  registeredBy: string | null;
  /** The last time its token was replaced by registering the name again, and by whom; null when never. */
  tokenReissued: { at: string; by: string } | null;
  /** False for a point registered before points had tokens: it cannot authenticate until registered again. */
  hasToken: boolean;
}

/** Every registered distribution point, by site then name, with who registered it (read from the audit log). */
export async function listDistributionPoints(db: Db): Promise<DistributionPointSummary[]> {
  const rows = await db.select().from(distributionPoints).orderBy(distributionPoints.site, distributionPoints.name);
  if (rows.length === 0) return [];
  const entries = await db
    .select({ action: auditLog.action, subjectId: auditLog.subjectId, actor: auditLog.actor, at: auditLog.at })
    .from(auditLog)
    .where(
      and(
        eq(auditLog.subjectType, 'distribution_point'),
        inArray(
          auditLog.subjectId,
          rows.map((r) => r.name),
        ),
      ),
    )
    .orderBy(auditLog.id);
  return rows.map((r) => {
    // The registrations since the name was last removed: the first made the point, later ones replaced its token.
    let registrations: typeof entries = [];
    for (const e of entries) {
      if (e.subjectId !== r.name) continue;
      if (e.action === 'distribution_point.removed') registrations = [];
      else if (e.action === 'distribution_point.registered') registrations.push(e);
    }
    const last = registrations.length > 1 ? registrations.at(-1)! : null;
    return {
      name: r.name,
      site: r.site,
      url: r.url,
      registeredAt: r.createdAt.toISOString(),
      registeredBy: registrations[0]?.actor ?? null,
      tokenReissued: last ? { at: last.at.toISOString(), by: last.actor } : null,
      hasToken: r.tokenHash !== null,
    };
  });
}

/**
 * Removes a distribution point: its token is refused from then on (gateways re-read a cached token within their
 * token cache time) and agents of its site are no longer offered it (from the gateways' next reload of the list).
 * NotFound when no point has that name.
 */
export async function removeDistributionPoint(
  db: Db,
  name: string,
  by = 'system',
): Promise<{ name: string; site: string; url: string }> {
  return db.transaction(async (tx) => {
    const t = tx as unknown as Db;
    const [row] = await t
      .delete(distributionPoints)
      .where(eq(distributionPoints.name, name))
      .returning({ name: distributionPoints.name, site: distributionPoints.site, url: distributionPoints.url });
    if (!row)
      throw new CodedError(
        ErrorCode.NotFound,
        `no distribution point named "${name}"; see \`patchops distribution-points list\``,
      );
    await appendAudit(t, {
      actor: by,
      action: 'distribution_point.removed',
      subjectType: 'distribution_point',
      subjectId: row.name,
      details: { url: row.url, site: row.site },
    });
    return row;
  });
}
