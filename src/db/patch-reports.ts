/**
 * What agents report about patches, and the catalog it may touch (issue #11): the grammar screen on arrival, each
 * endpoint's own reports (endpoint_patch_reports), the cautious merge into the shared catalog, the packages jobs are
 * built from, and the trusted source's own setter. An agent's report is an observation about its own endpoint only.
 */
import { createHash } from 'node:crypto';
import { and, eq, inArray, sql, type SQL } from 'drizzle-orm';
import { CodedError, ErrorCode } from '../domain/errors';
import {
  moreCautiousType,
  normalizeSeverity,
  severityFromCvss,
  type PatchType,
  type Severity,
  type SeveritySource,
} from '../domain/patch';
import type { PatchFacts } from '../domain/risk';
import type { FoundPatch, JobResult } from '../shared/agent-protocol';
import { hasControlCharacters, packageRefProblem } from '../shared/package-names';
import { appendAudit, canonicalJson } from './audit';
import type { Db } from './client';
import { cycleTargets, endpointPatches, endpointPatchReports, patches, type PatchPackage } from './schema/index';

const SOURCES: readonly SeveritySource[] = ['msrc', 'debian', 'ubuntu', 'redhat', 'suse', 'apple', 'cvss', 'vendor'];

/** critical | important | moderate | low | unspecified from the vendor's word (domain/patch.ts), else from CVSS. */
export function severityOf(word: string | undefined, cvss: number | undefined, source?: string): string {
  const src: SeveritySource = SOURCES.includes(source as SeveritySource) ? (source as SeveritySource) : 'vendor';
  const fromWord = word ? normalizeSeverity(src, word) : 'unspecified';
  if (fromWord !== 'unspecified') return fromWord;
  return cvss !== undefined ? severityFromCvss(cvss) : 'unspecified';
}

/** A reported patch the gateway did not take, and why. */
export interface RefusedEntry {
  patchId: string;
  problem: string;
}

/**
 * Screens what an agent reports before anything of it is stored: a scan's patch whose packages fail their backend's
 * grammar (src/shared/package-names.ts), or whose id carries control characters, is taken out with the reason; the
 * rest of the result stands (each patch is an observation of its own). Pure and idempotent: screening a screened
 * result changes nothing, so a re-sent result is still recognised as a duplicate.
 */
export function screenJobResult(result: JobResult): { result: JobResult; refused: RefusedEntry[] } {
  if (!result.missing) return { result, refused: [] };
  const refused: RefusedEntry[] = [];
  const kept: FoundPatch[] = [];
  for (const p of result.missing) {
    const problems = hasControlCharacters(p.patchId)
      ? ['the patch id carries control characters']
      : p.packages.map((k) => packageRefProblem(k)).filter((x): x is string => x !== null);
    if (problems.length > 0) refused.push({ patchId: p.patchId, problem: problems.join('; ') });
    else kept.push(p);
  }
  if (refused.length === 0) return { result, refused };
  const shown = refused.slice(0, 20).map((r) => `${JSON.stringify(r.patchId)}: ${r.problem}`);
  const note =
    `refused ${refused.length} of ${result.missing.length} reported patches (package names or versions outside their backend's grammar; nothing about them was recorded): ` +
    `${shown.join('; ')}${refused.length > shown.length ? `; and ${refused.length - shown.length} more` : ''}`;
  return { result: { ...result, missing: kept, error: result.error ? `${result.error}; ${note}` : note }, refused };
}

const SEVERITY_ORDER = ['unspecified', 'low', 'moderate', 'important', 'critical'];
const severityRank = (s: string) => Math.max(0, SEVERITY_ORDER.indexOf(s));

type CatalogRow = typeof patches.$inferSelect;

/**
 * What one agent's report may change in a shared catalog row: only towards more caution. Severity and CVSS only go
 * up, CVEs are only added, a restart only becomes required, the type only moves to one asking more care before it is
 * deployed (moreCautiousType: an agent cannot relabel a security update `definition` to reach auto-approval).
 * Packages, the successor (supersededBy), title and vendor never change from an agent: they come from the first
 * report (descriptive fields) or trusted sources only (setCatalogPatch). Returns the changed fields, or null.
 */
function cautiousMerge(
  row: Pick<CatalogRow, 'severity' | 'cvss' | 'cves' | 'rebootRequired' | 'type'>,
  p: FoundPatch,
): Partial<CatalogRow> | null {
  const change: Partial<CatalogRow> = {};
  const type = moreCautiousType(row.type, p.type);
  if (type !== row.type) change.type = type;
  const severity = severityOf(p.vendorSeverity, p.cvss, p.severitySource);
  if (severityRank(severity) > severityRank(row.severity)) {
    change.severity = severity;
    if (p.vendorSeverity) change.vendorSeverity = p.vendorSeverity;
  }
  if (p.cvss !== undefined && (row.cvss === null || p.cvss > row.cvss)) change.cvss = p.cvss;
  const newCves = p.cves.filter((c) => !row.cves.includes(c));
  if (newCves.length > 0) change.cves = [...row.cves, ...newCves].slice(0, 5000);
  if (p.rebootRequired && !row.rebootRequired) change.rebootRequired = true;
  return Object.keys(change).length > 0 ? change : null;
}

/**
 * One array parameter (`$1::text[]`) for a whole column: a scan's rows are written by `unnest` in one statement
 * each, instead of a drizzle multi-row insert that builds a parameter per value (half of the gateway's CPU at
 * 200 patches a scan, bench:scan-ingest).
 */
const textArray = (values: Array<string | null>) => sql`${sql.param(values)}::text[]`;

/**
 * Adds the patches the catalog does not know yet and makes known ones more cautious (cautiousMerge), returning what
 * it added and changed for the audit log. Built for thousands of scans at once that all report the same patches:
 * a known patch is only read, not locked (an upsert that rewrote it would hold every scan touching that patch until
 * the previous one committed); only a row an agent's report actually changes is locked, re-read under the lock and
 * updated. Every writer takes its catalog locks in patch-id order, inserts before updates, and all of them before
 * the endpoint's own rows (whose triggers lock shared counters), so concurrent scans never wait in a cycle.
 */
async function mergeIntoCatalog(
  db: Db,
  list: FoundPatch[],
  osFamily: string,
): Promise<{
  added: string[];
  changed: Array<{ patchId: string; from: Record<string, unknown>; to: Record<string, unknown> }>;
}> {
  const inserted = await db.execute<{ id: string }>(sql`
    insert into patches (id, title, vendor, product, type, severity, vendor_severity, cvss, cves, os_family,
      reboot_required, superseded_by, packages, released_at)
    select u.id, u.title, u.vendor, u.product, u.type, u.severity, u.vendor_severity, u.cvss,
      array(select jsonb_array_elements_text(u.cves::jsonb)), u.os_family, u.reboot_required,
      -- Never from an agent: the successor and the packages are per endpoint (endpoint_patch_reports).
      null, '[]'::jsonb, u.released_at
    from unnest(${textArray(list.map((p) => p.patchId))}, ${textArray(list.map((p) => p.title))},
      ${textArray(list.map((p) => p.vendor))}, ${textArray(list.map((p) => p.product))},
      ${textArray(list.map((p) => p.type))}, ${textArray(list.map((p) => severityOf(p.vendorSeverity, p.cvss, p.severitySource)))},
      ${textArray(list.map((p) => p.vendorSeverity ?? null))}, ${sql.param(list.map((p) => p.cvss ?? null))}::real[],
      ${textArray(list.map((p) => JSON.stringify(p.cves)))},
      ${textArray(list.map((p) => (p.packages.some((k) => k.manager === 'winget' || k.manager === 'brew' || k.manager === 'file') ? 'any' : osFamily)))},
      ${sql.param(list.map((p) => p.rebootRequired))}::boolean[],
      ${sql.param(list.map((p) => (p.releasedAt ? new Date(p.releasedAt).toISOString() : null)))}::timestamptz[])
      with ordinality as u(id, title, vendor, product, type, severity, vendor_severity, cvss, cves, os_family,
        reboot_required, released_at, ord)
    order by u.ord
    on conflict (id) do nothing
    returning id`);
  const added = inserted.rows.map((r) => r.id);
  added.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const isNew = new Set(added);
  const known = list.filter((p) => !isNew.has(p.patchId));
  const toChange: FoundPatch[] = [];
  if (known.length > 0) {
    const rows = await db.execute<{
      id: string;
      type: string;
      severity: string;
      cvss: number | null;
      cves: string[];
      reboot_required: boolean;
    }>(sql`select id, type, severity, cvss, cves, reboot_required from patches
      where id = any(${textArray(known.map((p) => p.patchId))})`);
    const byId = new Map(rows.rows.map((r) => [r.id, { ...r, rebootRequired: r.reboot_required }]));
    for (const p of known) {
      const row = byId.get(p.patchId);
      if (row && cautiousMerge(row, p)) toChange.push(p);
    }
  }
  const changed: Array<{ patchId: string; from: Record<string, unknown>; to: Record<string, unknown> }> = [];
  if (toChange.length === 0) return { added, changed };
  // Rare (a report more cautious than the catalog): lock those rows in id order and merge against what is there now.
  // FOR NO KEY UPDATE, not FOR UPDATE: the merge changes no key, and the weaker lock lets other scans' foreign-key
  // checks on these rows (FOR KEY SHARE, from their new report and patch rows) through. With FOR UPDATE, first scans
  // that each changed different rows waited on each other's checks in a cycle: a deadlock (40P01) and a 503.
  const locked = await db
    .select({
      id: patches.id,
      type: patches.type,
      severity: patches.severity,
      cvss: patches.cvss,
      cves: patches.cves,
      rebootRequired: patches.rebootRequired,
    })
    .from(patches)
    .where(
      inArray(
        patches.id,
        toChange.map((p) => p.patchId),
      ),
    )
    .orderBy(patches.id)
    .for('no key update');
  const byId = new Map(locked.map((r) => [r.id, r]));
  for (const p of toChange) {
    const row = byId.get(p.patchId);
    const change = row && cautiousMerge(row, p);
    if (!row || !change) continue;
    await db.update(patches).set(change).where(eq(patches.id, p.patchId));
    changed.push({
      patchId: p.patchId,
      from: Object.fromEntries(Object.keys(change).map((k) => [k, row[k as keyof typeof row]])),
      to: change,
    });
  }
  return { added, changed };
}

/**
 * Applies a screened scan: the endpoint's own reports (endpoint_patch_reports, its packages for later jobs), the shared
 * catalog (new patches added; existing rows only made more cautious, see cautiousMerge; every change in the audit
 * log) and the endpoint's missing set (or, for a limited scan, that part of it). Patches refused by screening are
 * neither recorded nor taken as installed.
 */
export async function applyScan(
  db: Db,
  endpointId: string,
  jobId: string,
  found: FoundPatch[],
  limitedTo: string[],
  refusedIds: string[],
  now: Date,
  /** The endpoint as recordJobResult read it: its OS (for new catalog rows) and its last full scan's digest. */
  endpoint: { osFamily: string; lastScanDigest: string | null },
  /**
   * The endpoint's own row update given this scan's digest (recordJobResult's), run in the same statement as the
   * endpoint's patch rows: the last statement before the commit. Those rows' triggers lock counter rows every
   * endpoint's scan shares (per patch), so they are written last and held for the commit's round trip only.
   */
  endpointUpdate: (digest: string | null) => SQL,
): Promise<string | null> {
  const unique = new Map(found.map((p) => [p.patchId, p]));
  // One lock order for every writer: concurrent scans touching shared catalog rows must not deadlock.
  const list = [...unique.values()].sort((a, b) => (a.patchId < b.patchId ? -1 : a.patchId > b.patchId ? 1 : 0));
  // Only a full scan with nothing refused describes all of the endpoint's rows: only it is remembered, or skipped
  // when it reports exactly what the last one wrote (the rows are as it left them: other writers clear the digest).
  const digest =
    limitedTo.length === 0 && refusedIds.length === 0
      ? createHash('sha256').update(canonicalJson(list)).digest('hex')
      : null;
  if (digest !== null && digest === endpoint.lastScanDigest) {
    await db.execute(endpointUpdate(digest));
    return digest;
  }
  const { added, changed } = await mergeIntoCatalog(db, list, endpoint.osFamily);
  const at = now.toISOString();
  const ids = textArray(list.map((p) => p.patchId));
  if (list.length > 0) {
    await db.execute(sql`
      insert into endpoint_patch_reports (endpoint_id, patch_id, title, type, severity, vendor_severity, cvss, cves,
        reboot_required, superseded_by, packages, job_id, reported_at)
      select ${endpointId}, u.patch_id, u.title, u.type, u.severity, u.vendor_severity, u.cvss,
        array(select jsonb_array_elements_text(u.cves::jsonb)), u.reboot_required, u.superseded_by, u.packages::jsonb,
        ${jobId}, ${at}::timestamptz
      from unnest(${ids}, ${textArray(list.map((p) => p.title))}, ${textArray(list.map((p) => p.type))},
        ${textArray(list.map((p) => severityOf(p.vendorSeverity, p.cvss, p.severitySource)))},
        ${textArray(list.map((p) => p.vendorSeverity ?? null))}, ${sql.param(list.map((p) => p.cvss ?? null))}::real[],
        ${textArray(list.map((p) => JSON.stringify(p.cves)))}, ${sql.param(list.map((p) => p.rebootRequired))}::boolean[],
        ${textArray(list.map((p) => p.supersededBy ?? null))}, ${textArray(list.map((p) => JSON.stringify(p.packages)))})
        as u(patch_id, title, type, severity, vendor_severity, cvss, cves, reboot_required, superseded_by, packages)
      on conflict (endpoint_id, patch_id) do update set title = excluded.title, type = excluded.type,
        severity = excluded.severity, vendor_severity = excluded.vendor_severity, cvss = excluded.cvss,
        cves = excluded.cves, reboot_required = excluded.reboot_required, superseded_by = excluded.superseded_by,
        packages = excluded.packages, job_id = excluded.job_id, reported_at = excluded.reported_at
      -- A report the same as before is left as it is (a nightly rescan rewrites nothing): job_id and reported_at
      -- are the scan that last changed it.
      where (endpoint_patch_reports.title, endpoint_patch_reports.type, endpoint_patch_reports.severity,
          endpoint_patch_reports.vendor_severity, endpoint_patch_reports.cvss, endpoint_patch_reports.cves,
          endpoint_patch_reports.reboot_required, endpoint_patch_reports.superseded_by, endpoint_patch_reports.packages)
        is distinct from (excluded.title, excluded.type, excluded.severity, excluded.vendor_severity, excluded.cvss,
          excluded.cves, excluded.reboot_required, excluded.superseded_by, excluded.packages)`);
  }
  if (added.length > 0 || changed.length > 0) {
    await appendAudit(db, {
      actor: `agent:${endpointId}`,
      action: 'catalog.patches.reported',
      subjectType: 'job',
      subjectId: jobId,
      details: { endpointId, added, changed },
    });
  }
  // One statement: the reported patches missing; what was missing and is no longer reported missing installed now
  // (a refused report proves nothing); the endpoint's row. The two patch-row parts touch disjoint rows (every
  // reported id is in stillMissing), as a statement's data-modifying parts must.
  const stillMissing = [...list.map((p) => p.patchId), ...refusedIds];
  const missing =
    list.length > 0
      ? sql`missing as (
      insert into endpoint_patches (endpoint_id, patch_id, state, detected_at, last_job_id, updated_at)
      select ${endpointId}, u.patch_id, 'missing', ${at}::timestamptz, ${jobId}, ${at}::timestamptz
      from unnest(${ids}) as u(patch_id)
      on conflict (endpoint_id, patch_id) do update set state = 'missing', last_job_id = excluded.last_job_id,
        updated_at = excluded.updated_at,
        last_error = case when endpoint_patches.state = 'failed' then endpoint_patches.last_error else null end
      -- Still missing, as last time: nothing to write (last_job_id and updated_at are the job that last changed it).
      where endpoint_patches.state <> 'missing' or endpoint_patches.last_error is not null
    ), `
      : sql``;
  await db.execute(sql`
    with ${missing}installed as (
      update endpoint_patches set state = 'installed', installed_at = coalesce(installed_at, ${at}::timestamptz),
        updated_at = ${at}::timestamptz, last_job_id = ${jobId}
      where endpoint_id = ${endpointId} and state in ('missing', 'failed', 'pending_reboot')
        ${limitedTo.length > 0 ? sql`and patch_id = any(${sql.param(limitedTo)}::text[])` : sql``}
        ${stillMissing.length > 0 ? sql`and not (patch_id = any(${sql.param(stillMissing)}::text[]))` : sql``}
    ), endpoint as (${endpointUpdate(digest)})
    select 1`);
  return digest;
}

/**
 * The packages each (endpoint, patch) of a cycle's included targets is installed with: the endpoint's own agent's
 * report, else the trusted catalog's packages (set only by setCatalogPatch, never by an agent). Never another
 * endpoint's report. Ordered by endpoint, then priority (highest first), then patch. The one query install,
 * verify and rollback payloads are built from (src/activities/cycle.ts).
 */
export async function patchJobTargets(
  db: Db,
  cycleId: string,
  endpointIds: string[],
): Promise<Array<{ endpointId: string; patchId: string; packages: PatchPackage[]; rebootRequired: boolean }>> {
  if (endpointIds.length === 0) return [];
  return db
    .select({
      endpointId: cycleTargets.endpointId,
      patchId: cycleTargets.patchId,
      packages: sql<PatchPackage[]>`coalesce(${endpointPatchReports.packages}, ${patches.packages})`,
      rebootRequired: sql<boolean>`coalesce(${endpointPatchReports.rebootRequired}, ${patches.rebootRequired})`,
    })
    .from(cycleTargets)
    .innerJoin(patches, eq(patches.id, cycleTargets.patchId))
    .leftJoin(
      endpointPatchReports,
      and(
        eq(endpointPatchReports.endpointId, cycleTargets.endpointId),
        eq(endpointPatchReports.patchId, cycleTargets.patchId),
      ),
    )
    .where(
      and(
        eq(cycleTargets.cycleId, cycleId),
        eq(cycleTargets.decision, 'include'),
        inArray(cycleTargets.endpointId, endpointIds),
      ),
    )
    .orderBy(cycleTargets.endpointId, sql`${cycleTargets.priority} desc`, cycleTargets.patchId);
}

/** The fields of a catalog patch only a trusted source (an admin, repository metadata) may set. */
export interface TrustedPatchFacts {
  severity?: string;
  vendorSeverity?: string | null;
  /** The patch that replaces this one (the cycle drops this one where the successor is in the catalog); null clears it. */
  supersededBy?: string | null;
  /** Packages every endpoint without its own report installs the patch with; checked against the backends' grammar. */
  packages?: PatchPackage[];
  title?: string;
  type?: string;
}

/**
 * Sets catalog facts from a trusted source (an admin, repository metadata), audited with the old and new values.
 * Errors: NotFound (no such patch), InvalidInput (a package fails its backend's grammar, an unknown severity).
 */
export async function setCatalogPatch(db: Db, patchId: string, facts: TrustedPatchFacts, by: string): Promise<void> {
  if (facts.severity !== undefined && !SEVERITY_ORDER.includes(facts.severity)) {
    throw new CodedError(
      ErrorCode.InvalidInput,
      `"${facts.severity}" is not a severity: use one of ${SEVERITY_ORDER.join(', ')}`,
    );
  }
  for (const p of facts.packages ?? []) {
    const why = packageRefProblem(p);
    if (why) throw new CodedError(ErrorCode.InvalidInput, `${why}; nothing was changed`);
  }
  await db.transaction(async (tx) => {
    const t = tx as unknown as Db;
    const [row] = await t.select().from(patches).where(eq(patches.id, patchId)).for('update');
    if (!row) throw new CodedError(ErrorCode.NotFound, `no patch "${patchId}" in the catalog`);
    const change = Object.fromEntries(Object.entries(facts).filter(([, v]) => v !== undefined)) as Partial<CatalogRow>;
    if (Object.keys(change).length === 0) return;
    await t.update(patches).set(change).where(eq(patches.id, patchId));
    await appendAudit(t, {
      actor: by,
      action: 'catalog.patch.set',
      subjectType: 'patch',
      subjectId: patchId,
      details: {
        from: Object.fromEntries(Object.keys(change).map((k) => [k, row[k as keyof CatalogRow]])),
        to: change,
      },
    });
  });
}

/** Missing patches are read this many endpoints at a time. */
const MISSING_READ_BATCH = 5000;

/** What each endpoint's last scan found missing (endpoint_patches in state missing), for these endpoints. */
export async function missingPatches(
  db: Db,
  endpointIds: string[],
): Promise<Array<{ endpointId: string; patchId: string; detectedAt: string }>> {
  const missing: Array<{ endpointId: string; patchId: string; detectedAt: string }> = [];
  for (let i = 0; i < endpointIds.length; i += MISSING_READ_BATCH) {
    const rows = await db
      .select({
        endpointId: endpointPatches.endpointId,
        patchId: endpointPatches.patchId,
        detectedAt: endpointPatches.detectedAt,
      })
      .from(endpointPatches)
      .where(
        and(
          eq(endpointPatches.state, 'missing'),
          inArray(endpointPatches.endpointId, endpointIds.slice(i, i + MISSING_READ_BATCH)),
        ),
      );
    for (const r of rows)
      missing.push({ endpointId: r.endpointId, patchId: r.patchId, detectedAt: r.detectedAt.toISOString() });
  }
  return missing;
}

/** The catalog's facts about these patches, as the assessment takes them (patches not in the catalog are left out). */
export async function catalogPatchFacts(
  db: Db,
  patchIds: string[],
): Promise<Array<Omit<PatchFacts, 'knownExploitedCves' | 'rebootRequired'>>> {
  if (patchIds.length === 0) return [];
  const rows = await db.select().from(patches).where(inArray(patches.id, patchIds));
  return rows.map((p) => ({
    id: p.id,
    title: p.title,
    type: p.type as PatchType,
    severity: p.severity as Severity,
    cvss: p.cvss,
    cves: p.cves,
    knownExploited: p.knownExploited,
    supersededBy: p.supersededBy,
    vendor: p.vendor,
    product: p.product,
    releasedAt: p.releasedAt ? p.releasedAt.toISOString() : null,
  }));
}

/** Marks catalog patches known exploited (a CVE of theirs is in CISA's KEV catalog); the dashboard counts them. */
export async function markKnownExploited(db: Db, patchIds: string[]): Promise<void> {
  if (patchIds.length === 0) return;
  await db.update(patches).set({ knownExploited: true }).where(inArray(patches.id, patchIds));
}
