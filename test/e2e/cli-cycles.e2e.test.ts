/** The cycle verbs of the real `patchops` CLI process, logged in to a server (the API on a real database and Temporal). */
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import { Client, Connection } from '@temporalio/client';
import { NativeConnection, Worker } from '@temporalio/worker';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it, inject } from 'vitest';
import { createActivities } from '../../src/activities/index';
import { apiRoutes } from '../../src/api/index';
import { buildServer } from '../../src/server/app';
import { createCycleService } from '../../src/services/temporal-cycle-service';
import { createLogger } from '../../src/logging';
import { TaskQueue } from '../../src/temporal/task-queues';
import { freePort } from '../helpers/free-port';
import { createTestDatabase, type TestDatabase } from '../helpers/db';
import { seedFleet } from '../helpers/cycle-fixtures';
import { cliWithConfigHome, loggedInCli } from '../helpers/cli-session';
import { startFakeAgent } from '../helpers/fake-agent';

let db: TestDatabase;
let app: FastifyInstance;
let temporal: Connection;
let base: string;

beforeAll(async () => {
  db = await createTestDatabase();
  // The server the CLI talks to: the API over the real cycle service (Temporal of the test run), on 127.0.0.1.
  temporal = await Connection.connect({ address: inject('temporalAddress') });
  const service = createCycleService({ client: new Client({ connection: temporal }), db: db.db });
  app = await buildServer({
    logger: createLogger('silent'),
    health: [],
    routes: [apiRoutes({ db: db.db, service, logger: createLogger('silent') })],
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  await app?.close();
  await temporal?.close();
  await db?.close();
});

describe('patchops cycle verbs', () => {
  it('bad words print the usage and exit 2, without a stack trace', async () => {
    const { cli } = await cliWithConfigHome();
    const r = await cli(['start']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('start <policy> [scope…] [--emergency]');
    expect(r.stderr).not.toMatch(/\bat .*\.ts:\d+/);
  });

  it('says plainly when nobody is logged in, and when the server is down', async () => {
    const { cli, configHome } = await cliWithConfigHome();
    const none = await cli(['cycles']);
    expect(none.code).toBe(1);
    expect(none.stderr).toContain('not logged in');
    expect(none.stderr).toContain('patchops login --server');
    const dead = `http://127.0.0.1:${await freePort()}`;
    await fs.mkdir(path.join(configHome, 'patchops'), { recursive: true });
    await fs.writeFile(
      path.join(configHome, 'patchops', 'credentials.json'),
      JSON.stringify({ server: dead, token: `pat_${'0'.repeat(16)}_${'A'.repeat(43)}` }),
    );
    const down = await cli(['cycles']);
    expect(down.code).toBe(1);
    expect(down.stderr).toMatch(
      /nothing answers at http:\/\/127\.0\.0\.1:\d+ .*Is `patchops up` \(npm start\) running there\?/s,
    );
  });

  it('policies set/list, start, a refused and an accepted approval, status', async () => {
    const f = await seedFleet(db.db, { prefix: 'cli', testEndpoints: 0, endpoints: 2 });
    const file = path.join(await fs.mkdtemp(path.join(os.tmpdir(), 'patchops-cli-')), 'policy.json');
    await fs.writeFile(
      file,
      JSON.stringify({
        name: 'cli-test',
        test: { group: null },
        waves: [{ name: 'all', percent: 100 }],
        maintenance: { respectWindows: false },
        jobs: { pollIntervalSeconds: 1, unreachableAfterSeconds: 60 },
      }),
    );
    const cli = await loggedInCli(base, db.db, { username: 'alice', role: 'admin' });
    const bob = await loggedInCli(base, db.db, { username: 'bob', role: 'approver' });
    const set = await cli(['policies', 'set', file]);
    expect(set).toMatchObject({ code: 0, stdout: 'policy cli-test saved as version 1\n' });
    expect((await cli(['policies', 'list'])).stdout).toMatch(/^cli-test\s+v1/m);

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
        const start = await cli(['start', 'cli-test', `group:${f.prodGroup}`]);
        expect(start.code).toBe(0);
        const cycleId = /cycle (\S+) started/.exec(start.stdout)?.[1];
        expect(cycleId).toBeTruthy();
        let status = '';
        for (let i = 0; i < 40 && !status.includes('AWAIT_APPROVAL'); i++) {
          status = (await cli(['status', cycleId!])).stdout;
          if (!status.includes('AWAIT_APPROVAL')) await new Promise((r) => setTimeout(r, 500));
        }
        expect(status).toContain(`${cycleId} — AWAIT_APPROVAL`);
        const own = await cli(['approve', cycleId!]);
        expect(own.code).toBe(1);
        expect(own.stderr).toContain('you requested this cycle; someone else must approve');
        const ok = await bob(['approve', cycleId!]);
        expect(ok).toMatchObject({ code: 0, stdout: `approved ${cycleId}: 1 of 1 — approved\n` });
        for (let i = 0; i < 40 && !status.includes('COMPLETED'); i++) {
          status = (await cli(['status', cycleId!, '--json'])).stdout;
          if (!status.includes('COMPLETED')) await new Promise((r) => setTimeout(r, 500));
        }
        expect(JSON.parse(status)).toMatchObject({ verb: 'status', status: { cycleId, stage: 'COMPLETED' } });
      });
    } finally {
      await agent.stop();
      await connection.close();
    }
  }, 180_000);
});
