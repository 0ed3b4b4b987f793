/**
 * A cycle's assessment in aggregate: what the approval request, the change request and the workflow's
 * history carry (counts, the top patches, capped reasons, the risk level), never per-endpoint lists.
 * Pure; safe in workflow code.
 */
import { approvalsNeeded, cycleRiskLevel, needsHumanApproval, type RiskLevel } from './approval';
import { SEVERITY_RANK, type Severity } from './patch';
import type { DeploymentPolicy } from './policy';
import type { PatchSummaryLine } from './ports';
import type { AssessedPatch, EndpointFacts, PatchFacts } from './risk';

export interface AssessResult {
  endpointsInScope: number;
  /** Endpoints in scope whose missing patches are known (fresh scan); undefined from workers before scans were required. */
  endpointsChecked?: number;
  /** Endpoints in scope left out because no fresh scan of them exists: how many, and the first host names. */
  notScanned?: { count: number; hostnames: string[] };
  /** Endpoints with at least one included patch. */
  endpoints: number;
  /** Distinct included patches. */
  patches: number;
  bySeverity: Record<string, number>;
  byType: Record<string, number>;
  topPatches: PatchSummaryLine[];
  /** Capped at REASONS_CAP. */
  reasons: string[];
  risk: RiskLevel;
  needsApproval: boolean;
  approvalsNeeded: number;
}

/** The figures summarizeAssessment computes: everything of AssessResult but the scope counts. */
export type AssessmentSummary = Omit<AssessResult, 'endpointsInScope' | 'endpointsChecked' | 'notScanned'>;

export const REASONS_CAP = 20;
export const TOP_PATCHES = 5;

export interface AssessmentSummaryInput {
  /** What assess() decided (domain/risk.ts). */
  assessed: { patches: AssessedPatch[]; reasons: string[] };
  /** The facts of every patch assess() was given. */
  patches: Array<Pick<PatchFacts, 'id' | 'title' | 'type' | 'severity' | 'cvss' | 'cves' | 'knownExploited'>>;
  /** The endpoints assessed (their criticality sets the risk level). */
  endpoints: Array<Pick<EndpointFacts, 'id' | 'criticality'>>;
  policy: Pick<DeploymentPolicy, 'autoApprove' | 'approval'>;
}

/**
 * Counts by severity and type over the included patches, the risk level (worst severity, known-exploited,
 * most critical target endpoint), the top patches by risk score, the reasons (per patch first, capped at
 * REASONS_CAP) and whether and how many people must approve.
 */
export function summarizeAssessment(input: AssessmentSummaryInput): AssessmentSummary {
  const byId = new Map(input.patches.map((p) => [p.id, p]));
  const factsOf = (patchId: string) => {
    const p = byId.get(patchId);
    if (!p) throw new Error(`summarizeAssessment: no facts for assessed patch ${patchId}`);
    return p;
  };
  const included = input.assessed.patches.filter((a) => a.decision === 'include' && a.endpointIds.length > 0);
  const targetEndpoints = new Set(included.flatMap((a) => a.endpointIds));
  const bySeverity: Record<string, number> = {};
  const byType: Record<string, number> = {};
  let maxSev: Severity = 'unspecified';
  let knownExploited = false;
  for (const a of included) {
    const p = factsOf(a.patchId);
    bySeverity[p.severity] = (bySeverity[p.severity] ?? 0) + 1;
    byType[p.type] = (byType[p.type] ?? 0) + 1;
    if (SEVERITY_RANK[p.severity] > SEVERITY_RANK[maxSev]) maxSev = p.severity;
    knownExploited ||= p.knownExploited;
  }
  const maxCriticality = Math.max(
    1,
    ...input.endpoints.filter((e) => targetEndpoints.has(e.id)).map((e) => e.criticality),
  );
  const risk = cycleRiskLevel({ maxSeverity: maxSev, knownExploited, maxCriticality });
  const topPatches: PatchSummaryLine[] = [...included]
    .sort((x, y) => y.riskScore - x.riskScore || x.patchId.localeCompare(y.patchId))
    .slice(0, TOP_PATCHES)
    .map((a) => {
      const p = factsOf(a.patchId);
      return {
        patchId: p.id,
        title: p.title,
        severity: p.severity,
        type: p.type,
        ...(p.cvss !== null ? { cvss: p.cvss } : {}),
        cves: p.cves,
        knownExploited: p.knownExploited,
        endpoints: a.endpointIds.length,
      };
    });
  const reasons = [...input.assessed.patches.map((a) => `${a.patchId}: ${a.reason}`), ...input.assessed.reasons].slice(
    0,
    REASONS_CAP,
  );
  const needsApproval = needsHumanApproval(
    input.policy,
    included.map((a) => ({ type: factsOf(a.patchId).type, severity: factsOf(a.patchId).severity })),
  );
  return {
    endpoints: targetEndpoints.size,
    patches: included.length,
    bySeverity,
    byType,
    topPatches,
    reasons,
    risk,
    needsApproval,
    approvalsNeeded: approvalsNeeded(input.policy.approval, risk),
  };
}
