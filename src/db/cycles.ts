/**
 * Cycle rows, stage events, votes and patch exceptions (area: cycles). Returns plain objects, never ORM rows.
 */
import { and, desc, eq, gt, gte, inArray, isNull, notInArray, sql } from 'drizzle-orm';
import { TERMINAL_STAGES, type CycleScope, type CycleStage } from '../domain/cycle';
import { CodedError, ErrorCode } from '../domain/errors';
import { appendAudit } from './audit';
import type { Db } from './client';
import { complianceSummary } from './read-model/compliance';
import {
  cycleApprovals,
  cycleStageEvents,
  endpointGroups,
  endpoints,
  groupMembers,
  patchCycles,
  patchExceptions,
} from './schema/index';

export interface CycleRow {
  cycleId: string;
  workflowId: string;
  policyName: string;
  policyVersion: number;
  scope: CycleScope;
  stage: CycleStage;
  emergency: boolean;
  requestedBy: string;
  changeNumber: string | null;
  reason: string | null;
  summary: Record<string, unknown> | null;
  createdAt: string;
  updatedAt: string;
  completedAt: string | null;
}

function toRow(r: typeof patchCycles.$inferSelect): CycleRow {
  return {
    cycleId: r.id,
    workflowId: r.workflowId,
    policyName: r.policyName,
    policyVersion: r.policyVersion,
    scope: r.scope as CycleScope,
    stage: r.stage as CycleStage,
    emergency: r.emergency,
    requestedBy: r.requestedBy,
    changeNumber: r.changeNumber,
    reason: r.reason,
    summary: r.summary,
    createdAt: r.createdAt.toISOString(),
    updatedAt: r.updatedAt.toISOString(),
    completedAt: r.completedAt ? r.completedAt.toISOString() : null,
  };
}

/** Creates the cycle row; a retried call finds the row it made (idempotent by id). */
export async function createCycleRow(
  db: Db,
  c: {
    cycleId: string;
    workflowId: string;
    policyName: string;
    policyVersion: number;
    scope: CycleScope;
    emergency: boolean;
    requestedBy: string;
  },
): Promise<{ created: boolean }> {
  const inserted = await db
    .insert(patchCycles)
    .values({
      id: c.cycleId,
      workflowId: c.workflowId,
      policyName: c.policyName,
      policyVersion: c.policyVersion,
      scope: c.scope as Record<string, unknown>,
      stage: 'IDENTIFY',
      emergency: c.emergency,
      requestedBy: c.requestedBy,
    })
    .onConflictDoNothing()
    .returning({ id: patchCycles.id });
  if (inserted.length > 0) {
    await appendAudit(db, {
      actor: c.requestedBy,
      action: 'cycle.started',
      subjectType: 'cycle',
      subjectId: c.cycleId,
      details: { policyName: c.policyName, policyVersion: c.policyVersion, scope: c.scope, emergency: c.emergency },
    });
  }
  return { created: inserted.length > 0 };
}

export async function getCycleRow(db: Db, cycleId: string): Promise<CycleRow | null> {
  const [r] = await db.select().from(patchCycles).where(eq(patchCycles.id, cycleId)).limit(1);
  return r ? toRow(r) : null;
}

export async function findCycleByChange(db: Db, changeNumber: string): Promise<CycleRow | null> {
  const [r] = await db.select().from(patchCycles).where(eq(patchCycles.changeNumber, changeNumber)).limit(1);
  return r ? toRow(r) : null;
}

export async function listCycleRows(
  db: Db,
  options: { limit?: number; activeOnly?: boolean } = {},
): Promise<CycleRow[]> {
  const rows = await db
    .select()
    .from(patchCycles)
    .where(options.activeOnly ? notInArray(patchCycles.stage, [...TERMINAL_STAGES]) : undefined)
    .orderBy(desc(patchCycles.createdAt))
    .limit(options.limit ?? 20);
  return rows.map(toRow);
}

/** Records a stage change: the cycle row (stage, summary, reason), a stage event, and an audit entry. */
export async function recordStageChange(
  db: Db,
  e: {
    cycleId: string;
    stage: CycleStage;
    actor: string;
    detail?: Record<string, unknown>;
    summary?: Record<string, unknown>;
    reason?: string;
    at?: Date;
  },
): Promise<void> {
  const at = e.at ?? new Date();
  const terminal = TERMINAL_STAGES.includes(e.stage);
  await db
    .update(patchCycles)
    .set({
      stage: e.stage,
      updatedAt: at,
      ...(e.summary ? { summary: e.summary } : {}),
      ...(e.reason !== undefined ? { reason: e.reason } : {}),
      ...(terminal ? { completedAt: at } : {}),
    })
    .where(eq(patchCycles.id, e.cycleId));
  await db.insert(cycleStageEvents).values({ cycleId: e.cycleId, stage: e.stage, detail: e.detail ?? {}, at });
  await appendAudit(db, {
    actor: e.actor,
    action: `cycle.stage.${e.stage.toLowerCase()}`,
    subjectType: 'cycle',
    subjectId: e.cycleId,
    details: e.detail ?? {},
    at,
  });
}

export async function stageEvents(
  db: Db,
  cycleId: string,
): Promise<Array<{ stage: string; detail: Record<string, unknown>; at: string }>> {
  const rows = await db
    .select()
    .from(cycleStageEvents)
    .where(eq(cycleStageEvents.cycleId, cycleId))
    .orderBy(cycleStageEvents.id);
  return rows.map((r) => ({ stage: r.stage, detail: r.detail, at: r.at.toISOString() }));
}

export async function setChangeNumber(db: Db, cycleId: string, changeNumber: string): Promise<void> {
  await db.update(patchCycles).set({ changeNumber, updatedAt: new Date() }).where(eq(patchCycles.id, cycleId));
}

/**
 * Records the cycle's compliance before it deploys: the percentage of `scope`'s counted endpoints with nothing
 * outstanding (the read model's complianceSummary), and the scope itself. The first measurement stays: an
 * assessment run again (a retried activity) does not move "before" to a later moment.
 */
export async function recordComplianceBefore(db: Db, cycleId: string, scope: CycleScope, now: Date): Promise<void> {
  const { compliancePct } = await complianceSummary(db, { scope, now });
  await db
    .update(patchCycles)
    .set({
      complianceBefore: sql`coalesce(${patchCycles.complianceBefore}, ${compliancePct}::real)`,
      complianceScope: sql`coalesce(${patchCycles.complianceScope}, ${JSON.stringify(scope)}::jsonb)`,
    })
    .where(eq(patchCycles.id, cycleId));
}

/**
 * The cycle's compliance before (as recorded) and now over the same scope, for its report; empty when "before"
 * was never recorded (a cycle that ended before assessing, or assessed before this was kept).
 */
export async function complianceBeforeAndNow(
  db: Db,
  cycleId: string,
  now: Date,
): Promise<{ complianceBefore?: number; complianceAfter?: number }> {
  const [row] = await db
    .select({ before: patchCycles.complianceBefore, scope: patchCycles.complianceScope })
    .from(patchCycles)
    .where(eq(patchCycles.id, cycleId));
  if (!row || row.before === null || !row.scope) return {};
  const { compliancePct } = await complianceSummary(db, { scope: row.scope as CycleScope, now });
  return { complianceBefore: row.before, complianceAfter: compliancePct };
}

/** Stores a vote (one per identity per cycle; a retried write is a no-op) and audits it. */
export async function recordVoteRow(
  db: Db,
  v: {
    cycleId: string;
    identity: string;
    person?: string;
    channel: string;
    decision: 'approve' | 'reject';
    reason?: string;
    at: Date;
    messageRef?: string;
  },
): Promise<{ created: boolean }> {
  const inserted = await db
    .insert(cycleApprovals)
    .values({
      cycleId: v.cycleId,
      identity: v.identity,
      channel: v.channel,
      decision: v.decision,
      reason: v.reason ?? null,
      at: v.at,
    })
    .onConflictDoNothing()
    .returning({ id: cycleApprovals.id });
  if (inserted.length > 0) {
    await appendAudit(db, {
      actor: v.identity,
      action: v.decision === 'approve' ? 'cycle.approved' : 'cycle.rejected',
      subjectType: 'cycle',
      subjectId: v.cycleId,
      details: {
        channel: v.channel,
        ...(v.person && v.person !== v.identity ? { person: v.person } : {}),
        ...(v.reason ? { reason: v.reason } : {}),
        ...(v.messageRef ? { messageRef: v.messageRef } : {}),
      },
      at: v.at,
    });
  }
  return { created: inserted.length > 0 };
}

// ---------------------------------------------------------------- scope

export interface ScopedEndpoint {
  id: string;
  hostname: string;
  groups: string[];
  criticality: number;
  exposure: string;
  osFamily: string;
  tags: string[];
}

/**
 * Active endpoints in a scope. Each given field narrows (groups: member of any; tags: carries any;
 * osFamilies: one of; endpointIds: one of); an empty scope is every active endpoint.
 */
export async function resolveScope(db: Db, scope: CycleScope): Promise<ScopedEndpoint[]> {
  const conds = [eq(endpoints.status, 'active')];
  if (scope.endpointIds?.length) conds.push(inArray(endpoints.id, scope.endpointIds));
  if (scope.osFamilies?.length) conds.push(inArray(endpoints.osFamily, scope.osFamilies));
  if (scope.tags?.length) conds.push(sql`${endpoints.tags} && ${sql.param(scope.tags)}::text[]`);
  if (scope.groups?.length) {
    conds.push(
      sql`exists (select 1 from ${groupMembers} gm join ${endpointGroups} g on g.id = gm.group_id
                  where gm.endpoint_id = ${endpoints.id} and g.name in ${scope.groups})`,
    );
  }
  const rows = await db
    .select({
      id: endpoints.id,
      hostname: endpoints.hostname,
      criticality: endpoints.criticality,
      exposure: endpoints.exposure,
      osFamily: endpoints.osFamily,
      tags: endpoints.tags,
    })
    .from(endpoints)
    .where(and(...conds))
    .orderBy(endpoints.id);
  const memberships = await db
    .select({ endpointId: groupMembers.endpointId, name: endpointGroups.name })
    .from(groupMembers)
    .innerJoin(endpointGroups, eq(endpointGroups.id, groupMembers.groupId));
  const byEndpoint = new Map<string, string[]>();
  for (const m of memberships) {
    const list = byEndpoint.get(m.endpointId) ?? [];
    list.push(m.name);
    byEndpoint.set(m.endpointId, list);
  }
  return rows.map((r) => ({ ...r, groups: (byEndpoint.get(r.id) ?? []).sort() }));
}

// ---------------------------------------------------------------- exceptions

export interface ExceptionDto {
  code: string;
  patchId: string | null;
  endpointId: string | null;
  groupName: string | null;
  reason: string;
  expiresAt: string;
  createdBy: string;
  createdAt: string;
}

function toException(r: typeof patchExceptions.$inferSelect): ExceptionDto {
  return {
    code: r.code,
    patchId: r.patchId,
    endpointId: r.endpointId,
    groupName: r.groupName,
    reason: r.reason,
    expiresAt: r.expiresAt.toISOString(),
    createdBy: r.createdBy,
    createdAt: r.createdAt.toISOString(),
  };
}

/** Adds an exception (a patch, an endpoint, a group, or a combination) until `expiresAt`. Returns it with its code EXC-<n>. */
export async function addException(
  db: Db,
  e: { patchId?: string; endpointId?: string; groupName?: string; reason: string; expiresAt: Date; by: string },
): Promise<ExceptionDto> {
  if (!e.patchId && !e.endpointId && !e.groupName) {
    throw new CodedError(ErrorCode.InvalidInput, 'an exception needs a patch, an endpoint or a group');
  }
  if (!e.reason.trim()) throw new CodedError(ErrorCode.InvalidInput, 'an exception needs a reason');
  if (Number.isNaN(e.expiresAt.getTime()))
    throw new CodedError(ErrorCode.InvalidInput, 'the expiry is not a date (use YYYY-MM-DD)');
  const row = await db.transaction(async (tx) => {
    const [{ id }] = (
      await tx.execute<{ id: number }>(sql`select nextval(pg_get_serial_sequence('patch_exceptions', 'id'))::int as id`)
    ).rows as [{ id: number }];
    const [r] = await tx
      .insert(patchExceptions)
      .values({
        id: Number(id),
        code: `EXC-${id}`,
        patchId: e.patchId ?? null,
        endpointId: e.endpointId ?? null,
        groupName: e.groupName ?? null,
        reason: e.reason,
        expiresAt: e.expiresAt,
        createdBy: e.by,
      })
      .returning();
    return r!;
  });
  await appendAudit(db, {
    actor: e.by,
    action: 'exception.added',
    subjectType: 'exception',
    subjectId: row.code,
    details: {
      patchId: row.patchId,
      endpointId: row.endpointId,
      groupName: row.groupName,
      reason: row.reason,
      expiresAt: row.expiresAt.toISOString(),
    },
  });
  return toException(row);
}

/** Exceptions not removed and not expired at `now` (all not removed when activeOnly is false). */
export async function listExceptions(
  db: Db,
  options: { now?: Date; activeOnly?: boolean } = {},
): Promise<ExceptionDto[]> {
  const now = options.now ?? new Date();
  const rows = await db
    .select()
    .from(patchExceptions)
    .where(
      options.activeOnly === false
        ? isNull(patchExceptions.removedAt)
        : and(isNull(patchExceptions.removedAt), gt(patchExceptions.expiresAt, now)),
    )
    .orderBy(patchExceptions.id);
  return rows.map(toException);
}

/** Removes an exception by code (EXC-12 or 12). Throws NOT_FOUND when there is no such active exception. */
export async function removeException(db: Db, code: string, by: string): Promise<void> {
  const normal = /^\d+$/.test(code) ? `EXC-${code}` : code.toUpperCase();
  const rows = await db
    .update(patchExceptions)
    .set({ removedAt: new Date(), removedBy: by })
    .where(and(eq(patchExceptions.code, normal), isNull(patchExceptions.removedAt)))
    .returning({ code: patchExceptions.code });
  if (rows.length === 0)
    throw new CodedError(ErrorCode.NotFound, `no active exception ${normal} (see \`exceptions list\`)`);
  await appendAudit(db, { actor: by, action: 'exception.removed', subjectType: 'exception', subjectId: normal });
}

/** Cycles started at or after `since`, newest first, at most `limit` (the compliance digest's list). */
export async function recentCycles(
  db: Db,
  options: { since: Date; limit: number },
): Promise<
  Array<{ cycleId: string; policyName: string; stage: string; changeNumber: string | null; createdAt: string }>
> {
  const rows = await db
    .select({
      cycleId: patchCycles.id,
      policyName: patchCycles.policyName,
      stage: patchCycles.stage,
      changeNumber: patchCycles.changeNumber,
      createdAt: patchCycles.createdAt,
    })
    .from(patchCycles)
    .where(gte(patchCycles.createdAt, options.since))
    .orderBy(desc(patchCycles.createdAt))
    .limit(options.limit);
  return rows.map((r) => ({ ...r, createdAt: r.createdAt.toISOString() }));
}
