/**
 * Activities of the weekly compliance digest: read the compliance picture from Postgres, mail it.
 * Also ensureDigestSchedule, which start-up calls to create (or update) the Temporal Schedule.
 */
import { ScheduleAlreadyRunning, type Client } from '@temporalio/client';
import { sql } from 'drizzle-orm';
import type { Database } from '../db/client';
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

export function createDigestActivities(deps: DigestDeps) {
  const db = deps.database.db;
  const now = deps.now ?? (() => new Date());
  return {
    async buildComplianceDigest(input: { periodDays: number }): Promise<ComplianceDigest> {
      const at = now();
      const since = new Date(at.getTime() - input.periodDays * 86_400_000);
      const totals = await db.execute<{ endpoints: number; compliant: number }>(sql`
        select count(*)::int as endpoints,
               count(*) filter (where not exists (
                 select 1 from endpoint_patches ep where ep.endpoint_id = e.id and ep.state in ('missing', 'failed')))::int as compliant
        from endpoints e where e.status = 'active'`);
      const bySeverity = await db.execute<{ severity: string; n: number }>(sql`
        select p.severity, count(*)::int as n
        from endpoint_patches ep join patches p on p.id = ep.patch_id join endpoints e on e.id = ep.endpoint_id
        where ep.state in ('missing', 'failed') and e.status = 'active'
        group by p.severity`);
      const top = await db.execute<{ patch_id: string; title: string; severity: string; known_exploited: boolean; n: number }>(sql`
        select p.id as patch_id, p.title, p.severity, p.known_exploited, count(distinct ep.endpoint_id)::int as n
        from endpoint_patches ep join patches p on p.id = ep.patch_id join endpoints e on e.id = ep.endpoint_id
        where ep.state in ('missing', 'failed') and e.status = 'active'
        group by p.id, p.title, p.severity, p.known_exploited
        order by p.known_exploited desc, n desc, p.id
        limit 10`);
      const cycles = await db.execute<{ id: string; policy_name: string; stage: string; change_number: string | null; created_at: Date | string }>(sql`
        select id, policy_name, stage, change_number, created_at from patch_cycles
        where created_at >= ${since.toISOString()}::timestamptz order by created_at desc limit 50`);
      const t = totals.rows[0] ?? { endpoints: 0, compliant: 0 };
      const endpoints = Number(t.endpoints);
      const compliant = Number(t.compliant);
      return {
        generatedAt: at.toISOString(),
        periodStart: since.toISOString(),
        endpoints,
        compliantEndpoints: compliant,
        compliancePercent: endpoints === 0 ? 100 : Math.round((compliant / endpoints) * 1000) / 10,
        missingBySeverity: Object.fromEntries(bySeverity.rows.map((r) => [r.severity, Number(r.n)])),
        topMissing: top.rows.map((r) => ({ patchId: r.patch_id, title: r.title, severity: r.severity, endpoints: Number(r.n), knownExploited: Boolean(r.known_exploited) })),
        cycles: cycles.rows.map((r) => ({
          cycleId: r.id,
          policyName: r.policy_name,
          stage: r.stage,
          ...(r.change_number ? { changeNumber: r.change_number } : {}),
          createdAt: new Date(r.created_at).toISOString(),
        })),
      };
    },

    /** Returns how many recipients it went to (0 when email is off or nobody is configured). */
    async sendComplianceDigest(input: { digest: ComplianceDigest; recipients: string[] }): Promise<number> {
      const to = [...new Set([...(deps.reportRecipients ?? []), ...input.recipients])];
      if (!deps.digestMailer || to.length === 0) {
        deps.logger.info({ recipients: to.length, email: Boolean(deps.digestMailer) }, 'compliance digest not sent: set SMTP_URL and REPORT_RECIPIENTS');
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
