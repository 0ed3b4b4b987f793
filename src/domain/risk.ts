/**
 * Risk and priority: a score from severity, CVSS, known-exploited, endpoint criticality and exposure;
 * SLA due dates; and assessment of a cycle's missing patches with a plain-words reason per decision.
 * Pure; safe in workflow code.
 */
import { type PatchType, type Severity } from './patch';
import { type PolicyFilters } from './policy';

/** Days from detection to the remediation deadline, per severity; known-exploited has its own clock. */
export interface SlaPolicy {
  criticalDays: number;
  importantDays: number;
  moderateDays: number;
  lowDays: number;
  unspecifiedDays: number;
  knownExploitedDays: number;
}

export const DEFAULT_SLA: SlaPolicy = {
  criticalDays: 14,
  importantDays: 30,
  moderateDays: 60,
  lowDays: 90,
  unspecifiedDays: 90,
  knownExploitedDays: 7,
};

export interface PatchFacts {
  id: string;
  title: string;
  type: PatchType;
  severity: Severity;
  cvss: number | null;
  cves: string[];
  knownExploited: boolean;
  supersededBy: string | null;
  vendor: string;
  product: string;
  releasedAt?: string | null;
}

export interface EndpointFacts {
  id: string;
  hostname: string;
  /** 1 (low) .. 4 (business critical). */
  criticality: number;
  exposure: 'internal' | 'dmz' | 'internet';
  groups: string[];
}

export interface ExceptionFacts {
  code: string;
  patchId?: string | null;
  endpointId?: string | null;
  groupName?: string | null;
  reason: string;
  expiresAt: string;
}

export type Priority = 'P1' | 'P2' | 'P3' | 'P4';

export interface AssessInput {
  patches: PatchFacts[];
  missing: Array<{ endpointId: string; patchId: string; detectedAt: string }>;
  endpoints: EndpointFacts[];
  exceptions: ExceptionFacts[];
  sla: SlaPolicy;
  now: string;
  filters?: PolicyFilters;
}

export interface AssessedPatch {
  patchId: string;
  decision: 'include' | 'skipped' | 'dropped';
  priority: Priority;
  /** Max over the endpoints missing it. */
  riskScore: number;
  slaDue: string;
  /** Endpoints the patch goes to. */
  endpointIds: string[];
  /** Endpoints left out by an exception. */
  skippedEndpointIds: string[];
  reason: string;
}
