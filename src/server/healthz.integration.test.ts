import { afterAll, describe, expect, it } from 'vitest';
import { createTestDatabase } from '../../test/helpers/db';
import { createLogger } from '../logging';
import { buildServer } from './app';
import type { HealthCheck } from '../shared/contracts';
import { sql } from 'drizzle-orm';

describe('GET /healthz', () => {
  const closers: Array<() => Promise<void>> = [];
  afterAll(async () => {
    for (const c of closers) await c();
  });

  it('is 200 with every dependency up, 503 naming the one that stopped', async () => {
    const db = await createTestDatabase({ migrate: false });
    let dbClosed = false;
    closers.push(async () => {
      if (!dbClosed) await db.close();
    });
    const health: HealthCheck[] = [
      { name: 'database', check: async () => (await db.db.execute(sql`select 1`), { status: 'up' }) },
      { name: 'slack', check: async () => ({ status: 'off', detail: 'SLACK_BOT_TOKEN not set' }) },
    ];
    const app = await buildServer({ logger: createLogger('silent'), health });
    closers.push(() => app.close());

    const up = await app.inject({ method: 'GET', url: '/healthz' });
    expect(up.statusCode).toBe(200);
    expect(up.json()).toEqual({
      status: 'ok',
      dependencies: { database: { status: 'up' }, slack: { status: 'off', detail: 'SLACK_BOT_TOKEN not set' } },
    });

    await db.close(); // the database goes away
    dbClosed = true;
    const down = await app.inject({ method: 'GET', url: '/healthz' });
    expect(down.statusCode).toBe(503);
    expect(down.json().status).toBe('degraded');
    expect(down.json().dependencies.database.status).toBe('down');
    expect(down.json().dependencies.slack.status).toBe('off');
  });

  it('counts a check that hangs as down', async () => {
    const app = await buildServer({
      logger: createLogger('silent'),
      health: [{ name: 'temporal', check: () => new Promise(() => undefined) }],
    });
    closers.push(() => app.close());
    const res = await app.inject({ method: 'GET', url: '/healthz' });
    expect(res.statusCode).toBe(503);
    expect(res.json().dependencies.temporal).toEqual({ status: 'down', detail: 'no answer within 3000 ms' });
  });
});
