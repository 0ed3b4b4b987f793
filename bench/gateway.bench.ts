/**
 * Gateway benchmark: simulated agents polling GET /agent/v1/jobs (wait=0, the worst case: every poll is a
 * request) against the real gateway and database. Prints polls/s, p50 and p99 at 1,000 and 10,000 agents.
 *
 *   DATABASE_URL=postgres://postgres@127.0.0.1:5432/patchops_bench npm run bench:gateway
 *   (without DATABASE_URL: embedded PGlite)
 *
 * The load generator runs in a worker thread (its own event loop) over keep-alive HTTP connections, so the
 * server's event loop only serves. Agents are created directly in the database (node key hashes), as
 * enrolment is not what is measured. A share of agents (BENCH_WORK_SHARE, default 1%) has a job queued,
 * so some polls lease and some results are posted.
 */
import { randomBytes } from 'node:crypto';
import { Worker } from 'node:worker_threads';
import pg from 'pg';
import { connectDatabase } from '../src/db/client';
import { startEmbeddedPostgres } from '../src/db/embedded';
import { runMigrations } from '../src/db/migrate';
import { sha256Hex } from '../src/db/hashed-secrets';
import { createLogger } from '../src/logging';
import { createAgentGateway } from '../src/server/agent-gateway';
import { buildServer } from '../src/server/app';
import { freePort } from '../src/temporal/dev-server';
import { SecretBox } from '../src/db/secret-box';
import { auditKeysFrom, useAuditKeys } from '../src/db/audit';

const sizes = (process.env.BENCH_AGENTS ?? '1000,10000').split(',').map(Number);
const seconds = Number(process.env.BENCH_SECONDS ?? 10);
const connections = Number(process.env.BENCH_CONNECTIONS ?? 64);
const workShare = Number(process.env.BENCH_WORK_SHARE ?? 0.01);

const loadWorker = `
const { parentPort, workerData } = require('node:worker_threads');
const http = require('node:http');
const { port, keys, seconds, connections, warm } = workerData;
const agent = new http.Agent({ keepAlive: true, maxSockets: connections });
function get(key) {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const req = http.request({ host: '127.0.0.1', port, path: '/agent/v1/jobs?wait=0', method: 'GET', agent, headers: { authorization: 'Bearer ' + key } }, (res) => {
      let body = '';
      res.on('data', (c) => (body += c));
      res.on('end', () => {
        const ms = Number(process.hrtime.bigint() - t0) / 1e6;
        if (res.statusCode !== 200) return reject(new Error('HTTP ' + res.statusCode + ' ' + body));
        resolve({ ms, body });
      });
    });
    req.on('error', reject);
    req.end();
  });
}
function post(key, id, payload) {
  return new Promise((resolve, reject) => {
    const data = JSON.stringify(payload);
    const req = http.request({ host: '127.0.0.1', port, path: '/agent/v1/jobs/' + encodeURIComponent(id) + '/result', method: 'POST', agent, headers: { authorization: 'Bearer ' + key, 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) } }, (res) => { res.resume(); res.on('end', () => resolve(res.statusCode)); });
    req.on('error', reject);
    req.end(data);
  });
}
(async () => {
  let next = 0;
  if (warm) {
    // every agent once: fills the server's key cache like agents that have been polling for a while
    await Promise.all(Array.from({ length: connections }, async () => { while (next < keys.length) await get(keys[next++]); }));
  }
  const lat = [];
  let errors = 0, jobs = 0;
  const until = Date.now() + seconds * 1000;
  const start = Date.now();
  next = 0;
  await Promise.all(Array.from({ length: connections }, async () => {
    while (Date.now() < until) {
      const key = keys[next++ % keys.length];
      try {
        const { ms, body } = await get(key);
        lat.push(ms);
        const parsed = JSON.parse(body);
        for (const j of parsed.jobs) { jobs++; await post(key, j.id, { status: 'succeeded', missing: [], patches: [], rebootPending: false }); }
      } catch (e) { errors++; }
    }
  }));
  const elapsed = (Date.now() - start) / 1000;
  lat.sort((a, b) => a - b);
  const q = (p) => lat[Math.min(lat.length - 1, Math.floor(p * lat.length))];
  parentPort.postMessage({ polls: lat.length, elapsed, p50: q(0.5), p99: q(0.99), max: lat[lat.length - 1], errors, jobs });
})().catch((e) => parentPort.postMessage({ error: String(e) }));
`;

async function main() {
  let url = process.env.DATABASE_URL;
  let stopEmbedded: (() => Promise<void>) | undefined;
  if (!url) {
    const e = await startEmbeddedPostgres({ port: await freePort() });
    url = e.url;
    stopEmbedded = e.stop;
  }
  const secretBox = SecretBox.ephemeral();
  // The audit chain is keyed: a process that may append audit rows (enrolment, scans adding patches) needs keys.
  useAuditKeys(auditKeysFrom(secretBox));
  const database = connectDatabase(url, { max: 10 });
  await runMigrations(database.db);
  const logger = createLogger('warn', 'bench');
  const gateway = createAgentGateway({ database, secretBox, logger, leaseSeconds: 600 });
  const app = await buildServer({ logger, health: [], routes: [gateway.routes] });
  const port = await freePort();
  await app.listen({ host: '127.0.0.1', port });
  const runId = randomBytes(3).toString('hex');
  const db = new pg.Client({ connectionString: url });
  await db.connect();
  console.log(`gateway benchmark: ${process.env.DATABASE_URL ? 'PostgreSQL' : 'embedded PGlite'}, ${connections} keep-alive connections, ${seconds}s per size, wait=0, ${workShare * 100}% of agents with a queued job`);
  console.log('agents   polls/s   p50 ms   p99 ms   max ms   jobs   errors');
  const results = [];
  let have = 0;
  const keys: string[] = [];
  for (const n of sizes) {
    // add agents up to n (direct inserts: enrolment is not what is measured)
    const add = n - have;
    for (let i = 0; i < add; i += 1000) {
      const batch = Math.min(1000, add - i);
      const rows = Array.from({ length: batch }, (_, k) => {
        const idx = have + i + k;
        const key = randomBytes(32).toString('base64url');
        keys.push(key);
        return { id: `bench-${runId}-${idx}`, key };
      });
      await db.query(
        `insert into endpoints (id, machine_id, hostname, os_family) select id, id, id, 'linux' from unnest($1::text[]) as id`,
        [rows.map((r) => r.id)],
      );
      await db.query(`insert into agent_node_keys (key_hash, endpoint_id) select * from unnest($1::text[], $2::text[])`, [rows.map((r) => sha256Hex(r.key)), rows.map((r) => r.id)]);
    }
    have = n;
    const load = (secs: number, warm: boolean) =>
      new Promise<{ polls: number; elapsed: number; p50: number; p99: number; max: number; errors: number; jobs: number; error?: string }>((resolve, reject) => {
        const w = new Worker(loadWorker, { eval: true, workerData: { port, keys: keys.slice(0, n), seconds: secs, connections, warm } });
        w.once('message', resolve);
        w.once('error', reject);
      });
    await load(0, true); // every agent once: the server's key cache is warm, as for agents that have been polling
    if (workShare > 0) {
      const every = Math.max(1, Math.round(1 / workShare));
      const ids = keys.slice(0, n).map((_, idx) => `bench-${runId}-${idx}`).filter((_, idx) => idx % every === 0);
      await db.query(`insert into agent_jobs (id, endpoint_id, kind, payload) select 'job-${n}-' || id, id, 'scan', '{}'::jsonb from unnest($1::text[]) as id`, [ids]);
    }
    await new Promise((r) => setTimeout(r, 500)); // the work hint refreshes
    const r = await load(seconds, false);
    if (r.error) throw new Error(r.error);
    const rate = r.polls / r.elapsed;
    results.push({ agents: n, rate, ...r });
    console.log(`${String(n).padStart(6)}   ${rate.toFixed(0).padStart(7)}   ${r.p50.toFixed(2).padStart(6)}   ${r.p99.toFixed(2).padStart(6)}   ${r.max.toFixed(1).padStart(6)}   ${String(r.jobs).padStart(4)}   ${r.errors}`);
  }
  const s = gateway.stats();
  console.log(`server: ${s.polls} polls, ${s.leaseQueries} lease queries (${((s.leaseQueries / Math.max(1, s.polls)) * 100).toFixed(2)}% of polls touched the jobs table), ${s.cachedKeys} cached keys`);
  const ok = results.every((r) => r.rate >= 2000 && r.p99 < 100 && r.errors === 0);
  console.log(ok ? 'target met: ≥ 2,000 polls/s with p99 < 100 ms at every size' : 'target NOT met at some size (≥ 2,000 polls/s with p99 < 100 ms)');
  await db.query(`delete from endpoints where id like $1`, [`bench-${runId}-%`]);
  await db.end();
  await app.close();
  await database.close();
  await stopEmbedded?.();
  process.exit(ok ? 0 : 1);
}

void main().catch((e: unknown) => {
  console.error(e);
  process.exit(2);
});
