/** The SLA clock's settings: days from detection to the remediation deadline. Pure; safe in workflow code. */

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
