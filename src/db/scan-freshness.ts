/**
 * Scan freshness for a cycle's IDENTIFY (area: cycles). An endpoint is known when its last scan is recent
 * enough for the policy, or when it answered a scan this cycle sent it; everything else in scope is stale
 * and must be scanned before the cycle may say anything about it. One rule, used to pick what to scan and
 * to decide what was checked. Returns ids only.
 */
import { and, inArray, sql } from 'drizzle-orm';
import type { Db } from './client';
import { agentJobs, endpoints } from './schema/index';

const CHUNK = 5000;

/** Of `endpointIds`, those with no scan, or a last scan before `now - maxAgeHours`, and no scan answered in `cycleId`. */
export async function staleEndpoints(
  db: Db,
  o: { cycleId: string; endpointIds: string[]; maxAgeHours: number; now: Date },
): Promise<string[]> {
  const cutoff = new Date(o.now.getTime() - o.maxAgeHours * 3_600_000);
  const stale: string[] = [];
  for (let i = 0; i < o.endpointIds.length; i += CHUNK) {
    const chunk = o.endpointIds.slice(i, i + CHUNK);
    const rows = await db
      .select({ id: endpoints.id })
      .from(endpoints)
      .where(
        and(
          inArray(endpoints.id, chunk),
          sql`(${endpoints.lastScanAt} is null or ${endpoints.lastScanAt} < ${cutoff})`,
          sql`not exists (select 1 from ${agentJobs} j where j.cycle_id = ${o.cycleId} and j.endpoint_id = ${endpoints.id}
                          and j.kind = 'scan' and j.state = 'succeeded')`,
        ),
      )
      .orderBy(endpoints.id);
    stale.push(...rows.map((r) => r.id));
  }
  return stale;
}
