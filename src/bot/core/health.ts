/**
 * Patch health for the Slack App Home (and any other front-end): compliance %, overdue missing patches by
 * severity (DEFAULT_SLA clocks from detection; known-exploited on its own shorter clock), active cycles,
 * and the approvals waiting for the viewer.
 */
import { sql } from 'drizzle-orm';
import type { Db } from '../../db/client';
import { CycleStage, TERMINAL_STAGES } from '../../domain/cycle';
import { DEFAULT_SLA, type SlaPolicy } from '../../domain/risk';
import type { CycleListItem, CycleService } from '../../services/cycle-service';

export interface PatchHealth {
  /** Installed ÷ applicable (endpoint, patch) pairs, 0–100; null when nothing was scanned yet. */
  compliancePercent: number | null;
  applicable: number;
  missing: number;
  overdueBySeverity: Record<string, number>;
  activeCycles: CycleListItem[];
  pendingForViewer: CycleListItem[];
}

export async function patchHealth(db: Db, service: CycleService, viewer: string, now: Date = new Date(), sla: SlaPolicy = DEFAULT_SLA): Promise<PatchHealth> {
  const day = 86_400_000;
  const cutoff = (days: number) => new Date(now.getTime() - days * day).toISOString();
  const result = await db.execute<{ state: string; severity: string; n: string; overdue: string }>(sql`
    select ep.state, p.severity, count(*)::text as n,
      count(*) filter (where ep.state <> 'installed' and ep.detected_at < case
        when p.known_exploited then ${cutoff(sla.knownExploitedDays)}::timestamptz
        when p.severity = 'critical' then ${cutoff(sla.criticalDays)}::timestamptz
        when p.severity = 'important' then ${cutoff(sla.importantDays)}::timestamptz
        when p.severity = 'moderate' then ${cutoff(sla.moderateDays)}::timestamptz
        when p.severity = 'low' then ${cutoff(sla.lowDays)}::timestamptz
        else ${cutoff(sla.unspecifiedDays)}::timestamptz end)::text as overdue
    from endpoint_patches ep join patches p on p.id = ep.patch_id
    where ep.state <> 'not_applicable'
    group by ep.state, p.severity`);
  let applicable = 0;
  let installed = 0;
  const overdueBySeverity: Record<string, number> = {};
  for (const r of result.rows) {
    const n = Number(r.n);
    applicable += n;
    if (r.state === 'installed') installed += n;
    const overdue = Number(r.overdue);
    if (overdue > 0) overdueBySeverity[r.severity] = (overdueBySeverity[r.severity] ?? 0) + overdue;
  }
  const cycles = await service.list({ activeOnly: true, limit: 50 });
  const activeCycles = cycles.filter((c) => !TERMINAL_STAGES.includes(c.stage));
  const pendingForViewer: CycleListItem[] = [];
  for (const c of activeCycles.filter((x) => x.stage === CycleStage.AWAIT_APPROVAL && x.requestedBy !== viewer).slice(0, 10)) {
    try {
      const s = await service.status(c.cycleId);
      if (!s.approvals.records.some((r) => r.identity === viewer)) pendingForViewer.push(c);
    } catch {
      // finished meanwhile: not pending
    }
  }
  return {
    compliancePercent: applicable === 0 ? null : Math.round((installed / applicable) * 1000) / 10,
    applicable,
    missing: applicable - installed,
    overdueBySeverity,
    activeCycles,
    pendingForViewer,
  };
}
