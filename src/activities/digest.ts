/**
 * Activities of the weekly compliance digest: read the compliance picture from the read model
 * (src/db/read-model/compliance.ts, the same figures as the dashboard and App Home), mail it.
 * Also ensureDigestSchedule, which start-up calls to create (or update) the Temporal Schedule.
 */
import { ScheduleAlreadyRunning, type Client } from '@temporalio/client';
import type { Database } from '../db/client';
import { recentCycles } from '../db/cycles';
import { complianceSummary, topOutstanding } from '../db/read-model/compliance';
import type { ComplianceDigest } from '../integrations/email/render';
import type { Logger } from '../logging';
import { TaskQueue } from '../temporal/task-queues';

export interface DigestMailer {
  sendDigest(digest: ComplianceDigest, to: string[]): Promise<void>;
}

export interface DigestDeps {
  database: Database;
  logger: Logger;
  digestMailer?: DigestMailer | null;
  reportRecipients?: string[];
  now?: () => Date;
}

export const DIGEST_SCHEDULE_ID = 'patchops-compliance-digest';
/** Cycles a digest lists, newest first. */
const DIGEST_CYCLES = 50;

export function createDigestActivities(deps: DigestDeps) {
  const db = deps.database.db;
  const now = deps.now ?? (() => new Date());
  return {
    async buildComplianceDigest(input: { periodDays: number }): Promise<ComplianceDigest> {
      const at = now();
      const since = new Date(at.getTime() - input.periodDays * 86_400_000);
      const [summary, top] = await Promise.all([complianceSummary(db, { now: at }), topOutstanding(db, { limit: 10 })]);
      const cycles = await recentCycles(db, { since, limit: DIGEST_CYCLES });
      return {
        generatedAt: at.toISOString(),
        periodStart: since.toISOString(),
        endpoints: summary.endpoints,
        compliantEndpoints: summary.compliant,
        compliancePercent: summary.compliancePct,
        missingBySeverity: Object.fromEntries(Object.entries(summary.bySeverity).filter(([, n]) => n > 0)),
        topMissing: top,
        cycles: cycles.map((r) => ({
          cycleId: r.cycleId,
          policyName: r.policyName,
          stage: r.stage,
          ...(r.changeNumber ? { changeNumber: r.changeNumber } : {}),
          createdAt: r.createdAt,
        })),
      };
    },

    /** Returns how many recipients it went to (0 when email is off or nobody is configured). */
    async sendComplianceDigest(input: { digest: ComplianceDigest; recipients: string[] }): Promise<number> {
      const to = [...new Set([...(deps.reportRecipients ?? []), ...input.recipients])];
      if (!deps.digestMailer || to.length === 0) {
        deps.logger.info(
          { recipients: to.length, email: Boolean(deps.digestMailer) },
          'compliance digest not sent: set SMTP_URL and REPORT_RECIPIENTS',
        );
        return 0;
      }
      await deps.digestMailer.sendDigest(input.digest, to);
      return to.length;
    },
  };
}

export type DigestActivities = ReturnType<typeof createDigestActivities>;

/**
 * Creates the weekly digest schedule, or brings an existing one up to date (idempotent: safe at every
 * start). Default: Mondays 07:00 UTC.
 */
export async function ensureDigestSchedule(
  client: Client,
  o: { cron?: string; taskQueue?: string; scheduleId?: string } = {},
): Promise<string> {
  const scheduleId = o.scheduleId ?? DIGEST_SCHEDULE_ID;
  const spec = { cronExpressions: [o.cron ?? '0 7 * * 1'] };
  const action = {
    type: 'startWorkflow' as const,
    workflowType: 'complianceDigestWorkflow',
    taskQueue: o.taskQueue ?? TaskQueue.cycles,
    args: [{ periodDays: 7 }],
    workflowId: scheduleId,
  };
  try {
    await client.schedule.create({ scheduleId, spec, action, memo: { purpose: 'weekly compliance digest email' } });
  } catch (e) {
    if (!(e instanceof ScheduleAlreadyRunning)) throw e;
    await client.schedule.getHandle(scheduleId).update((prev) => ({ ...prev, spec, action }));
  }
  return scheduleId;
}
