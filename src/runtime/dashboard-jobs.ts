/**
 * The dashboard's background job: a compliance snapshot every hour (by default), so the overview's trend
 * gets a point even when nobody looks. Overview visits also take one, at most hourly (takeComplianceSnapshot
 * skips when the last point is younger than an hour), so the two never double up.
 */
import type { Db } from '../db/client';
import { takeComplianceSnapshot } from '../db/dashboard';
import type { Logger } from '../logging';

export interface DashboardJobsOptions {
  db: Db;
  logger: Logger;
  /** How often to try a snapshot; default hourly. */
  snapshotEveryMs?: number;
  now?: () => Date;
}

export interface DashboardJobs {
  /** Takes one snapshot now (if the last is over an hour old); resolves false when it skipped or failed (failures are logged). */
  runOnce(): Promise<boolean>;
  stop(): void;
}

export function startDashboardJobs(o: DashboardJobsOptions): DashboardJobs {
  const now = o.now ?? (() => new Date());
  const runOnce = () =>
    takeComplianceSnapshot(o.db, { now: now() }).catch((err: unknown) => {
      o.logger.warn({ err }, 'compliance snapshot failed');
      return false;
    });
  // A tick while the last one still runs is skipped, so a slow database never gets overlapping snapshots.
  let running: Promise<boolean> | null = null;
  const tick = () => {
    running ??= runOnce().finally(() => (running = null));
  };
  const timer = setInterval(tick, o.snapshotEveryMs ?? 3_600_000);
  timer.unref();
  return { runOnce, stop: () => clearInterval(timer) };
}
