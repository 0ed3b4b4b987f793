/**
 * The gateway under overload (issue #15): a database pool far too small for the fleet, every agent reporting at
 * once. Overload is answered 503 with Retry-After, never 500; the agents come back after it and every result is
 * accepted; no job is left leased. And a process holds only so many long polls.
 */
import { inArray, sql } from 'drizzle-orm';
import { drizzle } from 'drizzle-orm/node-postgres';
import type { FastifyInstance } from 'fastify';
import pg from 'pg';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../test/helpers/db';
import { GatewayClient } from '../agent/client';
import { SimFleet } from '../agent-sim/fleet';
import { addEnrollSecret } from '../db/agent-enroll-secrets';
import { enrollAgent } from '../db/agent-enrolment';
import type { Database } from '../db/client';
import { agentJobs, endpoints } from '../db/schema/index';
import * as schema from '../db/schema/index';
import { SecretBox } from '../db/secret-box';
import { createLogger } from '../logging';
import { createAgentGateway, type AgentGateway, type AgentGatewayOptions } from './agent-gateway';
import { buildServer } from './app';

const SECRET = 'overload-secret-0123456789';
const secretBox = SecretBox.ephemeral();
let tdb: TestDatabase;

beforeAll(async () => {
  tdb = await createTestDatabase();
  await addEnrollSecret(tdb.db, { name: 'overload', secret: SECRET });
});
afterAll(async () => {
  await tdb?.close();
});

/** A gateway on loopback over its own pool, counting every status it answers. */
async function startGateway(
  pool: { max: number; connectionTimeoutMillis: number },
  options: Partial<AgentGatewayOptions> = {},
) {
  const p = new pg.Pool({ connectionString: tdb.url, ...pool });
  p.on('error', () => undefined);
  const database: Database = { db: drizzle(p, { schema, casing: 'snake_case' }), pool: p, close: () => p.end() };
  const logger = createLogger('silent');
  const gateway = createAgentGateway({
    database,
    secretBox,
    logger,
    refreshMs: 100,
    scanOnFirstEnrolment: false,
    ...options,
  });
  const app = await buildServer({ logger, health: [], routes: [gateway.routes] });
  const statuses: Record<number, number> = {};
  const retryAfter: string[] = [];
  app.addHook('onResponse', async (_req, reply) => {
    statuses[reply.statusCode] = (statuses[reply.statusCode] ?? 0) + 1;
    if (reply.statusCode === 503) retryAfter.push(String(reply.getHeader('retry-after')));
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const url = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`;
  return { app, gateway, url, statuses, retryAfter, database };
}

/** An agent enrolled straight in the database (no first scan), and a client speaking for it to the gateway. */
async function enrolledClient(url: string, name: string) {
  const { nodeKey, endpointId } = await enrollAgent(
    tdb.db,
    { enrollSecret: SECRET, machineId: `${name}-machine`, hostname: name, osFamily: 'linux', agentVersion: 'test' },
    new Date(),
    { scanOnFirstEnrolment: false },
  );
  const client = new GatewayClient(url);
  client.nodeKey = nodeKey;
  return { client, nodeKey, endpointId };
}

describe('agent gateway under overload', () => {
  let running: { app: FastifyInstance; gateway: AgentGateway; database: Database } | undefined;
  afterAll(async () => {
    await running?.app.close();
    await running?.database.close();
  });

  it('answers a scan burst on an exhausted pool with 503 + Retry-After, never 500; every result is accepted and no job stays leased', async () => {
    const N = 120;
    // Two connections, and a pool that gives up after 150 ms: the "timeout exceeded when trying to connect" of the issue.
    // Lease queries uncapped (by default one at a time here: half the pool), so the whole fleet's leases and results
    // meet the pool at once and it is exhausted: what this test is about is how the gateway answers then.
    const g = await startGateway({ max: 2, connectionTimeoutMillis: 150 }, { leaseConcurrency: N });
    running = g;
    const ac = new AbortController();
    const fleet = new SimFleet({
      serverUrl: g.url,
      enrollSecret: SECRET,
      count: N,
      prefix: 'burst',
      waitSeconds: 2,
      seed: 11,
      enrollConcurrency: 32,
      log: pino({ level: 'silent' }),
      signal: ac.signal,
    });
    await fleet.enroll();
    expect(fleet.stats.enrolled).toBe(N);
    const eps = await tdb.db
      .select({ id: endpoints.id })
      .from(endpoints)
      .where(sql`${endpoints.hostname} like 'burst-%'`);
    expect(eps).toHaveLength(N);
    const run = fleet.run();
    try {
      // Let every agent settle into its long poll, then hand everyone a scan at once.
      await new Promise((r) => setTimeout(r, 500));
      await tdb.db
        .insert(agentJobs)
        .values(eps.map((e) => ({ id: `burst-scan-${e.id}`, endpointId: e.id, kind: 'scan', payload: {} })));
      g.gateway.wake(eps.map((e) => e.id));
      await expect
        .poll(
          async () =>
            (
              await tdb.db.execute<{ n: number }>(
                sql`select count(*)::int as n from agent_jobs where id like 'burst-scan-%' and state = 'succeeded'`,
              )
            ).rows[0]!.n,
          {
            timeout: 90_000,
            interval: 500,
          },
        )
        .toBe(N);
    } finally {
      ac.abort();
      await run;
    }
    // The burst did overload the pool (else this test proves nothing), and the gateway said so with 503 + Retry-After.
    expect(g.statuses[503] ?? 0).toBeGreaterThan(0);
    // Whole seconds, 1–5 at the least, longer while the queue is long (about its drain time), at most a minute.
    expect(g.retryAfter.every((v) => /^\d+$/.test(v) && Number(v) >= 1 && Number(v) <= 60)).toBe(true);
    expect(g.statuses[500] ?? 0).toBe(0);
    expect(fleet.stats.statuses[500] ?? 0).toBe(0);
    expect(fleet.stats.refusedResults).toBe(0);
    expect(fleet.stats.resultRetries).toBeGreaterThan(0);
    expect(g.gateway.stats().overloaded).toBe(g.statuses[503]);
    const leased = await tdb.db.execute<{ n: number }>(
      sql`select count(*)::int as n from agent_jobs where id like 'burst-scan-%' and state <> 'succeeded'`,
    );
    expect(leased.rows[0]!.n).toBe(0);
    // Every endpoint's scan landed: each reported 3 or more missing patches.
    const reported = await tdb.db.execute<{ n: number }>(
      sql`select count(distinct endpoint_id)::int as n from endpoint_patches where last_job_id like 'burst-scan-%'`,
    );
    expect(reported.rows[0]!.n).toBe(N);
  }, 150_000);
});

describe('held long polls per process', () => {
  let running: { app: FastifyInstance; database: Database } | undefined;
  afterAll(async () => {
    await running?.app.close();
    await running?.database.close();
  });

  it('holds at most maxHeldPolls; the next poll is answered at once, empty, with a Retry-After', async () => {
    const g = await startGateway(
      { max: 4, connectionTimeoutMillis: 10_000 },
      { maxHeldPolls: 2, pollIntervalSeconds: 3 },
    );
    running = g;
    const clients = await Promise.all(
      [0, 1, 2].map(async (i) => {
        const c = new GatewayClient(g.url);
        const res = await c.enroll({
          enrollSecret: SECRET,
          machineId: `held-machine-${i}`,
          hostname: `held-${i}`,
          osFamily: 'linux',
          agentVersion: 'test',
        });
        c.nodeKey = res.nodeKey;
        return c;
      }),
    );
    await new Promise((r) => setTimeout(r, 300)); // the first work-hint refresh
    const held = [clients[0]!.poll(5), clients[1]!.poll(5)];
    await expect.poll(() => g.gateway.stats().heldPolls, { timeout: 5000 }).toBe(2);
    const started = Date.now();
    const third = await clients[2]!.poll(5);
    expect(Date.now() - started).toBeLessThan(2000);
    expect(third.jobs).toEqual([]);
    // pollInterval + a spread of up to twice it: 3–8 s.
    expect(third.retryAfterMs).toBeGreaterThanOrEqual(3000);
    expect(third.retryAfterMs).toBeLessThanOrEqual(8000);
    expect(g.gateway.stats()).toMatchObject({ heldPolls: 2, maxHeldPolls: 2, pollsNotHeld: 1 });
    // A job for the unheld agent still reaches it on its next (immediate) poll: capping holds never hides work.
    const [ep] = await g.database.db
      .select({ id: endpoints.id })
      .from(endpoints)
      .where(sql`${endpoints.hostname} = 'held-2'`);
    await g.database.db
      .insert(agentJobs)
      .values({ id: `held-scan-${ep!.id}`, endpointId: ep!.id, kind: 'scan', payload: {} });
    g.gateway.wake([ep!.id]);
    const next = await clients[2]!.poll(5);
    expect(next.jobs.map((j) => j.id)).toEqual([`held-scan-${ep!.id}`]);
    await Promise.all(held);
    expect(g.gateway.stats().heldPolls).toBe(0);
  }, 30_000);
});

describe('refusals that tell the agent when to come back', () => {
  let running: { app: FastifyInstance; database: Database } | undefined;
  afterAll(async () => {
    await running?.app.close();
    await running?.database.close();
  });

  it('one poll too many is 429 with Retry-After; past dbQueueLimit a result is shed at once with 503 + Retry-After', async () => {
    // dbQueueLimit 0: every request that would need a database connection for its work is shed.
    const g = await startGateway(
      { max: 2, connectionTimeoutMillis: 10_000 },
      { dbQueueLimit: 0, pollIntervalSeconds: 4, maxConcurrentPollsPerAgent: 1 },
    );
    running = g;
    const { client: c } = await enrolledClient(g.url, 'refusal-1');
    await new Promise((r) => setTimeout(r, 300)); // the first work-hint refresh: an idle poll needs no database
    const held = c.poll(2);
    await expect.poll(() => g.gateway.stats().heldPolls, { timeout: 5000 }).toBe(1);
    await expect(c.poll(2)).rejects.toMatchObject({ status: 429, code: 'TOO_MANY_POLLS', retryAfterMs: 4000 });
    await held;
    const started = Date.now();
    const err = await c
      .result('no-such-job', { status: 'succeeded', patches: [], rebootPending: false })
      .catch((e: unknown) => e);
    expect(Date.now() - started).toBeLessThan(2000);
    expect(err).toMatchObject({ status: 503, code: 'OVERLOADED' });
    expect((err as { retryAfterMs: number }).retryAfterMs).toBeGreaterThanOrEqual(1000);
    expect((err as { retryAfterMs: number }).retryAfterMs).toBeLessThanOrEqual(5000);
    expect(g.statuses[500] ?? 0).toBe(0);
  }, 30_000);
});

describe('leases give way to results', () => {
  let running: { app: FastifyInstance; database: Database } | undefined;
  afterAll(async () => {
    await running?.app.close();
    await running?.database.close();
  });

  it('a held poll with work does not queue for the database behind waiting requests; it leases once they are served', async () => {
    // One connection; no refresh after the first (nor distribution-point reload), so hardly anything but this
    // test uses the pool. Whether the poll queued for it is read from leaseQueries, whatever else waits.
    const g = await startGateway(
      { max: 1, connectionTimeoutMillis: 20_000 },
      { refreshMs: 600_000, distributionPointsRefreshMs: 600_000 },
    );
    running = g;
    const { client: c, endpointId } = await enrolledClient(g.url, 'defer-1');
    await c.poll(0); // the node key is cached: polling needs the database only to lease
    const pool = g.database.pool!;
    await expect
      .poll(() => pool.waitingCount === 0 && pool.idleCount === pool.totalCount, { timeout: 10_000 })
      .toBe(true);
    // The one connection is busy (a result being written): the poll holds instead of queueing for it.
    const busy = await pool.connect();
    let released = false;
    try {
      await tdb.db.insert(agentJobs).values({ id: `defer-scan-${endpointId}`, endpointId, kind: 'scan', payload: {} });
      g.gateway.wake([endpointId]);
      const polled = c.poll(20);
      await expect.poll(() => g.gateway.stats().leasesDeferred, { timeout: 5000 }).toBeGreaterThan(1);
      await new Promise((r) => setTimeout(r, 500));
      expect(g.gateway.stats()).toMatchObject({ heldPolls: 1, leaseQueries: 0 });
      // And a request waits for it (a burst of results): still held, looking again every few hundred ms, never
      // joining the queue.
      const queued = pool.query('select 1');
      expect(pool.waitingCount).toBeGreaterThanOrEqual(1);
      await new Promise((r) => setTimeout(r, 700));
      expect(g.gateway.stats()).toMatchObject({ heldPolls: 1, leaseQueries: 0 });
      busy.release();
      released = true;
      await queued;
      const started = Date.now();
      const res = await polled;
      expect(res.jobs.map((j) => j.id)).toEqual([`defer-scan-${endpointId}`]);
      expect(Date.now() - started).toBeLessThan(5000);
      expect(g.gateway.stats().leaseQueries).toBe(1);
      expect(g.statuses[503] ?? 0).toBe(0);

      // Say that answer never reached the agent, and it says so (lost=1) while the connection is busy again: the poll
      // ends before the server could look, and its answer does not claim it did, so the agent says it again.
      const busyAgain = await pool.connect();
      let lostAnswer;
      c.lostAnswer = true;
      try {
        lostAnswer = await c.poll(1);
      } finally {
        busyAgain.release();
      }
      expect(lostAnswer).toMatchObject({ jobs: [] });
      expect(lostAnswer.lostChecked).toBeUndefined();
      expect(c.lostAnswer).toBe(true);
      const again = await c.poll(1);
      expect(again.jobs.map((j) => j.id)).toEqual([`defer-scan-${endpointId}`]);
      expect(again.lostChecked).toBe(true);
      expect(c.lostAnswer).toBe(false);
    } finally {
      if (!released) busy.release();
    }
  }, 30_000);
});

describe('a wave of held polls woken at once', () => {
  let running: { app: FastifyInstance; database: Database } | undefined;
  afterAll(async () => {
    await running?.app.close();
    await running?.database.close();
  });

  it('leases for the polls woken together in one statement, at most leaseConcurrency (half the pool) at once, and every agent gets its job', async () => {
    const g = await startGateway(
      { max: 4, connectionTimeoutMillis: 20_000 },
      { refreshMs: 600_000, distributionPointsRefreshMs: 600_000 },
    );
    running = g;
    const agents = (await Promise.all(Array.from({ length: 16 }, (_, i) => enrolledClient(g.url, `wave-${i}`)))).map(
      ({ client, endpointId }) => ({ c: client, endpointId }),
    );
    // Every agent has polled once (its key cached, nothing to lease); then all hold a long poll.
    for (const a of agents) await a.c.poll(0);
    const polls = agents.map((a) => a.c.poll(20));
    await expect.poll(() => g.gateway.stats().heldPolls, { timeout: 10_000 }).toBe(agents.length);
    const before = g.gateway.stats();
    await tdb.db.insert(agentJobs).values(
      agents.map((a) => ({
        id: `wave-install-${a.endpointId}`,
        endpointId: a.endpointId,
        kind: 'install',
        payload: {},
      })),
    );
    g.gateway.wake(agents.map((a) => a.endpointId));
    const answers = await Promise.all(polls);
    expect(answers.map((r) => r.jobs.map((j) => j.id))).toEqual(agents.map((a) => [`wave-install-${a.endpointId}`]));
    const stats = g.gateway.stats();
    // Sixteen polls, one lease each, in one or two statements (not sixteen round trips).
    expect(stats.polledLeases - before.polledLeases).toBe(agents.length);
    expect(stats.leaseQueries - before.leaseQueries).toBeLessThanOrEqual(2);
    expect(stats.maxLeasesInFlight).toBeLessThanOrEqual(2);
    // And their sixteen results, sent at once, go through the batched statements (how many share one depends on
    // when each arrives: StatementBatcher's own tests), every one recorded.
    const outcomes = await Promise.all(
      agents.map((a) =>
        a.c.result(`wave-install-${a.endpointId}`, { status: 'succeeded', patches: [], rebootPending: false }),
      ),
    );
    expect(outcomes.map((o) => o.outcome)).toEqual(agents.map(() => 'recorded'));
    const after = g.gateway.stats();
    expect(after.batchedResults - stats.batchedResults).toBe(agents.length);
    expect(after.resultStatements - stats.resultStatements).toBeGreaterThanOrEqual(1);
    expect(after.resultStatements - stats.resultStatements).toBeLessThanOrEqual(agents.length);
    const rows = await tdb.db
      .select({ state: agentJobs.state })
      .from(agentJobs)
      .where(
        inArray(
          agentJobs.id,
          agents.map((a) => `wave-install-${a.endpointId}`),
        ),
      );
    expect(rows.map((r) => r.state)).toEqual(agents.map(() => 'succeeded'));
    expect(g.statuses[503] ?? 0).toBe(0);
  }, 30_000);
});

describe('a newer poll of the same agent', () => {
  let running: { app: FastifyInstance; database: Database } | undefined;
  afterAll(async () => {
    await running?.app.close();
    await running?.database.close();
  });

  it('supersedes the older one: it is answered at once, empty, and the newer one gets the work', async () => {
    const g = await startGateway(
      { max: 4, connectionTimeoutMillis: 20_000 },
      { refreshMs: 600_000, distributionPointsRefreshMs: 600_000 },
    );
    running = g;
    // Two clients with one key: the agent's abandoned request (its time-out) and the one it sent after it.
    const { client: older, nodeKey, endpointId } = await enrolledClient(g.url, 'newer-1');
    const newer = new GatewayClient(g.url);
    newer.nodeKey = nodeKey;
    await older.poll(0);
    const first = older.poll(20);
    await expect.poll(() => g.gateway.stats().heldPolls, { timeout: 5000 }).toBe(1);
    const started = Date.now();
    const second = newer.poll(20);
    expect((await first).jobs).toEqual([]);
    expect(Date.now() - started).toBeLessThan(5000);
    await tdb.db.insert(agentJobs).values({ id: `newer-scan-${endpointId}`, endpointId, kind: 'scan', payload: {} });
    g.gateway.wake([endpointId]);
    expect((await second).jobs.map((j) => j.id)).toEqual([`newer-scan-${endpointId}`]);
  }, 30_000);
});

describe('a result statement that fails', () => {
  let running: { app: FastifyInstance; database: Database } | undefined;
  afterAll(async () => {
    await tdb.db.execute(sql`drop trigger if exists poison_batch on agent_jobs`);
    await running?.app.close();
    await running?.database.close();
  });

  it("loses none of its results: each is recorded alone, as recordJobResult's transaction answers it", async () => {
    // A trigger that fails any batched result statement (recordPatchJobResults' `with r as (select * from unnest…`)
    // carrying the "poison" result; the transaction path writes the same row with another statement, and passes.
    await tdb.db.execute(sql`
      create or replace function poison_batch() returns trigger language plpgsql as $$
      begin
        if new.error = 'poison' and current_query() like '%unnest%' then raise exception 'poisoned batch'; end if;
        return new;
      end $$`);
    await tdb.db.execute(sql`
      create trigger poison_batch before update on agent_jobs for each row execute function poison_batch()`);
    const g = await startGateway({ max: 4, connectionTimeoutMillis: 20_000 }, { refreshMs: 600_000 });
    running = g;
    const agents = await Promise.all(Array.from({ length: 6 }, (_, i) => enrolledClient(g.url, `poison-${i}`)));
    await tdb.db.insert(agentJobs).values(
      agents.map((a) => ({
        id: `poison-install-${a.endpointId}`,
        endpointId: a.endpointId,
        kind: 'install',
        payload: {},
        state: 'leased',
        leaseExpiresAt: new Date(Date.now() + 60_000),
      })),
    );
    const before = g.gateway.stats();
    const outcomes = await Promise.all(
      agents.map((a, i) =>
        a.client.result(`poison-install-${a.endpointId}`, {
          status: i === 0 ? 'failed' : 'succeeded',
          patches: [],
          rebootPending: false,
          ...(i === 0 ? { error: 'poison' } : {}),
        }),
      ),
    );
    expect(outcomes.map((o) => o.outcome)).toEqual(agents.map(() => 'recorded'));
    expect(g.gateway.stats().batchedResults - before.batchedResults).toBe(agents.length);
    const rows = await tdb.db
      .select({ id: agentJobs.id, state: agentJobs.state, error: agentJobs.error })
      .from(agentJobs)
      .where(
        inArray(
          agentJobs.id,
          agents.map((a) => `poison-install-${a.endpointId}`),
        ),
      );
    expect(Object.fromEntries(rows.map((r) => [r.id, [r.state, r.error]]))).toEqual(
      Object.fromEntries(
        agents.map((a, i) => [`poison-install-${a.endpointId}`, i === 0 ? ['failed', 'poison'] : ['succeeded', null]]),
      ),
    );
    expect(g.statuses[503] ?? 0).toBe(0);
    expect(g.statuses[500] ?? 0).toBe(0);
  }, 30_000);
});
