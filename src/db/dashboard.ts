/**
 * The dashboard's and the reports' read queries. Each returns small plain objects, never ORM rows.
 * Compliance, outstanding patches, SLA state and wave counts come from the one read model
 * (src/db/read-model/); this module re-exports them under the names the pages use.
 */
import { and, asc, desc, eq, gte, ilike, lte, or, sql, type SQL } from 'drizzle-orm';
import type { Db } from './client';
import {
  agentJobs,
  auditLog,
  complianceSnapshots,
  cycleApprovals,
  cycleStageEvents,
  endpointGroups,
  endpointPatches,
  endpoints,
  groupMembers,
  patchCycles,
  patches,
} from './schema/index';
import type { SlaPolicy } from '../domain/risk';
import { complianceSummary, outstandingPerPatchSql, type ComplianceSummary } from './read-model/compliance';
import { cycleWaveCounts } from './read-model/waves';

export { SEVERITIES, slaBreaches, type ComplianceRow, type SlaBreach } from './read-model/compliance';

/** The fleet's compliance picture (the read model's complianceSummary). */
export type Overview = ComplianceSummary;

export async function overview(db: Db, options: { now?: Date; sla?: SlaPolicy } = {}): Promise<Overview> {
  return complianceSummary(db, options);
}

export interface TrendPoint {
  at: string;
  compliancePct: number;
  overdue: number;
  knownExploited: number;
}

export async function complianceTrend(db: Db, options: { since?: Date; limit?: number } = {}): Promise<TrendPoint[]> {
  const rows = await db
    .select()
    .from(complianceSnapshots)
    .where(options.since ? gte(complianceSnapshots.takenAt, options.since) : undefined)
    .orderBy(desc(complianceSnapshots.takenAt))
    .limit(options.limit ?? 60);
  return rows.reverse().map((r) => ({
    at: r.takenAt.toISOString(),
    compliancePct: r.compliancePct,
    overdue: r.overdue,
    knownExploited: r.knownExploited,
  }));
}

/** Records the overview as a snapshot for the trend, unless one was taken within `minIntervalMs`. */
export async function takeComplianceSnapshot(
  db: Db,
  options: { now?: Date; minIntervalMs?: number; overview?: Overview } = {},
): Promise<boolean> {
  const now = options.now ?? new Date();
  const [last] = await db
    .select({ at: complianceSnapshots.takenAt })
    .from(complianceSnapshots)
    .orderBy(desc(complianceSnapshots.takenAt))
    .limit(1);
  if (last && now.getTime() - last.at.getTime() < (options.minIntervalMs ?? 3_600_000)) return false;
  const o = options.overview ?? (await overview(db, { now }));
  await db.insert(complianceSnapshots).values({
    takenAt: now,
    endpoints: o.endpoints,
    compliantEndpoints: o.compliant,
    compliancePct: o.compliancePct,
    bySeverity: o.bySeverity,
    knownExploited: o.knownExploited,
    overdue: o.overdue,
  });
  return true;
}

// ---------------------------------------------------------------- endpoints

export interface EndpointListItem {
  id: string;
  hostname: string;
  osFamily: string;
  osName: string;
  status: string;
  pendingReboot: boolean;
  lastSeenAt: string | null;
  outstanding: number;
  failed: number;
}

export interface EndpointFilter {
  q?: string;
  os?: string;
  group?: string;
  /** compliant | noncompliant */
  compliance?: string;
  limit?: number;
  offset?: number;
}

export async function listEndpoints(
  db: Db,
  f: EndpointFilter = {},
): Promise<{ items: EndpointListItem[]; total: number }> {
  // Driven from endpoint_compliance (a trigger-kept row per endpoint) in its (outstanding desc, id) index
  // order, so the first page of "most missing first" reads 50 rows, not the fleet.
  const where: SQL[] = [];
  if (f.q) where.push(sql`(e.hostname ilike ${`%${f.q}%`} or e.id ilike ${`%${f.q}%`})`);
  if (f.os) where.push(sql`e.os_family = ${f.os}`);
  if (f.group)
    where.push(
      sql`exists (select 1 from group_members m join endpoint_groups g on g.id = m.group_id where m.endpoint_id = e.id and g.name = ${f.group})`,
    );
  const needsEndpoint = where.length > 0;
  if (f.compliance === 'compliant') where.push(sql`c.outstanding = 0`);
  if (f.compliance === 'noncompliant') where.push(sql`c.outstanding > 0`);
  const cond = where.length ? sql`where ${sql.join(where, sql` and `)}` : sql``;
  // Unfiltered (or by compliance only): the page is the first rows of the index, read in its order (NULLS LAST as
  // the index is; outstanding is never null). Filtered by endpoint (a search, an OS, a group): the same order
  // spelled so that no index provides it, so the planner finds the matching endpoints first (the trigram indexes
  // of migration 0021) and sorts those, rather than walking the whole index hoping to meet 50 matches soon.
  const order = needsEndpoint
    ? sql`c.outstanding desc, c.endpoint_id`
    : sql`c.outstanding desc nulls last, c.endpoint_id`;
  const [items, count] = await Promise.all([
    db.execute<{
      id: string;
      hostname: string;
      os_family: string;
      os_name: string;
      status: string;
      pending_reboot: boolean;
      last_seen_at: Date | string | null;
      outstanding: number;
      failed: number;
    }>(sql`
      select e.id, e.hostname, e.os_family, e.os_name, e.status, e.pending_reboot, e.last_seen_at, c.outstanding, c.failed
      from endpoint_compliance c join endpoints e on e.id = c.endpoint_id ${cond}
      order by ${order} limit ${f.limit ?? 50} offset ${f.offset ?? 0}`),
    needsEndpoint
      ? db.execute<{ n: number }>(
          sql`select count(*)::int as n from endpoint_compliance c join endpoints e on e.id = c.endpoint_id ${cond}`,
        )
      : db.execute<{ n: number }>(sql`select count(*)::int as n from endpoint_compliance c ${cond}`),
  ]);
  return {
    total: count.rows[0]?.n ?? 0,
    items: items.rows.map((r) => ({
      id: r.id,
      hostname: r.hostname,
      osFamily: r.os_family,
      osName: r.os_name,
      status: r.status,
      pendingReboot: r.pending_reboot,
      lastSeenAt: r.last_seen_at ? new Date(r.last_seen_at).toISOString() : null,
      outstanding: r.outstanding,
      failed: r.failed,
    })),
  };
}

export interface EndpointPatchRow {
  patchId: string;
  title: string;
  severity: string;
  type: string;
  knownExploited: boolean;
  state: string;
  detectedAt: string;
  installedAt: string | null;
  lastError: string | null;
}

export interface EndpointDetail {
  id: string;
  hostname: string;
  osFamily: string;
  osName: string;
  osVersion: string;
  status: string;
  criticality: number;
  pendingReboot: boolean;
  lastSeenAt: string | null;
  lastScanAt: string | null;
  agentVersion: string | null;
  groups: string[];
  patches: EndpointPatchRow[];
}

/** Returns null when the endpoint is unknown. */
export async function endpointDetail(db: Db, id: string): Promise<EndpointDetail | null> {
  const [e] = await db.select().from(endpoints).where(eq(endpoints.id, id)).limit(1);
  if (!e) return null;
  const [groups, rows] = await Promise.all([
    db
      .select({ name: endpointGroups.name })
      .from(groupMembers)
      .innerJoin(endpointGroups, eq(endpointGroups.id, groupMembers.groupId))
      .where(eq(groupMembers.endpointId, id))
      .orderBy(endpointGroups.name),
    db
      .select({
        patchId: endpointPatches.patchId,
        title: patches.title,
        severity: patches.severity,
        type: patches.type,
        knownExploited: patches.knownExploited,
        state: endpointPatches.state,
        detectedAt: endpointPatches.detectedAt,
        installedAt: endpointPatches.installedAt,
        lastError: endpointPatches.lastError,
      })
      .from(endpointPatches)
      .innerJoin(patches, eq(patches.id, endpointPatches.patchId))
      .where(eq(endpointPatches.endpointId, id))
      .orderBy(endpointPatches.state, endpointPatches.patchId),
  ]);
  return {
    id: e.id,
    hostname: e.hostname,
    osFamily: e.osFamily,
    osName: e.osName,
    osVersion: e.osVersion,
    status: e.status,
    criticality: e.criticality,
    pendingReboot: e.pendingReboot,
    lastSeenAt: e.lastSeenAt?.toISOString() ?? null,
    lastScanAt: e.lastScanAt?.toISOString() ?? null,
    agentVersion: e.agentVersion,
    groups: groups.map((g) => g.name),
    patches: rows.map((r) => ({
      ...r,
      detectedAt: r.detectedAt.toISOString(),
      installedAt: r.installedAt?.toISOString() ?? null,
    })),
  };
}

export async function facets(db: Db): Promise<{ osFamilies: string[]; groups: string[] }> {
  const [os, groups] = await Promise.all([
    db.selectDistinct({ v: endpoints.osFamily }).from(endpoints).orderBy(endpoints.osFamily),
    db.select({ v: endpointGroups.name }).from(endpointGroups).orderBy(endpointGroups.name),
  ]);
  return { osFamilies: os.map((r) => r.v), groups: groups.map((r) => r.v) };
}

// ---------------------------------------------------------------- patches

export interface PatchListItem {
  id: string;
  title: string;
  vendor: string;
  type: string;
  severity: string;
  cvss: number | null;
  cves: string[];
  knownExploited: boolean;
  osFamily: string;
  supersededBy: string | null;
  missing: number;
  failed: number;
}

export async function listPatches(
  db: Db,
  f: { q?: string; severity?: string; limit?: number } = {},
): Promise<PatchListItem[]> {
  const where: SQL[] = [];
  if (f.q)
    where.push(sql`(p.id ilike ${`%${f.q}%`} or p.title ilike ${`%${f.q}%`} or ${f.q.toUpperCase()} = any(p.cves))`);
  if (f.severity) where.push(sql`p.severity = ${f.severity}`);
  const cond = where.length ? sql`where ${sql.join(where, sql` and `)}` : sql``;
  const rows = await db.execute<{
    id: string;
    title: string;
    vendor: string;
    type: string;
    severity: string;
    cvss: number | null;
    cves: string[];
    known_exploited: boolean;
    os_family: string;
    superseded_by: string | null;
    missing: number;
    failed: number;
  }>(sql`
    select p.id, p.title, p.vendor, p.type, p.severity, p.cvss, p.cves, p.known_exploited, p.os_family, p.superseded_by,
           coalesce(o.missing, 0)::int as missing, coalesce(o.failed, 0)::int as failed
    from patches p left join ${outstandingPerPatchSql()} o on o.patch_id = p.id ${cond}
    order by p.known_exploited desc, array_position(array['critical','important','moderate','low','unspecified'], p.severity), missing desc, p.id
    limit ${f.limit ?? 200}`);
  return rows.rows.map((r) => ({
    id: r.id,
    title: r.title,
    vendor: r.vendor,
    type: r.type,
    severity: r.severity,
    cvss: r.cvss,
    cves: r.cves,
    knownExploited: r.known_exploited,
    osFamily: r.os_family,
    supersededBy: r.superseded_by,
    missing: r.missing,
    failed: r.failed,
  }));
}

// ---------------------------------------------------------------- cycles

export interface CycleOverview {
  cycleId: string;
  workflowId: string;
  policyName: string;
  stage: string;
  emergency: boolean;
  requestedBy: string;
  changeNumber: string | null;
  reason: string | null;
  createdAt: string;
  updatedAt: string;
  completedAt: string | null;
  summary: Record<string, unknown> | null;
}

const toCycle = (r: typeof patchCycles.$inferSelect): CycleOverview => ({
  cycleId: r.id,
  workflowId: r.workflowId,
  policyName: r.policyName,
  stage: r.stage,
  emergency: r.emergency,
  requestedBy: r.requestedBy,
  changeNumber: r.changeNumber,
  reason: r.reason,
  createdAt: r.createdAt.toISOString(),
  updatedAt: r.updatedAt.toISOString(),
  completedAt: r.completedAt?.toISOString() ?? null,
  summary: r.summary,
});

export async function listCycles(db: Db, options: { limit?: number } = {}): Promise<CycleOverview[]> {
  const rows = await db
    .select()
    .from(patchCycles)
    .orderBy(desc(patchCycles.createdAt))
    .limit(options.limit ?? 100);
  return rows.map(toCycle);
}

export interface CycleDetail extends CycleOverview {
  timeline: Array<{ stage: string; at: string; detail: Record<string, unknown> }>;
  approvals: Array<{ identity: string; decision: string; channel: string; reason: string | null; at: string }>;
  waves: Array<{
    wave: number;
    total: number;
    succeeded: number;
    failed: number;
    unreachable: number;
    pending: number;
  }>;
  failures: Array<{
    jobId: string;
    endpointId: string;
    hostname: string;
    wave: number | null;
    state: string;
    error: string | null;
    finishedAt: string | null;
  }>;
}

/** Returns null when the cycle is unknown. */
export async function cycleDetail(db: Db, cycleId: string): Promise<CycleDetail | null> {
  const [c] = await db.select().from(patchCycles).where(eq(patchCycles.id, cycleId)).limit(1);
  if (!c) return null;
  const [timeline, approvals, waves, failures] = await Promise.all([
    db
      .select()
      .from(cycleStageEvents)
      .where(eq(cycleStageEvents.cycleId, cycleId))
      .orderBy(asc(cycleStageEvents.at), asc(cycleStageEvents.id)),
    db.select().from(cycleApprovals).where(eq(cycleApprovals.cycleId, cycleId)).orderBy(asc(cycleApprovals.at)),
    cycleWaveCounts(db, cycleId),
    db
      .select({
        jobId: agentJobs.id,
        endpointId: agentJobs.endpointId,
        hostname: endpoints.hostname,
        wave: agentJobs.wave,
        state: agentJobs.state,
        error: agentJobs.error,
        finishedAt: agentJobs.finishedAt,
      })
      .from(agentJobs)
      .innerJoin(endpoints, eq(endpoints.id, agentJobs.endpointId))
      .where(and(eq(agentJobs.cycleId, cycleId), or(eq(agentJobs.state, 'failed'), eq(agentJobs.state, 'unreachable'))))
      .orderBy(asc(agentJobs.finishedAt))
      .limit(200),
  ]);
  return {
    ...toCycle(c),
    timeline: timeline.map((t) => ({ stage: t.stage, at: t.at.toISOString(), detail: t.detail })),
    approvals: approvals.map((a) => ({
      identity: a.identity,
      decision: a.decision,
      channel: a.channel,
      reason: a.reason,
      at: a.at.toISOString(),
    })),
    waves,
    failures: failures.map((f) => ({ ...f, finishedAt: f.finishedAt?.toISOString() ?? null })),
  };
}

// ---------------------------------------------------------------- audit

export interface AuditFilter {
  actor?: string;
  action?: string;
  subjectType?: string;
  subjectId?: string;
  from?: Date;
  to?: Date;
}

export interface AuditRow {
  id: number;
  at: string;
  actor: string;
  action: string;
  subjectType: string;
  subjectId: string;
  details: Record<string, unknown>;
  prevHash: string;
  hash: string;
}

const toAuditRow = (r: typeof auditLog.$inferSelect): AuditRow => ({
  id: r.id,
  at: r.at.toISOString(),
  actor: r.actor,
  action: r.action,
  subjectType: r.subjectType,
  subjectId: r.subjectId,
  details: r.details,
  prevHash: r.prevHash,
  hash: r.hash,
});

function auditWhere(f: AuditFilter): SQL | undefined {
  const c: SQL[] = [];
  if (f.actor) c.push(ilike(auditLog.actor, `%${f.actor}%`));
  if (f.action) c.push(ilike(auditLog.action, `${f.action}%`));
  if (f.subjectType) c.push(eq(auditLog.subjectType, f.subjectType));
  if (f.subjectId) c.push(eq(auditLog.subjectId, f.subjectId));
  if (f.from) c.push(gte(auditLog.at, f.from));
  if (f.to) c.push(lte(auditLog.at, f.to));
  return c.length ? and(...c) : undefined;
}

/** Newest first, `limit` rows before `beforeId` (keyset paging). */
export async function listAudit(
  db: Db,
  f: AuditFilter & { limit?: number; beforeId?: number } = {},
): Promise<AuditRow[]> {
  const rows = await db
    .select()
    .from(auditLog)
    .where(and(auditWhere(f), f.beforeId ? sql`${auditLog.id} < ${f.beforeId}` : undefined))
    .orderBy(desc(auditLog.id))
    .limit(f.limit ?? 100);
  return rows.map(toAuditRow);
}

/** Every matching row in id order, in batches (for CSV export without holding the log in memory). */
export async function* iterateAudit(db: Db, f: AuditFilter = {}, batchSize = 2000): AsyncGenerator<AuditRow[]> {
  let lastId = 0;
  for (;;) {
    const rows = await db
      .select()
      .from(auditLog)
      .where(and(auditWhere(f), sql`${auditLog.id} > ${lastId}`))
      .orderBy(asc(auditLog.id))
      .limit(batchSize);
    if (rows.length === 0) return;
    lastId = rows[rows.length - 1]!.id;
    yield rows.map(toAuditRow);
  }
}

// ---------------------------------------------------------------- report data

export interface CycleResult {
  cycleId: string;
  policyName: string;
  stage: string;
  emergency: boolean;
  requestedBy: string;
  changeNumber: string | null;
  createdAt: string;
  completedAt: string | null;
  jobs: number;
  succeeded: number;
  failed: number;
  unreachable: number;
}

export async function cycleResults(db: Db, options: { limit?: number; since?: Date } = {}): Promise<CycleResult[]> {
  const rows = await db.execute<{
    id: string;
    policy_name: string;
    stage: string;
    emergency: boolean;
    requested_by: string;
    change_number: string | null;
    created_at: Date | string;
    completed_at: Date | string | null;
    jobs: number;
    succeeded: number;
    failed: number;
    unreachable: number;
  }>(sql`
    select c.id, c.policy_name, c.stage, c.emergency, c.requested_by, c.change_number, c.created_at, c.completed_at,
      coalesce(j.jobs, 0)::int as jobs, coalesce(j.succeeded, 0)::int as succeeded, coalesce(j.failed, 0)::int as failed, coalesce(j.unreachable, 0)::int as unreachable
    from patch_cycles c left join lateral (
      select count(*) as jobs, count(*) filter (where state = 'succeeded') as succeeded,
             count(*) filter (where state = 'failed') as failed, count(*) filter (where state = 'unreachable') as unreachable
      from agent_jobs where cycle_id = c.id and kind = 'install') j on true
    ${options.since ? sql`where c.created_at >= ${options.since}` : sql``}
    order by c.created_at desc limit ${options.limit ?? 500}`);
  return rows.rows.map((r) => ({
    cycleId: r.id,
    policyName: r.policy_name,
    stage: r.stage,
    emergency: r.emergency,
    requestedBy: r.requested_by,
    changeNumber: r.change_number,
    createdAt: new Date(r.created_at).toISOString(),
    completedAt: r.completed_at ? new Date(r.completed_at).toISOString() : null,
    jobs: r.jobs,
    succeeded: r.succeeded,
    failed: r.failed,
    unreachable: r.unreachable,
  }));
}
