/**
 * What compliance means, once (README "Compliance"): an endpoint×patch pair is *outstanding* while its
 * state is one of OUTSTANDING_STATES; an endpoint is *compliant* when it has no outstanding pair; the
 * compliance figure is compliant ÷ counted endpoints (every endpoint not retired), 100 % of none.
 * SLA: a pair is due on the UTC day of detection plus `slaDays` (risk.ts, the known-exploited clock caps
 * the severity's) and overdue from the next UTC day on. Pure; the SQL that applies it is built from it.
 */
import type { SlaPolicy } from './risk';
import { slaDays } from './risk';
import type { Severity } from './patch';

/** endpoint_patches states that still need work. installed, pending_reboot and not_applicable do not. */
export const OUTSTANDING_STATES = ['missing', 'failed'] as const;
export type OutstandingState = (typeof OUTSTANDING_STATES)[number];

export function isOutstanding(state: string): state is OutstandingState {
  return (OUTSTANDING_STATES as readonly string[]).includes(state);
}

/** The endpoint status that counts nowhere; every other (active, unreachable) counts, as the aggregates' triggers do. */
export const RETIRED_STATUS = 'retired';

export function isCountedEndpoint(status: string): boolean {
  return status !== RETIRED_STATUS;
}

/** agent_jobs states that have not finished: a wave's "pending" (held jobs wait for release or resume). */
export const PENDING_JOB_STATES = ['queued', 'leased', 'held'] as const;

export function isPendingJob(state: string): boolean {
  return (PENDING_JOB_STATES as readonly string[]).includes(state);
}

/** One decimal place; 100 when there is nothing to count. */
export function compliancePercent(compliant: number, endpoints: number): number {
  return endpoints === 0 ? 100 : Math.round((compliant / endpoints) * 1000) / 10;
}

const DAY_MS = 86_400_000;
const utcDay = (t: number) => Math.floor(t / DAY_MS);

/** The UTC day (as days since the epoch) a pair detected at `detectedAt` is due. */
export function slaDueDay(
  p: { severity: Severity | string; knownExploited: boolean },
  detectedAt: Date,
  sla: SlaPolicy,
): number {
  return (
    utcDay(detectedAt.getTime()) + slaDays({ severity: p.severity as Severity, knownExploited: p.knownExploited }, sla)
  );
}

/** Whole days past due on `now`'s UTC day: > 0 means overdue, 0 or less means within SLA. */
export function daysOverdue(
  p: { severity: Severity | string; knownExploited: boolean },
  detectedAt: Date,
  now: Date,
  sla: SlaPolicy,
): number {
  return utcDay(now.getTime()) - slaDueDay(p, detectedAt, sla);
}

/** The same, from the UTC day of detection (the maintained aggregates keep days, not instants). */
export function daysOverdueFromDay(
  p: { severity: Severity | string; knownExploited: boolean },
  detectedDay: string,
  now: Date,
  sla: SlaPolicy,
): number {
  return daysOverdue(p, new Date(`${detectedDay}T00:00:00Z`), now, sla);
}
