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
 *
 * Open loop (BENCH_INTERVAL_SECONDS set, e.g. 60): each simulated agent polls once every interval at a phase of its
 * own drawn uniformly, whether or not earlier polls have been answered — the arrival rate is agents / interval
 * (100,000 agents every 60 s ≈ 1,667 polls/s), as a real fleet, instead of as fast as the server answers. Latency is
 * counted from each poll's scheduled time (a poll the generator sends late, or that queues for one of the
 * BENCH_CONNECTIONS sockets, counts its wait). It runs BENCH_SECONDS (default: one interval, at most 60 s) per size
 * and also prints the generator's own event-loop delay (p99/max: when that is large the generator, not the server,
 * is the bottleneck), the server's event-loop delay and its handler time (fastify's elapsedTime, p50/p99).
 *
 *   DATABASE_URL=... BENCH_AGENTS=100000 BENCH_INTERVAL_SECONDS=60 npm run bench:gateway
 */
import { randomBytes } from 'node:crypto';
import { spawn } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
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
/** Open loop: every agent polls once per this many seconds (unset: closed loop, as fast as the server answers). */
const interval = process.env.BENCH_INTERVAL_SECONDS ? Number(process.env.BENCH_INTERVAL_SECONDS) : undefined;
const openSeconds = Number(process.env.BENCH_SECONDS ?? Math.min(60, interval ?? 60));
const loadAverage = () =>
  os
    .loadavg()
    .map((x) => x.toFixed(2))
    .join(' ');

const loadWorker = `
// A worker thread (closed loop), or a child process (open loop: the server process's CPU time is then the server's alone).
const wt = require('node:worker_threads');
const parentPort = wt.parentPort ?? { postMessage: (m) => process.send(m, () => process.exit(0)) };
const workerData = wt.workerData ?? JSON.parse(require('node:fs').readFileSync(process.argv[1], 'utf8'));
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
const { monitorEventLoopDelay } = require('node:perf_hooks');
async function openLoop() {
  // Each agent's phase in the interval, drawn uniformly; the schedule is those phases sorted, repeated every interval.
  const { interval } = workerData;
  const n = keys.length;
  const phase = new Float64Array(n);
  for (let i = 0; i < n; i++) phase[i] = Math.random() * interval * 1000;
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => phase[a] - phase[b]);
  const lag = monitorEventLoopDelay({ resolution: 10 });
  lag.enable();
  const lat = [];
  const sendLat = [];
  let errors = 0, jobs = 0, sentLate = 0, inFlight = 0, maxInFlight = 0;
  const start = performance.now();
  const end = start + seconds * 1000;
  let k = 0; // the k-th poll of the schedule: agent order[k % n] in interval floor(k / n)
  const due = (j) => start + Math.floor(j / n) * interval * 1000 + phase[order[j % n]];
  const pending = new Set();
  await new Promise((done) => {
    const tick = () => {
      const now = performance.now();
      while (k < Number.MAX_SAFE_INTEGER && due(k) <= now && due(k) < end) {
        const scheduled = due(k);
        const key = keys[order[k % n]];
        k++;
        if (now - scheduled > 10) sentLate++;
        inFlight++;
        if (inFlight > maxInFlight) maxInFlight = inFlight;
        const sentAt = performance.now();
        const p = get(key).then(async ({ body }) => {
          const t = performance.now();
          lat.push(t - scheduled);
          sendLat.push(t - sentAt);
          const parsed = JSON.parse(body);
          for (const j of parsed.jobs) { jobs++; await post(key, j.id, { status: 'succeeded', missing: [], patches: [], rebootPending: false }); }
        }, () => { errors++; }).finally(() => { inFlight--; pending.delete(p); });
        pending.add(p);
      }
      if (due(k) >= end || now >= end) return done();
      setTimeout(tick, Math.max(0, Math.min(5, due(k) - performance.now())));
    };
    tick();
  });
  await Promise.all(pending);
  const elapsed = (performance.now() - start) / 1000;
  lat.sort((a, b) => a - b);
  sendLat.sort((a, b) => a - b);
  const q = (a, p) => a[Math.min(a.length - 1, Math.floor(p * a.length))];
  lag.disable();
  parentPort.postMessage({ polls: lat.length, elapsed: Math.min(elapsed, seconds), p50: q(lat, 0.5), p99: q(lat, 0.99), max: lat[lat.length - 1], sendP50: q(sendLat, 0.5), sendP99: q(sendLat, 0.99), errors, jobs, sentLate, maxInFlight, genLagP99: lag.percentile(99) / 1e6, genLagMax: lag.max / 1e6, genCpuMs: (process.cpuUsage().user + process.cpuUsage().system) / 1000 });
}
(async () => {
  if (workerData.interval) return openLoop();
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

interface LoadResult {
  polls: number;
  elapsed: number;
  p50: number;
  p99: number;
  max: number;
  errors: number;
  jobs: number;
  error?: string;
  /** Open loop only: latency from the send (not the schedule), polls sent > 10 ms late, generator event-loop delay. */
  sendP50?: number;
  sendP99?: number;
  sentLate?: number;
  maxInFlight?: number;
  genLagP99?: number;
  genLagMax?: number;
  /** Open loop: the generator process's CPU time over the whole run (ms). */
  genCpuMs?: number;
}

const quantile = (a: number[], p: number) => a[Math.min(a.length - 1, Math.floor(p * a.length))] ?? NaN;

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
  // Server-side time per poll (fastify's elapsedTime: request received → reply sent), apart from the generator's view.
  let handlerMs: number[] = [];
  app.addHook('onResponse', async (req, reply) => {
    if (req.method === 'GET') handlerMs.push(reply.elapsedTime);
  });
  const serverLag = monitorEventLoopDelay({ resolution: 10 });
  const port = await freePort();
  await app.listen({ host: '127.0.0.1', port });
  const runId = randomBytes(3).toString('hex');
  const db = new pg.Client({ connectionString: url });
  await db.connect();
  const mode = interval
    ? `open loop: every agent polls once per ${interval} s at a uniform random phase, ${openSeconds} s per size`
    : `closed loop, ${seconds}s per size`;
  console.log(
    `gateway benchmark: ${process.env.DATABASE_URL ? 'PostgreSQL' : 'embedded PGlite'}, ${connections} keep-alive connections, ${mode}, wait=0, ${workShare * 100}% of agents with a queued job`,
  );
  console.log(
    `machine: ${os.cpus().length} cores (${os.cpus()[0]?.model.trim() ?? '?'}), ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB memory, Node ${process.version}; load average ${loadAverage()}`,
  );
  console.log(
    interval
      ? 'agents   target/s   polls/s   p50 ms   p99 ms   max ms   send p50/p99 ms   server p50/p99 ms   server lag p99 ms   generator lag p99/max ms   sent late   jobs   errors   load average'
      : 'agents   polls/s   p50 ms   p99 ms   max ms   jobs   errors   load average',
  );
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
      await db.query(
        `insert into agent_node_keys (key_hash, endpoint_id) select * from unnest($1::text[], $2::text[])`,
        [rows.map((r) => sha256Hex(r.key)), rows.map((r) => r.id)],
      );
    }
    have = n;
    const load = (secs: number, warm: boolean) =>
      new Promise<LoadResult>((resolve, reject) => {
        const workerData = {
          port,
          keys: keys.slice(0, n),
          seconds: secs,
          connections,
          warm,
          interval: warm ? undefined : interval,
        };
        if (!workerData.interval) {
          const w = new Worker(loadWorker, { eval: true, workerData });
          w.once('message', resolve);
          w.once('error', reject);
          return;
        }
        const file = path.join(os.tmpdir(), `gateway-bench-${runId}-${n}.json`);
        writeFileSync(file, JSON.stringify(workerData));
        const child = spawn(process.execPath, ['-e', loadWorker, file], {
          stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
        });
        child.once('message', (m) => {
          rmSync(file, { force: true });
          resolve(m as LoadResult);
        });
        child.once('error', reject);
        child.once('exit', (code) => (code !== 0 ? reject(new Error(`load generator exited ${code}`)) : undefined));
      });
    const tw = Date.now();
    await load(0, true); // every agent once: the server's key cache is warm, as for agents that have been polling
    if (interval)
      console.log(`  (${n} agents warmed: every key polled once in ${((Date.now() - tw) / 1000).toFixed(1)} s)`);
    if (workShare > 0) {
      const every = Math.max(1, Math.round(1 / workShare));
      const ids = keys
        .slice(0, n)
        .map((_, idx) => `bench-${runId}-${idx}`)
        .filter((_, idx) => idx % every === 0);
      await db.query(
        `insert into agent_jobs (id, endpoint_id, kind, payload) select 'job-${n}-' || id, id, 'scan', '{}'::jsonb from unnest($1::text[]) as id`,
        [ids],
      );
    }
    await new Promise((r) => setTimeout(r, 500)); // the work hint refreshes
    handlerMs = [];
    serverLag.reset();
    serverLag.enable();
    const cpu0 = process.cpuUsage();
    const r = await load(interval ? openSeconds : seconds, false);
    const cpu = process.cpuUsage(cpu0);
    serverLag.disable();
    if (r.error) throw new Error(r.error);
    const rate = r.polls / r.elapsed;
    results.push({ agents: n, rate, target: interval ? n / interval : 2000, ...r });
    if (interval) {
      handlerMs.sort((a, b) => a - b);
      console.log(
        `${String(n).padStart(6)}   ${(n / interval).toFixed(0).padStart(8)}   ${rate.toFixed(0).padStart(7)}   ${r.p50.toFixed(2).padStart(6)}   ${r.p99.toFixed(2).padStart(6)}   ${r.max.toFixed(1).padStart(6)}   ` +
          `${`${r.sendP50!.toFixed(2)}/${r.sendP99!.toFixed(2)}`.padStart(15)}   ${`${quantile(handlerMs, 0.5).toFixed(2)}/${quantile(handlerMs, 0.99).toFixed(2)}`.padStart(17)}   ` +
          `${(serverLag.percentile(99) / 1e6).toFixed(1).padStart(17)}   ${`${r.genLagP99!.toFixed(1)}/${r.genLagMax!.toFixed(1)}`.padStart(24)}   ${String(r.sentLate).padStart(9)}   ${String(r.jobs).padStart(4)}   ${String(r.errors).padStart(6)}   ${loadAverage()}`,
      );
      const serverCpuMs = (cpu.user + cpu.system) / 1000;
      console.log(
        `  CPU: server process ${(serverCpuMs / 1000).toFixed(1)} s = ${(serverCpuMs / Math.max(1, handlerMs.length)).toFixed(3)} ms per poll (${((serverCpuMs / (r.elapsed * 1000)) * 100).toFixed(0)} % of one core); ` +
          `generator process ${((r.genCpuMs ?? 0) / 1000).toFixed(1)} s (incl. start-up) = ${((r.genCpuMs ?? 0) / Math.max(1, r.polls)).toFixed(3)} ms per poll; most polls in flight at once: ${r.maxInFlight}`,
      );
    } else {
      console.log(
        `${String(n).padStart(6)}   ${rate.toFixed(0).padStart(7)}   ${r.p50.toFixed(2).padStart(6)}   ${r.p99.toFixed(2).padStart(6)}   ${r.max.toFixed(1).padStart(6)}   ${String(r.jobs).padStart(4)}   ${r.errors}   ${loadAverage()}`,
      );
    }
  }
  const s = gateway.stats();
  console.log(
    `server: ${s.polls} polls, ${s.leaseQueries} lease queries (${((s.leaseQueries / Math.max(1, s.polls)) * 100).toFixed(2)}% of polls touched the jobs table), ${s.cachedKeys} cached keys`,
  );
  const ok = results.every((r) => r.rate >= (interval ? 0.95 * r.target : 2000) && r.p99 < 100 && r.errors === 0);
  const target = interval
    ? `the offered rate (agents / ${interval} s, within 5 %) with p99 < 100 ms`
    : '≥ 2,000 polls/s with p99 < 100 ms';
  console.log(ok ? `target met: ${target} at every size` : `target NOT met at some size (${target})`);
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
