import type { Database } from '../db/client';
import type { Logger } from '../logging';
import { createProbeActivities } from './probe';
import { createCycleActivities } from './cycle';
import { createDigestActivities, type DigestMailer } from './digest';
import { withFailures } from './failures';
import { withHeartbeats } from './heartbeat';
import type { KevIndex } from '../domain/kev';
import type { AgentJobs, ChangeDesk, ChatNotifier, Mailer } from '../domain/ports';

/** What the worker injects into activities: real clients in production, fakes in tests. */
export interface ActivityDeps {
  database: Database;
  logger: Logger;
  /** Cycle ports; defaults: DrizzleAgentJobs on `database`, LogChatNotifier (log + audit), no change desk, no mailer. */
  chat?: ChatNotifier;
  changeDesk?: ChangeDesk | null;
  mailer?: Mailer | null;
  agentJobs?: AgentJobs;
  /** E-mail report recipients when a policy names none (REPORT_RECIPIENTS). */
  reportRecipients?: string[];
  /** The weekly compliance digest's mailer (SmtpMailer); null/absent = digest not sent. */
  digestMailer?: DigestMailer | null;
  /** CISA's KEV catalog loader (integrations/kev.ts kevCatalog); default: the bundled copy, read once by these activities. */
  kevCatalog?: () => Promise<KevIndex>;
}

/**
 * The one activity factory (Temporal samples style): the worker passes real dependencies, tests pass fakes.
 * Every activity's coded errors become typed ApplicationFailures here, once (see failures.ts), and every activity
 * heartbeats while it runs (heartbeat.ts), so a dead worker's activities are retried in seconds.
 */
export function createActivities(deps: ActivityDeps) {
  return withFailures(
    withHeartbeats({
      ...createProbeActivities(deps),
      ...createCycleActivities(deps),
      ...createDigestActivities(deps),
    }),
  );
}

export type Activities = ReturnType<typeof createActivities>;
