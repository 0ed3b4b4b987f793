/**
 * Scan-ingest benchmark (issue #15): how fast scan results land in the patch catalog and `endpoint_patches`
 * through the real gateway (HTTP on loopback, the product's pool and code path), and how long a full fleet rescan
 * therefore takes. Target: 100,000 endpoints × 200 missing patches rescanned in under 10 minutes.
 *
 *   DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres npm run bench:scan-ingest
 *   BENCH_ENDPOINTS=20000 BENCH_PATCHES=200 BENCH_CATALOG=2000 BENCH_CONCURRENCY=8 npm run bench:scan-ingest
 *
 * BENCH_ENDPOINTS agents (default 2,000) enrol; each is given a scan job and answers it with BENCH_PATCHES missing
 * patches (default 200) drawn, seeded, from a catalog of BENCH_CATALOG (default 2,000). BENCH_CONCURRENCY agents
 * (default 8) poll and post at once, and honour Retry-After on 503 as the agent does. Two rounds: the first scan
 * (new catalog entries and rows) and a rescan with the same findings (the steady state of a nightly scan). Prints
 * results/s, the result POST's p50/p95/p99, and what that rate means for a 100,000-endpoint fleet.
 * It creates a database of its own on DATABASE_URL's server (dropped at the end). Exits 1 on any 500.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import { drizzle } from 'drizzle-orm/node-postgres';
import pg from 'pg';
import { seeded } from '../src/agent-sim/fleet';
import { addEnrollSecret } from '../src/db/agent-enroll-secrets';
import { auditKeysFrom, useAuditKeys } from '../src/db/audit';
import type { Database } from '../src/db/client';
import { runMigrations } from '../src/db/migrate';
import * as schema from '../src/db/schema/index';
import { SecretBox } from '../src/db/secret-box';
import { createLogger } from '../src/logging';
import { createAgentGateway } from '../src/server/agent-gateway';
import { buildServer } from '../src/server/app';
import type { EnrollResponse, FoundPatch, PollResponse } from '../src/shared/agent-protocol';

const endpointCount = Number(process.env.BENCH_ENDPOINTS ?? 2000);
const patchesEach = Number(process.env.BENCH_PATCHES ?? 200);
const catalogSize = Math.max(patchesEach, Number(process.env.BENCH_CATALOG ?? 2000));
const concurrency = Number(process.env.BENCH_CONCURRENCY ?? 8);
const FLEET = 100_000;
const TARGET_SECONDS = 600;
const SECRET = 'scan-ingest-secret-0123456789';

const SEVERITIES = ['critical', 'important', 'moderate', 'low'] as const;
function catalogPatch(n: number): FoundPatch {
  return {
    patchId: `DSA-${5000 + n}-1`,
    title: `Security update for pkg${n}`,
    vendor: 'Debian',
    product: `pkg${n}`,
    type: 'security',
    vendorSeverity: SEVERITIES[n % SEVERITIES.length],
    severitySource: 'debian',
    cves: [`CVE-2026-${10000 + n}`],
    rebootRequired: n % 10 === 0,
    packages: [{ manager: 'apt', name: `pkg${n}`, version: `1.${n % 7}-1+deb12u1` }],
  };
}

function findingsOf(endpointIndex: number): FoundPatch[] {
  const next = seeded(endpointIndex + 1);
  const picked = new Set<number>();
  while (picked.size < patchesEach) picked.add(Math.floor(next() * catalogSize));
  return [...picked].sort((x, y) => x - y).map(catalogPatch);
}

function quantile(sorted: number[], q: number): number {
  return sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

/** CPU seconds (user + system) used so far by every PostgreSQL process on this machine (/proc; 0 elsewhere). */
function postgresCpuSeconds(): number {
  let ticks = 0;
  let dirs: string[] = [];
  try {
    dirs = fs.readdirSync('/proc').filter((d) => /^\d+$/.test(d));
  } catch {
    return 0;
  }
  for (const d of dirs) {
    try {
      const stat = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
      const close = stat.lastIndexOf(')');
      if (!stat.slice(stat.indexOf('(') + 1, close).startsWith('postgres')) continue;
      const f = stat.slice(close + 2).split(' ');
      ticks += Number(f[11]) + Number(f[12]); // utime, stime (fields 14 and 15)
    } catch {
      // the process ended
    }
  }
  return ticks / 100; // USER_HZ
}

/** Polls an agent makes for its scan before the bench counts it as never served. */
const POLL_ATTEMPTS = 20;

async function request(url: string, init: RequestInit, statuses: Record<number, number>): Promise<Response> {
  for (;;) {
    const res = await fetch(url, init);
    statuses[res.status] = (statuses[res.status] ?? 0) + 1;
    if (res.status !== 503 && res.status !== 429) return res;
    await res.arrayBuffer();
    const after = Number(res.headers.get('retry-after') ?? 1);
    await new Promise((r) => setTimeout(r, Math.min(after, 5) * 1000 * (0.5 + Math.random())));
  }
}

async function pool<T>(items: T[], n: number, work: (item: T, i: number) => Promise<void>, label: string) {
  let next = 0;
  let done = 0;
  const started = Date.now();
  const tty = process.stderr.isTTY;
  await Promise.all(
    Array.from({ length: Math.min(n, items.length) }, async () => {
      for (;;) {
        const i = next++;
        if (i >= items.length) return;
        await work(items[i]!, i);
        done += 1;
        if (tty && done % 100 === 0)
          process.stderr.write(
            `\r${label}: ${done}/${items.length} (${(done / ((Date.now() - started) / 1000)).toFixed(0)}/s)   `,
          );
      }
    }),
  );
  if (tty) process.stderr.write('\r\x1b[K');
}

async function main() {
  const base = process.env.DATABASE_URL;
  if (!base)
    throw new Error(
      'DATABASE_URL is not set: the scan-ingest bench needs a PostgreSQL server (it creates and drops a database of its own)',
    );
  const name = `patchops_scan_ingest_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ connectionString: base });
  await admin.connect();
  await admin.query(`CREATE DATABASE "${name}"`);
  const u = new URL(base);
  u.pathname = `/${name}`;
  const secretBox = SecretBox.ephemeral();
  useAuditKeys(auditKeysFrom(secretBox));
  const pgPool = new pg.Pool({ connectionString: u.toString(), max: 10 });
  pgPool.on('error', () => undefined);
  const database: Database = {
    db: drizzle(pgPool, { schema, casing: 'snake_case' }),
    pool: pgPool,
    close: () => pgPool.end(),
  };
  const side = new pg.Pool({ connectionString: u.toString(), max: 2 });
  try {
    await runMigrations(database.db);
    await addEnrollSecret(database.db, { name: 'bench', secret: SECRET });
    const logger = createLogger('warn', 'bench');
    const gateway = createAgentGateway({ database, secretBox, logger, scanOnFirstEnrolment: false });
    const app = await buildServer({ logger, health: [], routes: [gateway.routes] });
    await app.listen({ host: '127.0.0.1', port: 0 });
    const url = `http://127.0.0.1:${(app.server.address() as { port: number }).port}/agent/v1`;
    const statuses: Record<number, number> = {};
    console.log(
      `scan-ingest benchmark: PostgreSQL on this machine (${os.cpus().length} cores, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB), ` +
        `${endpointCount} endpoints × ${patchesEach} missing patches from a catalog of ${catalogSize}, ${concurrency} agents at once`,
    );

    const t = Date.now();
    const keys: Array<{ endpointId: string; nodeKey: string }> = new Array(endpointCount);
    await pool(
      Array.from({ length: endpointCount }, (_, i) => i),
      16,
      async (i) => {
        const res = await request(
          `${url}/enroll`,
          {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify({
              enrollSecret: SECRET,
              machineId: `ingest-${i}`,
              hostname: `ingest-${i}`,
              osFamily: 'linux',
              osName: 'Debian GNU/Linux',
              osVersion: '12',
              arch: 'x64',
            }),
          },
          statuses,
        );
        if (res.status !== 200) throw new Error(`enrol ${i}: HTTP ${res.status} ${await res.text()}`);
        const e = (await res.json()) as EnrollResponse;
        keys[i] = { endpointId: e.endpointId, nodeKey: e.nodeKey };
      },
      'enrolling',
    );
    console.log(`enrolment: ${endpointCount} agents in ${((Date.now() - t) / 1000).toFixed(1)} s`);

    let failures = 0;
    const round = async (label: string) => {
      const ids = keys.map((k) => k.endpointId);
      await side.query(
        `insert into agent_jobs (id, endpoint_id, kind, payload)
         select $2 || '-' || id, id, 'scan', '{}'::jsonb from unnest($1::text[]) as id`,
        [ids, label],
      );
      gateway.wake(ids);
      const load0 = os.loadavg()[0]!;
      const failures0 = failures;
      const cpu0 = process.cpuUsage();
      const pgCpu0 = postgresCpuSeconds();
      let unserved = 0;
      let repolls = 0;
      const latencies: number[] = [];
      const started = Date.now();
      await pool(
        keys,
        concurrency,
        async (k, i) => {
          const auth = { authorization: `Bearer ${k.nodeKey}` };
          // Poll until the scan is handed out, as an agent does: a poll the gateway answers empty (its lease cap
          // reached, a work hint not yet refreshed) is followed by a long poll that waits for the job.
          let jobs: PollResponse['jobs'] = [];
          for (let attempt = 0; jobs.length === 0; attempt++) {
            if (attempt === POLL_ATTEMPTS) {
              unserved += 1;
              return;
            }
            const polled = await request(`${url}/jobs?wait=${attempt === 0 ? 0 : 5}`, { headers: auth }, statuses);
            ({ jobs } = (await polled.json()) as PollResponse);
            if (attempt > 0) repolls += 1;
          }
          for (const job of jobs) {
            const body = JSON.stringify({
              status: 'succeeded',
              missing: findingsOf(i),
              patches: [],
              rebootPending: false,
            });
            const t0 = performance.now();
            const res = await request(
              `${url}/jobs/${encodeURIComponent(job.id)}/result`,
              { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body },
              statuses,
            );
            latencies.push(performance.now() - t0);
            if (res.status !== 200) {
              failures += 1;
              console.error(`result ${job.id}: HTTP ${res.status} ${(await res.text()).slice(0, 300)}`);
            } else await res.arrayBuffer();
          }
        },
        label,
      );
      const seconds = (Date.now() - started) / 1000;
      // The results accepted, not the agents: an agent never handed its scan posted nothing.
      const accepted = latencies.length - (failures - failures0);
      const cpu = process.cpuUsage(cpu0);
      const nodeCpu = (cpu.user + cpu.system) / 1e6;
      const pgCpu = postgresCpuSeconds() - pgCpu0;
      const rate = accepted / seconds;
      latencies.sort((x, y) => x - y);
      const fleetSeconds = FLEET / rate;
      console.log(
        `${label}: ${accepted} of ${keys.length} results accepted in ${seconds.toFixed(1)} s = ${rate.toFixed(1)} results/s ` +
          `(${(rate * patchesEach).toFixed(0)} endpoint×patch rows/s); result POST p50 ${quantile(latencies, 0.5).toFixed(1)} ms, ` +
          `p95 ${quantile(latencies, 0.95).toFixed(1)} ms, p99 ${quantile(latencies, 0.99).toFixed(1)} ms; load ${load0.toFixed(1)} → ${os.loadavg()[0]!.toFixed(1)}`,
      );
      console.log(
        `  CPU: this process (gateway and simulated agents) ${nodeCpu.toFixed(1)} s = ${((nodeCpu / accepted) * 1000).toFixed(2)} ms per result; ` +
          `PostgreSQL ${pgCpu.toFixed(1)} s = ${((pgCpu / accepted) * 1000).toFixed(2)} ms per result`,
      );
      console.log(
        `  polls answered without the scan and polled again: ${repolls}; agents never handed their scan (${POLL_ATTEMPTS} polls): ${unserved}`,
      );
      if (unserved > 0) failures += unserved;
      console.log(
        `  at this rate a ${FLEET.toLocaleString('en')}-endpoint fleet takes ${(fleetSeconds / 60).toFixed(1)} min ` +
          `(target < ${TARGET_SECONDS / 60} min): ${fleetSeconds < TARGET_SECONDS ? 'PASS' : 'FAIL'}`,
      );
    };

    await round('first scan');
    await round('rescan');
    const rows = (await side.query<{ n: number }>(`select count(*)::int as n from endpoint_patches`)).rows[0]!.n;
    const catalog = (await side.query<{ n: number }>(`select count(*)::int as n from patches`)).rows[0]!.n;
    console.log(`stored: ${rows} endpoint×patch rows, ${catalog} catalog patches`);
    console.log(
      `gateway answered: ${Object.entries(statuses)
        .map(([k, v]) => `${k}×${v}`)
        .join(', ')}`,
    );
    await app.close();
    const ok = (statuses[500] ?? 0) === 0 && failures === 0;
    if (!ok) console.log('FAILED: a result was not accepted (see above)');
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
