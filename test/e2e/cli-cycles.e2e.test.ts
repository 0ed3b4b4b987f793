/** The cycle verbs of the real `patchops` CLI process, against a real database and Temporal server. */
import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { NativeConnection, Worker } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, it, inject } from 'vitest';
import { createActivities } from '../../src/activities/index';
import { createLogger } from '../../src/logging';
import { TaskQueue } from '../../src/temporal/task-queues';
import { freePort } from '../../src/temporal/dev-server';
import { createTestDatabase, type TestDatabase } from '../helpers/db';
import { grantApprovers, seedFleet } from '../helpers/cycle-fixtures';
import { startFakeAgent } from '../helpers/fake-agent';

const root = path.resolve(import.meta.dirname, '..', '..');

function cli(args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [path.join(root, 'bin', 'patchops.mjs'), ...args], { cwd: root, env, timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

let db: TestDatabase;
let env: NodeJS.ProcessEnv;

beforeAll(async () => {
  db = await createTestDatabase();
  env = { PATH: process.env.PATH, HOME: process.env.HOME, DATABASE_URL: db.url, TEMPORAL_ADDRESS: inject('temporalAddress'), LOG_LEVEL: 'silent' };
});
afterAll(async () => {
  await db?.close();
});

describe('patchops cycle verbs', () => {
  it('bad words print the usage and exit 2, without a stack trace', async () => {
    const r = await cli(['start'], env);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('start <policy> [scope…] [--emergency]');
    expect(r.stderr).not.toMatch(/\bat .*\.ts:\d+/);
  });

  it('says plainly when no patchops is running', async () => {
    const r = await cli(['cycles'], { PATH: process.env.PATH, HOME: process.env.HOME, PATCHOPS_EMBEDDED_PG_PORT: String(await freePort()), LOG_LEVEL: 'silent' });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/nothing answers at the embedded database on 127\.0\.0\.1:\d+ .*Is `patchops up` \(npm start\) running\?/s);
  });

  it('policies set/list, start, a refused and an accepted approval, status', async () => {
    const f = await seedFleet(db.db, { prefix: 'cli', testEndpoints: 0, endpoints: 2 });
    const file = path.join(await fs.mkdtemp(path.join(os.tmpdir(), 'patchops-cli-')), 'policy.json');
    await fs.writeFile(file, JSON.stringify({ name: 'cli-test', test: { group: null }, waves: [{ name: 'all', percent: 100 }], maintenance: { respectWindows: false }, jobs: { pollIntervalSeconds: 1, unreachableAfterSeconds: 60 } }));
    const set = await cli(['policies', 'set', file, '--as', 'cli:admin'], env);
    expect(set).toMatchObject({ code: 0, stdout: 'policy cli-test saved as version 1\n' });
    expect((await cli(['policies', 'list'], env)).stdout).toMatch(/^cli-test\s+v1/m);
    await grantApprovers(db.db, ['cli:bob'], 'default');

    const connection = await NativeConnection.connect({ address: inject('temporalAddress') });
    const worker = await Worker.create({
      connection,
      taskQueue: TaskQueue.cycles,
      workflowBundle: { codePath: inject('workflowBundlePath') },
      activities: createActivities({ database: db, logger: createLogger('silent') }),
    });
    const agent = startFakeAgent(db.db);
    try {
      await worker.runUntil(async () => {
        const start = await cli(['start', 'cli-test', `group:${f.prodGroup}`, '--as', 'cli:alice'], env);
        expect(start.code).toBe(0);
        const cycleId = /cycle (\S+) started/.exec(start.stdout)?.[1];
        expect(cycleId).toBeTruthy();
        let status = '';
        for (let i = 0; i < 40 && !status.includes('AWAIT_APPROVAL'); i++) {
          status = (await cli(['status', cycleId!], env)).stdout;
          if (!status.includes('AWAIT_APPROVAL')) await new Promise((r) => setTimeout(r, 500));
        }
        expect(status).toContain(`${cycleId} — AWAIT_APPROVAL`);
        const own = await cli(['approve', cycleId!, '--as', 'cli:alice'], env);
        expect(own.code).toBe(1);
        expect(own.stderr).toContain('you requested this cycle; someone else must approve');
        const ok = await cli(['approve', cycleId!, '--as', 'bob'], env);
        expect(ok).toMatchObject({ code: 0, stdout: `approved ${cycleId}: 1 of 1 — approved\n` });
        for (let i = 0; i < 40 && !status.includes('COMPLETED'); i++) {
          status = (await cli(['status', cycleId!, '--json'], env)).stdout;
          if (!status.includes('COMPLETED')) await new Promise((r) => setTimeout(r, 500));
        }
        expect(JSON.parse(status)).toMatchObject({ cycleId, stage: 'COMPLETED' });
      });
    } finally {
      await agent.stop();
      await connection.close();
    }
  }, 180_000);
});
