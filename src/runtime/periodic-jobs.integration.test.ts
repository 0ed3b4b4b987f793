import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../test/helpers/db';
import { latestManifest, publishManifest } from '../db/repository';
import { SecretBox } from '../db/secret-box';
import { createLogger } from '../logging';
import type { ManifestBody } from '../shared/agent-protocol';
import { manifestResigningJob, startPeriodicJobs } from './periodic-jobs';

let tdb: TestDatabase;
const secretBox = SecretBox.ephemeral();

beforeAll(async () => {
  tdb = await createTestDatabase();
});
afterAll(async () => {
  await tdb?.close();
});

describe('manifest upkeep', () => {
  it('a running server re-signs the manifest before it expires, so file installs keep working without an admin', async () => {
    // Published two hours ago for three hours: one hour left, less than half its lifetime.
    const files = [{ name: '7z2409-x64.msi', sha256: 'c'.repeat(64), size: 1_593_344 }];
    const old = await publishManifest(tdb.db, secretBox, files, {
      ttlHours: 3,
      now: new Date(Date.now() - 2 * 3600_000),
    });
    const logger = createLogger('silent');
    const g = startPeriodicJobs([manifestResigningJob({ db: tdb.db, secretBox, logger, everyMs: 50 })], logger);
    try {
      const end = Date.now() + 10_000;
      let latest = await latestManifest(tdb.db);
      while (JSON.parse(latest!.body).version === old.version && Date.now() < end) {
        await new Promise((r) => setTimeout(r, 50));
        latest = await latestManifest(tdb.db);
      }
      const body = JSON.parse(latest!.body) as ManifestBody;
      expect(body.version).toBe(old.version + 1);
      expect(body.files).toEqual(files);
      expect(Date.parse(body.expiresAt)).toBeGreaterThan(Date.now() + 2.9 * 3600_000);
      // Checked again every 50 ms, but not re-signed again: it is fresh now.
      await new Promise((r) => setTimeout(r, 300));
      expect(JSON.parse((await latestManifest(tdb.db))!.body).version).toBe(body.version);
    } finally {
      await g.stop();
    }
  });
});

describe('startPeriodicJobs', () => {
  it('runs a job at once and again after each run, keeps going after a failed run, and stops', async () => {
    const logger = createLogger('silent');
    let runs = 0;
    const jobs = startPeriodicJobs(
      [
        {
          name: 'flaky',
          everyMs: 10,
          run: async () => {
            runs += 1;
            if (runs === 2) throw new Error('boom');
          },
        },
      ],
      logger,
    );
    const end = Date.now() + 5000;
    while (runs < 4 && Date.now() < end) await new Promise((r) => setTimeout(r, 10));
    await jobs.stop();
    expect(runs).toBeGreaterThanOrEqual(4);
    const stoppedAt = runs;
    await new Promise((r) => setTimeout(r, 50));
    expect(runs).toBe(stoppedAt);
  });

  it('with runAtStart false, waits everyMs before the first run', async () => {
    let runs = 0;
    const jobs = startPeriodicJobs(
      [{ name: 'later', everyMs: 200, runAtStart: false, run: async () => void (runs += 1) }],
      createLogger('silent'),
    );
    await new Promise((r) => setTimeout(r, 50));
    expect(runs).toBe(0);
    const end = Date.now() + 5000;
    while (runs === 0 && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
    await jobs.stop();
    expect(runs).toBe(1);
  });
});
