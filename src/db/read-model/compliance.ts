/**
 * The one read model for compliance, outstanding patches and SLA state (README "Compliance",
 * src/domain/compliance.ts). The dashboard, the reports, the Slack App Home, the e-mail digest and the
 * `report` verb all read these functions; none counts on its own.
 *
 * The fleet figures come from the maintained aggregates (compliance_rollup, patch_outstanding_daily;
 * migrations 0007–0009), so they cost milliseconds at 100,000 endpoints. patch_outstanding_daily has no
 * endpoint dimension, so the outstanding pairs of retired endpoints (few, reached by the primary key) are
 * subtracted. A scoped summary (groups, tags, OS, endpoints) reads endpoint_compliance and the scope's
 * own patch rows.
 */
import { sql, type SQL } from 'drizzle-orm';
import type { Db } from '../client';
import {
  compliancePercent,
  RETIRED_STATUS,
  daysOverdue,
  daysOverdueFromDay,
  OUTSTANDING_STATES,
  slaDueDay,
} from '../../domain/compliance';
import type { CycleScope } from '../../domain/cycle';
import { SEVERITIES as DOMAIN_SEVERITIES } from '../../domain/patch';
import { DEFAULT_SLA, slaDays, type SlaPolicy } from '../../domain/risk';

export const SEVERITIES = DOMAIN_SEVERITIES;

const DAY_MS = 86_400_000;
const list = (xs: readonly string[]) =>
  sql.join(
    xs.map((x) => sql`${x}`),
    sql`, `,
  );

/** `<state column> in (missing, failed)`, from the domain's one list. */
export function outstandingSql(state: SQL): SQL {
  return sql`${state} in (${list(OUTSTANDING_STATES)})`;
}

/** `<status column>` counts in compliance (not retired), as the domain says. */
export function countedEndpointSql(status: SQL): SQL {
  return sql`${status} <> ${RETIRED_STATUS}`;
}

const retiredSql = (status: SQL): SQL => sql`${status} = ${RETIRED_STATUS}`;

/** The SLA days of a patch row as SQL, derived from the domain's slaDays() for every severity × known-exploited. */
export function slaDaysSql(sla: SlaPolicy, severity: SQL, knownExploited: SQL): SQL {
  const arms = SEVERITIES.flatMap((s) => [
    sql`when ${severity} = ${s} and ${knownExploited} then ${slaDays({ severity: s, knownExploited: true }, sla)}::int`,
    sql`when ${severity} = ${s} then ${slaDays({ severity: s, knownExploited: false }, sla)}::int`,
  ]);
  const other = sql`when ${knownExploited} then ${slaDays({ severity: 'unspecified', knownExploited: true }, sla)}::int
    else ${slaDays({ severity: 'unspecified', knownExploited: false }, sla)}::int`;
  return sql`(case ${sql.join(arms, sql` `)} ${other} end)`;
}

/** Narrows endpoints `e` to a scope (the same narrowing as a cycle's scope; retired endpoints never count). */
export function scopeSql(scope: CycleScope = {}): SQL {
  const c: SQL[] = [countedEndpointSql(sql`e.status`)];
  if (scope.endpointIds?.length) c.push(sql`e.id in (${list(scope.endpointIds)})`);
  if (scope.osFamilies?.length) c.push(sql`e.os_family in (${list(scope.osFamilies)})`);
  if (scope.tags?.length) c.push(sql`e.tags && ${sql.param(scope.tags)}::text[]`);
  if (scope.groups?.length) {
    c.push(sql`exists (select 1 from group_members gm join endpoint_groups g on g.id = gm.group_id
                       where gm.endpoint_id = e.id and g.name in (${list(scope.groups)}))`);
  }
  return sql.join(c, sql` and `);
}

export const isScoped = (scope: CycleScope | undefined): boolean =>
  Boolean(
    scope && (scope.groups?.length || scope.tags?.length || scope.osFamilies?.length || scope.endpointIds?.length),
  );

// ---------------------------------------------------------------- summary

export interface ComplianceRow {
  key: string;
  endpoints: number;
  compliant: number;
  pct: number;
}

export interface ComplianceSummary {
  /** Counted endpoints (not retired) and those with nothing outstanding. */
  endpoints: number;
  compliant: number;
  compliancePct: number;
  byOs: ComplianceRow[];
  byGroup: ComplianceRow[];
  /** Outstanding endpoint×patch pairs by severity. */
  bySeverity: Record<string, number>;
  knownExploited: number;
  overdue: number;
  overdueBySeverity: Record<string, number>;
  failed: number;
}

type OutstandingBucket = {
  severity: string;
  kev: boolean;
  state: string;
  day: string;
  n: number;
};

function fold(rows: OutstandingBucket[], now: Date, sla: SlaPolicy) {
  const bySeverity: Record<string, number> = Object.fromEntries(SEVERITIES.map((s) => [s, 0]));
  const overdueBySeverity: Record<string, number> = Object.fromEntries(SEVERITIES.map((s) => [s, 0]));
  let knownExploited = 0;
  let overdue = 0;
  let failed = 0;
  for (const r of rows) {
    const n = Number(r.n);
    bySeverity[r.severity] = (bySeverity[r.severity] ?? 0) + n;
    if (r.kev) knownExploited += n;
    if (r.state === 'failed') failed += n;
    if (daysOverdueFromDay({ severity: r.severity, knownExploited: r.kev }, r.day, now, sla) > 0) {
      overdue += n;
      overdueBySeverity[r.severity] = (overdueBySeverity[r.severity] ?? 0) + n;
    }
  }
  return { bySeverity, knownExploited, overdue, overdueBySeverity, failed };
}

type KeyCount = { key: string; endpoints: number; compliant: number };

const withPct = (rows: KeyCount[]): ComplianceRow[] =>
  rows.map((r) => ({
    key: r.key,
    endpoints: Number(r.endpoints),
    compliant: Number(r.compliant),
    pct: compliancePercent(Number(r.compliant), Number(r.endpoints)),
  }));

/** One summary from its three reads (by OS, by group, outstanding buckets): the fleet's and a scope's alike. */
function summaryOf(
  osRows: KeyCount[],
  groupRows: KeyCount[],
  buckets: OutstandingBucket[],
  now: Date,
  sla: SlaPolicy,
): ComplianceSummary {
  const byOs = withPct(osRows);
  const endpoints = byOs.reduce((s, r) => s + r.endpoints, 0);
  const compliant = byOs.reduce((s, r) => s + r.compliant, 0);
  return {
    endpoints,
    compliant,
    compliancePct: compliancePercent(compliant, endpoints),
    byOs,
    byGroup: withPct(groupRows),
    ...fold(buckets, now, sla),
  };
}

/** Compliance, outstanding pairs and SLA state for the fleet, or for a scope. */
export async function complianceSummary(
  db: Db,
  options: { now?: Date; sla?: SlaPolicy; scope?: CycleScope } = {},
): Promise<ComplianceSummary> {
  const now = options.now ?? new Date();
  const sla = options.sla ?? DEFAULT_SLA;
  return isScoped(options.scope) ? scopedSummary(db, options.scope!, now, sla) : fleetSummary(db, now, sla);
}

async function fleetSummary(db: Db, now: Date, sla: SlaPolicy): Promise<ComplianceSummary> {
  const [osRows, groupRows, dayRows, retiredRows] = await Promise.all([
    db.execute<KeyCount>(sql`
      select key, endpoints, compliant from compliance_rollup where dimension = 'os' and endpoints > 0 order by key`),
    db.execute<KeyCount>(sql`
      select key, endpoints, compliant from compliance_rollup where dimension = 'group' and endpoints > 0 order by key`),
    db.execute<OutstandingBucket>(sql`
      select p.severity, p.known_exploited as kev, d.state, d.day::text as day, sum(d.n)::int as n
      from patch_outstanding_daily d join patches p on p.id = d.patch_id
      where d.n > 0 group by 1, 2, 3, 4`),
    db.execute<OutstandingBucket>(sql`
      select p.severity, p.known_exploited as kev, ep.state, (ep.detected_at at time zone 'UTC')::date::text as day, -count(*)::int as n
      from endpoints e join endpoint_patches ep on ep.endpoint_id = e.id join patches p on p.id = ep.patch_id
      where ${retiredSql(sql`e.status`)} and ${outstandingSql(sql`ep.state`)} group by 1, 2, 3, 4`),
  ]);
  return summaryOf(osRows.rows, groupRows.rows, [...dayRows.rows, ...retiredRows.rows], now, sla);
}

async function scopedSummary(db: Db, scope: CycleScope, now: Date, sla: SlaPolicy): Promise<ComplianceSummary> {
  const inScope = scopeSql(scope);
  const [osRows, groupRows, dayRows] = await Promise.all([
    db.execute<KeyCount>(sql`
      select e.os_family as key, count(*)::int as endpoints, count(*) filter (where coalesce(c.outstanding, 0) = 0)::int as compliant
      from endpoints e left join endpoint_compliance c on c.endpoint_id = e.id where ${inScope} group by 1 order by 1`),
    db.execute<KeyCount>(sql`
      select g.name as key, count(*)::int as endpoints, count(*) filter (where coalesce(c.outstanding, 0) = 0)::int as compliant
      from endpoints e join group_members m on m.endpoint_id = e.id join endpoint_groups g on g.id = m.group_id
      left join endpoint_compliance c on c.endpoint_id = e.id where ${inScope} group by 1 order by 1`),
    db.execute<OutstandingBucket>(sql`
      select p.severity, p.known_exploited as kev, ep.state, (ep.detected_at at time zone 'UTC')::date::text as day, count(*)::int as n
      from endpoints e join endpoint_patches ep on ep.endpoint_id = e.id join patches p on p.id = ep.patch_id
      where ${inScope} and ${outstandingSql(sql`ep.state`)} group by 1, 2, 3, 4`),
  ]);
  return summaryOf(osRows.rows, groupRows.rows, dayRows.rows, now, sla);
}

// ---------------------------------------------------------------- most outstanding patches

export interface OutstandingPatch {
  patchId: string;
  title: string;
  severity: string;
  knownExploited: boolean;
  /** Counted endpoints on which it is outstanding. */
  endpoints: number;
}

/**
 * A subquery `(patch_id, missing, failed)`: per patch, the counted endpoints on which it is missing or failed
 * (the maintained per-day counts, less retired endpoints' rows). Patches outstanding nowhere have no row.
 */
export function outstandingPerPatchSql(): SQL {
  return sql`(
    select patch_id, sum(n) filter (where state = 'missing')::int as missing, sum(n) filter (where state = 'failed')::int as failed from (
      select patch_id, state, n from patch_outstanding_daily where n > 0
      union all
      select ep.patch_id, ep.state, -1 from endpoints e join endpoint_patches ep on ep.endpoint_id = e.id
      where ${retiredSql(sql`e.status`)} and ${outstandingSql(sql`ep.state`)}) u
    group by patch_id having sum(n) > 0)`;
}

/** Patches outstanding on the most endpoints, known-exploited first. */
export async function topOutstanding(db: Db, options: { limit?: number } = {}): Promise<OutstandingPatch[]> {
  const rows = await db.execute<{
    patch_id: string;
    title: string;
    severity: string;
    known_exploited: boolean;
    n: number;
  }>(sql`
    select p.id as patch_id, p.title, p.severity, p.known_exploited, (coalesce(o.missing, 0) + coalesce(o.failed, 0))::int as n
    from ${outstandingPerPatchSql()} o join patches p on p.id = o.patch_id
    order by p.known_exploited desc, n desc, p.id
    limit ${options.limit ?? 10}`);
  return rows.rows.map((r) => ({
    patchId: r.patch_id,
    title: r.title,
    severity: r.severity,
    knownExploited: Boolean(r.known_exploited),
    endpoints: Number(r.n),
  }));
}

// ---------------------------------------------------------------- SLA breaches

export interface SlaBreach {
  endpointId: string;
  hostname: string;
  patchId: string;
  severity: string;
  knownExploited: boolean;
  state: string;
  detectedAt: string;
  /** Start (UTC) of the day it was due; overdue from the next day on. */
  dueAt: string;
  daysOverdue: number;
}

/**
 * Outstanding pairs of counted endpoints past their SLA day, most overdue first (then hostname, patch id,
 * endpoint id, in code-point order). With `limit`, only the page is read: a breach's due day is its detection
 * day plus its class's SLA days, so within one class (the patches with the same SLA days) the most overdue rows
 * are the earliest detected. Each class's row number offset + limit is found by walking the partial index on
 * outstanding rows in detection order (migration 0021); the earliest due of these bounds the page, and the rows
 * due by then (the whole of that day: the ties the hostname order decides) are merged and ordered in SQL. The 50
 * most overdue of 180,000 breaches cost tens of milliseconds, not a read and sort of all of them
 * (docs/benchmarks.md, the dashboard); a page whose last due day holds most breaches (a fleet's first scan, all
 * detected on one day) still reads that whole day.
 */
export async function slaBreaches(
  db: Db,
  options: { now?: Date; sla?: SlaPolicy; limit?: number; offset?: number; scope?: CycleScope } = {},
): Promise<SlaBreach[]> {
  const now = options.now ?? new Date();
  const sla = options.sla ?? DEFAULT_SLA;
  const today = Math.floor(now.getTime() / DAY_MS);
  const offset = options.offset ?? 0;
  const upTo = options.limit === undefined ? undefined : offset + options.limit;
  if (upTo === 0) return [];
  // A class: the patches with the same SLA days, named by their (severity, known-exploited) pairs so that the
  // planner estimates it from the columns' statistics (an estimate of one row for the CASE of slaDaysSql made it
  // read each patch's rows and sort them instead of walking the index in detection order).
  const pairs = [...SEVERITIES, null].flatMap((s) =>
    [true, false].map((kev) => ({ s, kev, d: slaDays({ severity: s ?? 'unspecified', knownExploited: kev }, sla) })),
  );
  const classDays = [...new Set(pairs.map((x) => x.d))].sort((a, b) => a - b);
  const inClass = (d: number) =>
    sql`(${sql.join(
      pairs
        .filter((x) => x.d === d)
        .map((x) =>
          x.s === null
            ? sql`(p.severity not in (${list(SEVERITIES)}) and p.known_exploited = ${x.kev})`
            : sql`(p.severity = ${x.s} and p.known_exploited = ${x.kev})`,
        ),
      sql` or `,
    )})`;
  const from = (d: number) => sql`from endpoint_patches ep join patches p on p.id = ep.patch_id
    join endpoints e on e.id = ep.endpoint_id
    where ${outstandingSql(sql`ep.state`)} and ${scopeSql(options.scope)} and ${inClass(d)}`;
  // Detected before the start of UTC day (today - d): due day + 1 <= today, overdue.
  const overdueBefore = classDays.map((d) => (today - d) * DAY_MS);
  // A page: the detection time of each class's row number `upTo` (none when the class has fewer), read apart, so
  // that the rows below are fetched by a range the planner sees (a bound inside the same query, unknown when
  // planned, made it read every row of each patch).
  const until = [...overdueBefore];
  if (upTo !== undefined) {
    const nth = await db.execute<Record<string, Date | string | null>>(
      sql`select ${sql.join(
        classDays.map(
          (
            d,
            i,
          ) => sql`(select ep.detected_at ${from(d)} and ep.detected_at < ${new Date(overdueBefore[i]!).toISOString()}::timestamptz
          order by ep.detected_at offset ${upTo - 1} limit 1) as ${sql.identifier(`c${i}`)}`,
        ),
        sql`, `,
      )}`,
    );
    // The class whose row number `upTo` is due first sets the last due day a row of the page can have: that
    // class alone has `upTo` rows due by then. Every class is read up to that due day, the whole of it (rows due the
    // same day are ordered by hostname, not detection).
    const lastDue = Math.min(
      ...classDays.map((d, i) => {
        const at = nth.rows[0]?.[`c${i}`];
        return at ? Math.floor(new Date(at).getTime() / DAY_MS) + d : Infinity;
      }),
    );
    classDays.forEach((d, i) => {
      if (lastDue !== Infinity) until[i] = Math.min(until[i]!, (lastDue - d + 1) * DAY_MS);
    });
  }
  // The candidate rows by one range over the partial index, read from the index alone in its order (materialised:
  // a fence that keeps the planner from walking each patch's rows instead), then each row kept when it is before
  // its own class's bound.
  const classOf = slaDaysSql(sla, sql`p.severity`, sql`p.known_exploited`);
  const boundOf = sql`(case ${classOf} ${sql.join(
    classDays.map((d, i) => sql`when ${d}::int then ${new Date(until[i]!).toISOString()}::timestamptz`),
    sql` `,
  )} end)`;
  const rows = await db.execute<{
    endpoint_id: string;
    hostname: string;
    patch_id: string;
    severity: string;
    kev: boolean;
    state: string;
    detected_at: Date | string;
  }>(sql`
    with r as materialized (
      select ep.endpoint_id, ep.patch_id, ep.state, ep.detected_at from endpoint_patches ep
      where ${outstandingSql(sql`ep.state`)} and ep.detected_at < ${new Date(Math.max(...until)).toISOString()}::timestamptz
      order by ep.detected_at)
    select r.endpoint_id, e.hostname, r.patch_id, p.severity, p.known_exploited as kev, r.state, r.detected_at
    from r join patches p on p.id = r.patch_id join endpoints e on e.id = r.endpoint_id
    where ${scopeSql(options.scope)} and r.detected_at < ${boundOf}
    order by (r.detected_at at time zone 'UTC')::date + ${classOf}, e.hostname collate "C", r.patch_id collate "C",
      r.endpoint_id collate "C"
    ${upTo === undefined ? (offset ? sql`offset ${offset}` : sql``) : sql`limit ${options.limit} offset ${offset}`}`);
  return rows.rows.map((r) => {
    const detected = new Date(r.detected_at);
    const p = { severity: r.severity, knownExploited: r.kev };
    return {
      endpointId: r.endpoint_id,
      hostname: r.hostname,
      patchId: r.patch_id,
      severity: r.severity,
      knownExploited: r.kev,
      state: r.state,
      detectedAt: detected.toISOString(),
      dueAt: new Date(slaDueDay(p, detected, sla) * DAY_MS).toISOString(),
      daysOverdue: daysOverdue(p, detected, now, sla),
    };
  });
}
