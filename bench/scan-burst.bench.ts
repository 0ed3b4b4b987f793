/**
 * Scan-burst benchmark (issue #15): N simulated agents (src/agent-sim, the real protocol over loopback HTTP) enrol
 * against the real gateway, settle into their long polls, and are then all handed a scan at once, as `scan all`
 * does. Measures how long until every scan result is accepted, and counts every HTTP status the gateway answered:
 * under overload it must answer 503 with Retry-After, never 500, and no job may be left leased.
 *
 *   DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres npm run bench:scan-burst
 *   BENCH_AGENTS=3000 BENCH_POOL=4 BENCH_POOL_TIMEOUT_MS=1000 npm run bench:scan-burst
 *
 * It creates a database of its own on DATABASE_URL's server (dropped at the end). The gateway gets a pool of
 * BENCH_POOL connections (default 10, the product's) that give up after BENCH_POOL_TIMEOUT_MS (default 10000, the
 * product's). The burst is given BENCH_DEADLINE_SECONDS (default 120); what is not accepted by then is reported.
 * Exits 1 when a 500 was answered or a scan was not accepted in time.
 */
import { randomBytes } from 'node:crypto';
import { drizzle } from 'drizzle-orm/node-postgres';
import pg from 'pg';
import { pino } from 'pino';
import { SimFleet } from '../src/agent-sim/fleet';
import { addEnrollSecret } from '../src/db/agent-enroll-secrets';
import { auditKeysFrom, useAuditKeys } from '../src/db/audit';
import type { Database } from '../src/db/client';
import { runMigrations } from '../src/db/migrate';
import * as schema from '../src/db/schema/index';
import { SecretBox } from '../src/db/secret-box';
import { createLogger } from '../src/logging';
import { createAgentGateway } from '../src/server/agent-gateway';
import { buildServer } from '../src/server/app';

const agents = Number(process.env.BENCH_AGENTS ?? 2000);
const poolMax = Number(process.env.BENCH_POOL ?? 10);
const poolTimeout = Number(process.env.BENCH_POOL_TIMEOUT_MS ?? 10_000);
const deadlineSeconds = Number(process.env.BENCH_DEADLINE_SECONDS ?? 120);
const SECRET = 'scan-burst-secret-0123456789';

async function count(pool: pg.Pool, where: string): Promise<number> {
  const r = await pool.query<{ n: number }>(
    `select count(*)::int as n from agent_jobs where kind = 'scan' and ${where}`,
  );
  return r.rows[0]!.n;
}

async function main() {
  const base = process.env.DATABASE_URL;
  if (!base)
    throw new Error(
      'DATABASE_URL is not set: the scan-burst bench needs a PostgreSQL server (it creates and drops a database of its own)',
    );
  const name = `patchops_scan_burst_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ connectionString: base });
  await admin.connect();
  await admin.query(`CREATE DATABASE "${name}"`);
  const u = new URL(base);
  u.pathname = `/${name}`;
  const secretBox = SecretBox.ephemeral();
  useAuditKeys(auditKeysFrom(secretBox)); // scan results append audit rows (new catalog patches)
  const pool = new pg.Pool({ connectionString: u.toString(), max: poolMax, connectionTimeoutMillis: poolTimeout });
  pool.on('error', () => undefined);
  const database: Database = { db: drizzle(pool, { schema, casing: 'snake_case' }), pool, close: () => pool.end() };
  const side = new pg.Pool({ connectionString: u.toString(), max: 2 });
  try {
    await runMigrations(database.db);
    await addEnrollSecret(database.db, { name: 'bench', secret: SECRET });
    const logger = createLogger('warn', 'bench');
    const gateway = createAgentGateway({ database, secretBox, logger, scanOnFirstEnrolment: false });
    const app = await buildServer({ logger, health: [], routes: [gateway.routes] });
    const statuses: Record<number, number> = {};
    app.addHook('onResponse', async (_req, reply) => {
      statuses[reply.statusCode] = (statuses[reply.statusCode] ?? 0) + 1;
    });
    await app.listen({ host: '127.0.0.1', port: 0 });
    const url = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`;
    console.log(
      `scan-burst benchmark: PostgreSQL, ${agents} simulated agents, gateway pool ${poolMax} connections (timeout ${poolTimeout} ms), deadline ${deadlineSeconds} s`,
    );

    const ac = new AbortController();
    const fleet = new SimFleet({
      serverUrl: url,
      enrollSecret: SECRET,
      count: agents,
      prefix: 'burst',
      waitSeconds: 30,
      seed: 15,
      enrollConcurrency: 32,
      log: pino({ level: 'error' }),
      signal: ac.signal,
    });
    let t = Date.now();
    await fleet.enroll();
    const enrolSeconds = (Date.now() - t) / 1000;
    const run = fleet.run();
    await new Promise((r) => setTimeout(r, 2000)); // every agent in its long poll

    t = Date.now();
    const ids = (await side.query<{ id: string }>(`select id from endpoints`)).rows.map((r) => r.id);
    await side.query(
      `insert into agent_jobs (id, endpoint_id, kind, payload) select 'burst-' || id, id, 'scan', '{}'::jsonb from unnest($1::text[]) as id`,
      [ids],
    );
    gateway.wake(ids);
    let done = 0;
    while (Date.now() - t < deadlineSeconds * 1000) {
      done = await count(side, `state = 'succeeded'`);
      if (done === ids.length) break;
      await new Promise((r) => setTimeout(r, 250));
    }
    const burstSeconds = (Date.now() - t) / 1000;
    const leased = await count(side, `state = 'leased'`);
    const queued = await count(side, `state = 'queued'`);
    ac.abort();
    await run;
    const s = gateway.stats();
    console.log(`enrolment: ${agents} agents in ${enrolSeconds.toFixed(1)} s`);
    console.log(
      `scan burst: ${done}/${ids.length} results accepted in ${burstSeconds.toFixed(1)} s; ${leased} still leased, ${queued} still queued`,
    );
    console.log(
      `gateway answered: ${Object.entries(statuses)
        .map(([k, v]) => `${k}×${v}`)
        .join(', ')}`,
    );
    console.log(
      `agents: ${fleet.stats.jobs} jobs reported, ${fleet.stats.refusedResults} results refused, ${fleet.stats.resultRetries ?? 'n/a'} result retries, ${fleet.stats.errors} poll errors`,
    );
    console.log(
      `server: ${s.polls} polls, ${s.overloaded ?? 'n/a'} answered 503, max held polls ${s.maxHeldPolls ?? 'n/a'}`,
    );
    const ok = (statuses[500] ?? 0) === 0 && done === ids.length;
    console.log(
      ok
        ? 'target met: no 500, every scan result accepted'
        : 'target NOT met: a 500 was answered or a scan result was not accepted in time',
    );
    await app.close();
    process.exitCode = ok ? 0 : 1;
  } finally {
    await side.end();
    await database.close();
    await admin.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
    await admin.end();
  }
}

void main().then(
  () => process.exit(process.exitCode ?? 0),
  (e: unknown) => {
    console.error(e);
    process.exit(2);
  },
);
