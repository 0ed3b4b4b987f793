/**
 * Patch health for the Slack App Home (and any other front-end): compliance and overdue outstanding
 * patches by severity from the one read model (src/db/read-model/compliance.ts), active cycles, and the
 * approvals waiting for the viewer.
 */
import type { Db } from '../../db/client';
import { complianceSummary } from '../../db/read-model/compliance';
import { CycleStage, TERMINAL_STAGES } from '../../domain/cycle';
import { DEFAULT_SLA, type SlaPolicy } from '../../domain/risk';
import type { CycleListItem, CycleService } from '../../services/cycle-service';

export interface PatchHealth {
  /** Compliant ÷ counted endpoints, 0–100 (README "Compliance"); null when there are no endpoints yet. */
  compliancePercent: number | null;
  endpoints: number;
  compliantEndpoints: number;
  /** Outstanding endpoint×patch pairs. */
  outstanding: number;
  overdueBySeverity: Record<string, number>;
  activeCycles: CycleListItem[];
  pendingForViewer: CycleListItem[];
}

export async function patchHealth(
  db: Db,
  service: CycleService,
  viewer: string,
  now: Date = new Date(),
  sla: SlaPolicy = DEFAULT_SLA,
): Promise<PatchHealth> {
  const c = await complianceSummary(db, { now, sla });
  const overdueBySeverity = Object.fromEntries(Object.entries(c.overdueBySeverity).filter(([, n]) => n > 0));
  const cycles = await service.list({ activeOnly: true, limit: 50 });
  const activeCycles = cycles.filter((c) => !TERMINAL_STAGES.includes(c.stage));
  const pendingForViewer: CycleListItem[] = [];
  for (const c of activeCycles
    .filter((x) => x.stage === CycleStage.AWAIT_APPROVAL && x.requestedBy !== viewer)
    .slice(0, 10)) {
    try {
      const s = await service.status(c.cycleId);
      if (!s.approvals.records.some((r) => r.identity === viewer)) pendingForViewer.push(c);
    } catch {
      // finished meanwhile: not pending
    }
  }
  return {
    compliancePercent: c.endpoints === 0 ? null : c.compliancePct,
    endpoints: c.endpoints,
    compliantEndpoints: c.compliant,
    outstanding: Object.values(c.bySeverity).reduce((a, b) => a + b, 0),
    overdueBySeverity,
    activeCycles,
    pendingForViewer,
  };
}
