/**
 * The weekly compliance digest: started by a Temporal Schedule (ensureDigestSchedule, created at start-up
 * when SMTP is configured). Two activities, so a retried send does not query again.
 */
import { proxyActivities } from '@temporalio/workflow';
import type { DigestActivities } from '../activities/digest';
import { HEARTBEAT_TIMEOUT } from './heartbeat-timeout';

const acts = proxyActivities<DigestActivities>({
  startToCloseTimeout: '5 minutes',
  heartbeatTimeout: HEARTBEAT_TIMEOUT,
  retry: { maximumAttempts: 5, maximumInterval: '1 minute' },
});

/** One input object, so fields can be added without breaking running workflows. */
export interface ComplianceDigestInput {
  /** Extra recipients; REPORT_RECIPIENTS are always included. */
  recipients?: string[];
  /** The period the digest covers (cycles started in it). */
  periodDays?: number;
}

export interface ComplianceDigestResult {
  sentTo: number;
  compliancePercent: number;
  endpoints: number;
}

export async function complianceDigestWorkflow(input: ComplianceDigestInput = {}): Promise<ComplianceDigestResult> {
  const digest = await acts.buildComplianceDigest({ periodDays: input.periodDays ?? 7 });
  const sentTo = await acts.sendComplianceDigest({ digest, recipients: input.recipients ?? [] });
  return { sentTo, compliancePercent: digest.compliancePercent, endpoints: digest.endpoints };
}
