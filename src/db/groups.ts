/**
 * Endpoint groups and maintenance windows, as an admin defines them: `endpoint_groups`, `group_members` and
 * `maintenance_windows`. Saving is by name (create or replace); every change is audited.
 */
import { asc, count, eq, inArray, or } from 'drizzle-orm';
import { CodedError, ErrorCode } from '../domain/errors';
import { validateWindow } from '../domain/windows';
import { appendAudit } from './audit';
import type { Db } from './client';
import { endpointGroups, endpoints, groupMembers, maintenanceWindows } from './schema/index';

export interface WindowDefinition {
  name: string;
  rrule: string;
  timezone: string;
  durationMinutes: number;
  blackoutDates: string[];
}

export interface StoredWindow extends WindowDefinition {
  id: number;
  /** The groups that patch in it. */
  groups: string[];
}

export interface GroupDefinition {
  name: string;
  description?: string;
  /** 1 (low) … 4 (critical): overrides the members' criticality when higher. */
  criticality?: number;
  exposure?: 'internal' | 'dmz' | 'internet';
  /** The test ring: a cycle deploys here first. */
  isTestGroup?: boolean;
  /** The maintenance window by name; null for none. */
  window?: string | null;
  /** Endpoint ids, host names or machine ids; when given, the group's members become exactly these. */
  members?: string[];
}

export interface StoredGroup {
  id: number;
  name: string;
  description: string;
  criticality: number;
  exposure: string;
  isTestGroup: boolean;
  window: string | null;
  members: number;
}

export async function listWindows(db: Db): Promise<StoredWindow[]> {
  const rows = await db.select().from(maintenanceWindows).orderBy(asc(maintenanceWindows.name));
  const groups = await db
    .select({ name: endpointGroups.name, windowId: endpointGroups.maintenanceWindowId })
    .from(endpointGroups)
    .orderBy(asc(endpointGroups.name));
  return rows.map((w) => ({
    id: w.id,
    name: w.name,
    rrule: w.rrule,
    timezone: w.timezone,
    durationMinutes: w.durationMinutes,
    blackoutDates: w.blackoutDates,
    groups: groups.filter((g) => g.windowId === w.id).map((g) => g.name),
  }));
}

/** Creates the window or replaces its definition (groups keep pointing at it). Refused with the problems in words. */
export async function saveWindow(db: Db, w: WindowDefinition, by: string): Promise<StoredWindow> {
  const problems = validateWindow(w);
  if (problems.length) throw new CodedError(ErrorCode.InvalidInput, `window "${w.name}": ${problems.join('; ')}`);
  const values = {
    rrule: w.rrule,
    timezone: w.timezone,
    durationMinutes: w.durationMinutes,
    blackoutDates: w.blackoutDates,
  };
  await db
    .insert(maintenanceWindows)
    .values({ name: w.name, ...values })
    .onConflictDoUpdate({ target: maintenanceWindows.name, set: values });
  await appendAudit(db, {
    actor: by,
    action: 'window.saved',
    subjectType: 'maintenance_window',
    subjectId: w.name,
    details: { ...values },
  });
  return (await listWindows(db)).find((x) => x.name === w.name)!;
}

/** Deletes the window; its groups are left with none (they patch whenever a cycle deploys). */
export async function deleteWindow(db: Db, name: string, by: string): Promise<void> {
  const gone = await db
    .delete(maintenanceWindows)
    .where(eq(maintenanceWindows.name, name))
    .returning({ id: maintenanceWindows.id });
  if (!gone.length) throw new CodedError(ErrorCode.NotFound, `no maintenance window "${name}"`);
  await appendAudit(db, { actor: by, action: 'window.deleted', subjectType: 'maintenance_window', subjectId: name });
}

export async function listGroups(db: Db): Promise<StoredGroup[]> {
  const rows = await db
    .select({ g: endpointGroups, window: maintenanceWindows.name })
    .from(endpointGroups)
    .leftJoin(maintenanceWindows, eq(maintenanceWindows.id, endpointGroups.maintenanceWindowId))
    .orderBy(asc(endpointGroups.name));
  const sizes = await db
    .select({ groupId: groupMembers.groupId, n: count() })
    .from(groupMembers)
    .groupBy(groupMembers.groupId);
  const size = new Map(sizes.map((s) => [s.groupId, Number(s.n)]));
  return rows.map(({ g, window }) => ({
    id: g.id,
    name: g.name,
    description: g.description,
    criticality: g.criticality,
    exposure: g.exposure,
    isTestGroup: g.isTestGroup,
    window: window ?? null,
    members: size.get(g.id) ?? 0,
  }));
}

/** The endpoint ids of the group's members. Errors: NotFound (no such group). */
export async function groupMemberIds(db: Db, name: string): Promise<string[]> {
  const [group] = await db.select({ id: endpointGroups.id }).from(endpointGroups).where(eq(endpointGroups.name, name));
  if (!group) throw new CodedError(ErrorCode.NotFound, `no group "${name}"`);
  const rows = await db
    .select({ id: groupMembers.endpointId })
    .from(groupMembers)
    .innerJoin(endpointGroups, eq(endpointGroups.id, groupMembers.groupId))
    .where(eq(endpointGroups.name, name))
    .orderBy(asc(groupMembers.endpointId));
  return rows.map((r) => r.id);
}

/** Endpoint ids for what an admin typed: an endpoint id, a host name or a machine id. Unknown or ambiguous names are refused. */
async function resolveEndpoints(db: Db, refs: string[]): Promise<string[]> {
  const wanted = [...new Set(refs)];
  if (!wanted.length) return [];
  const rows = await db
    .select({ id: endpoints.id, hostname: endpoints.hostname, machineId: endpoints.machineId })
    .from(endpoints)
    .where(
      or(inArray(endpoints.id, wanted), inArray(endpoints.hostname, wanted), inArray(endpoints.machineId, wanted)),
    );
  const ids: string[] = [];
  const unknown: string[] = [];
  const ambiguous: string[] = [];
  for (const ref of wanted) {
    const byId = rows.find((r) => r.id === ref || r.machineId === ref);
    const byHost = rows.filter((r) => r.hostname === ref);
    if (byId) ids.push(byId.id);
    else if (byHost.length === 1) ids.push(byHost[0]!.id);
    else if (byHost.length > 1) ambiguous.push(`${ref} (${byHost.length} endpoints)`);
    else unknown.push(ref);
  }
  const problems = [
    ...(unknown.length ? [`no endpoint is called ${unknown.join(', ')}`] : []),
    ...(ambiguous.length
      ? [`host names shared by several endpoints (give their endpoint ids): ${ambiguous.join(', ')}`]
      : []),
  ];
  if (problems.length) throw new CodedError(ErrorCode.InvalidInput, problems.join('; '));
  return [...new Set(ids)];
}

/** Creates the group or replaces what is given of its definition; `members`, when given, become its exact membership. */
export async function saveGroup(db: Db, g: GroupDefinition, by: string): Promise<StoredGroup> {
  if (g.criticality !== undefined && (!Number.isInteger(g.criticality) || g.criticality < 1 || g.criticality > 4)) {
    throw new CodedError(ErrorCode.InvalidInput, `criticality must be 1 (low) to 4 (critical), not ${g.criticality}`);
  }
  let windowId: number | null | undefined;
  if (g.window === null) windowId = null;
  else if (g.window !== undefined) {
    const [w] = await db
      .select({ id: maintenanceWindows.id })
      .from(maintenanceWindows)
      .where(eq(maintenanceWindows.name, g.window));
    if (!w)
      throw new CodedError(
        ErrorCode.InvalidInput,
        `no maintenance window "${g.window}": create it first (PUT /api/v1/windows/${g.window})`,
      );
    windowId = w.id;
  }
  const memberIds = g.members === undefined ? undefined : await resolveEndpoints(db, g.members);
  const values = {
    ...(g.description !== undefined ? { description: g.description } : {}),
    ...(g.criticality !== undefined ? { criticality: g.criticality } : {}),
    ...(g.exposure !== undefined ? { exposure: g.exposure } : {}),
    ...(g.isTestGroup !== undefined ? { isTestGroup: g.isTestGroup } : {}),
    ...(windowId !== undefined ? { maintenanceWindowId: windowId } : {}),
  };
  await db.transaction(async (tx) => {
    const [row] = await tx
      .insert(endpointGroups)
      .values({ name: g.name, ...values })
      .onConflictDoUpdate({ target: endpointGroups.name, set: Object.keys(values).length ? values : { name: g.name } })
      .returning({ id: endpointGroups.id });
    if (memberIds) {
      await tx.delete(groupMembers).where(eq(groupMembers.groupId, row!.id));
      if (memberIds.length)
        await tx.insert(groupMembers).values(memberIds.map((endpointId) => ({ groupId: row!.id, endpointId })));
    }
  });
  await appendAudit(db, {
    actor: by,
    action: 'group.saved',
    subjectType: 'endpoint_group',
    subjectId: g.name,
    details: { ...values, ...(memberIds ? { members: memberIds } : {}) },
  });
  return (await listGroups(db)).find((x) => x.name === g.name)!;
}

export async function deleteGroup(db: Db, name: string, by: string): Promise<void> {
  const gone = await db
    .delete(endpointGroups)
    .where(eq(endpointGroups.name, name))
    .returning({ id: endpointGroups.id });
  if (!gone.length) throw new CodedError(ErrorCode.NotFound, `no group "${name}"`);
  await appendAudit(db, { actor: by, action: 'group.deleted', subjectType: 'endpoint_group', subjectId: name });
}
