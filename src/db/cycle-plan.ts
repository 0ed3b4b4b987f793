/**
 * A cycle's plan (area: cycles): which patch goes to which endpoint and why (cycle_targets, written from the
 * assessment), and which wave and batch each endpoint deploys in (cycle_endpoints, written from the wave
 * plan). Both are replaced whole, so a retried activity writes the same plan again. Returns plain values.
 */
import { and, eq, inArray } from 'drizzle-orm';
import type { AssessedPatch, Priority } from '../domain/risk';
import type { WavePlan } from '../domain/waves';
import type { Db } from './client';
import {
  cycleEndpoints,
  cycleTargets,
  endpointGroups,
  endpoints,
  groupMembers,
  maintenanceWindows,
} from './schema/index';

/** Rows per INSERT statement. */
const INSERT_BATCH = 1000;

/** P1 → 1 … P4 → 4 (0 when unknown): cycle_targets.priority. */
function priorityRank(p: Priority | string): number {
  return Number(p.replace(/\D/g, '')) || 0;
}

/** Replaces the cycle's targets with the assessment: a row per endpoint a patch goes to, and per endpoint an exception skips. */
export async function replaceCycleTargets(db: Db, cycleId: string, assessed: AssessedPatch[]): Promise<void> {
  const rows: Array<typeof cycleTargets.$inferInsert> = [];
  for (const a of assessed) {
    for (const endpointId of a.endpointIds) {
      rows.push({
        cycleId,
        endpointId,
        patchId: a.patchId,
        decision: a.decision,
        priority: priorityRank(a.priority),
        riskScore: a.riskScore,
        slaDue: a.slaDue ? new Date(a.slaDue) : null,
        reason: a.reason,
      });
    }
    for (const endpointId of a.skippedEndpointIds) {
      rows.push({
        cycleId,
        endpointId,
        patchId: a.patchId,
        decision: 'skipped',
        priority: priorityRank(a.priority),
        riskScore: a.riskScore,
        reason: a.reason,
      });
    }
  }
  await db.delete(cycleTargets).where(eq(cycleTargets.cycleId, cycleId));
  for (let i = 0; i < rows.length; i += INSERT_BATCH)
    await db
      .insert(cycleTargets)
      .values(rows.slice(i, i + INSERT_BATCH))
      .onConflictDoNothing();
}

/** The endpoints at least one included patch goes to (empty when the cycle has no targets). */
export async function targetEndpointIds(db: Db, cycleId: string): Promise<string[]> {
  const rows = await db
    .selectDistinct({ id: cycleTargets.endpointId })
    .from(cycleTargets)
    .where(and(eq(cycleTargets.cycleId, cycleId), eq(cycleTargets.decision, 'include')));
  return rows.map((r) => r.id);
}

/** Host names of the target endpoints, at most `limit` (for the change request's CIs). */
export async function targetHostnames(db: Db, cycleId: string, limit: number): Promise<string[]> {
  const rows = await db
    .select({ hostname: endpoints.hostname })
    .from(endpoints)
    .innerJoin(cycleTargets, eq(cycleTargets.endpointId, endpoints.id))
    .where(and(eq(cycleTargets.cycleId, cycleId), eq(cycleTargets.decision, 'include')))
    .groupBy(endpoints.hostname)
    .limit(limit);
  return rows.map((r) => r.hostname);
}

/** Replaces the cycle's wave assignment with the plan: the test ring is wave 0, batch 0. */
export async function replaceCycleWaves(db: Db, cycleId: string, plan: WavePlan): Promise<void> {
  const rows: Array<typeof cycleEndpoints.$inferInsert> = plan.test.endpointIds.map((id) => ({
    cycleId,
    endpointId: id,
    wave: 0,
    batch: 0,
  }));
  for (const w of plan.waves) {
    w.batches.forEach((batch, b) => {
      for (const id of batch) rows.push({ cycleId, endpointId: id, wave: w.index, batch: b });
    });
  }
  await db.delete(cycleEndpoints).where(eq(cycleEndpoints.cycleId, cycleId));
  for (let i = 0; i < rows.length; i += INSERT_BATCH)
    await db
      .insert(cycleEndpoints)
      .values(rows.slice(i, i + INSERT_BATCH))
      .onConflictDoNothing();
}

/** The endpoints of these waves (only `endpointId`, when given and in them). */
export async function endpointsOfWaves(
  db: Db,
  cycleId: string,
  waves: number[],
  endpointId?: string,
): Promise<string[]> {
  const conds = [eq(cycleEndpoints.cycleId, cycleId), inArray(cycleEndpoints.wave, waves)];
  if (endpointId) conds.push(eq(cycleEndpoints.endpointId, endpointId));
  const rows = await db
    .select({ id: cycleEndpoints.endpointId })
    .from(cycleEndpoints)
    .where(and(...conds));
  return rows.map((r) => r.id);
}

export interface WaveMaintenanceWindow {
  rrule: string;
  timezone: string;
  durationMinutes: number;
  blackoutDates: string[];
}

/** The distinct maintenance windows of the groups a wave's endpoints are in (empty: none of them has one). */
export async function waveMaintenanceWindows(db: Db, cycleId: string, wave: number): Promise<WaveMaintenanceWindow[]> {
  return db
    .selectDistinct({
      rrule: maintenanceWindows.rrule,
      timezone: maintenanceWindows.timezone,
      durationMinutes: maintenanceWindows.durationMinutes,
      blackoutDates: maintenanceWindows.blackoutDates,
    })
    .from(cycleEndpoints)
    .innerJoin(groupMembers, eq(groupMembers.endpointId, cycleEndpoints.endpointId))
    .innerJoin(endpointGroups, eq(endpointGroups.id, groupMembers.groupId))
    .innerJoin(maintenanceWindows, eq(maintenanceWindows.id, endpointGroups.maintenanceWindowId))
    .where(and(eq(cycleEndpoints.cycleId, cycleId), eq(cycleEndpoints.wave, wave)));
}
