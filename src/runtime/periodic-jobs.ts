/**
 * The server's periodic jobs in one place: each runs at start (unless `runAtStart` is false) and then every `everyMs`
 * after the previous run ended (runs of one job never overlap; the timers do not keep the process alive). A failed
 * run is logged and retried at the next tick. Started by the runtime wiring (up.ts) in the process that serves
 * agents; stop() waits for a run in progress.
 */
import type { Db } from '../db/client';
import { refreshManifestIfDue } from '../db/repository';
import type { SecretBox } from '../db/secret-box';
import type { Logger } from '../logging';
import { repeatEvery } from '../shared/repeat';

export interface PeriodicJob {
  /** For logs: what the job keeps up. */
  name: string;
  everyMs: number;
  /** Run once at start too (default true); false waits `everyMs` first. */
  runAtStart?: boolean;
  run(): Promise<void>;
}

export interface RunningPeriodicJobs {
  stop(): Promise<void>;
}

export function startPeriodicJobs(jobs: readonly PeriodicJob[], logger: Logger): RunningPeriodicJobs {
  const running = jobs.map((job) =>
    repeatEvery(() => job.run(), job.everyMs, {
      runAtStart: job.runAtStart,
      unref: true,
      onError: (err) => logger.warn({ err, job: job.name }, `periodic job "${job.name}" failed; will retry`),
    }),
  );
  return {
    async stop() {
      await Promise.all(running.map((r) => r.stop()));
    },
  };
}

/** How often the repository manifest is checked for re-signing by default. */
const MANIFEST_CHECK_MS = 10 * 60_000;

/**
 * Keeps the repository manifest from expiring: re-signs it once it has used half its lifetime (refreshManifestIfDue;
 * several server processes may run this, the check is made under the publish lock).
 */
export function manifestResigningJob(o: {
  db: Db;
  secretBox: SecretBox;
  logger: Logger;
  everyMs?: number;
  now?: () => Date;
}): PeriodicJob {
  const now = o.now ?? (() => new Date());
  return {
    name: 'manifest re-signing',
    everyMs: o.everyMs ?? MANIFEST_CHECK_MS,
    async run() {
      const m = await refreshManifestIfDue(o.db, o.secretBox, now());
      if (m)
        o.logger.info(
          { version: m.version, expiresAt: m.expiresAt },
          'repository manifest re-signed before it expires',
        );
    },
  };
}
