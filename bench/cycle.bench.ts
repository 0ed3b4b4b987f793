/**
 * Cycle benchmark (issue #15): one patch cycle over N instant agents, end to end on the real pieces — a Temporal
 * dev server (the project's CLI binary), the real `patchops server` (gateway) and `patchops worker` processes,
 * PostgreSQL (a database of its own on DATABASE_URL's server; without DATABASE_URL the embedded PGlite), and N
 * simulated agents speaking the real agent protocol over HTTP (src/agent-sim: enrol, inventory, long-poll,
 * results) with installs that take no time and never fail, spread over `patchops agent-sim --ndjson` processes
 * (BENCH_SIM_PROCESSES, default one per 2,500 agents: one Node process cannot drive 10,000 long-polling agents).
 * One cycle, one approval, no maintenance windows.
 *
 *   DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres TEMPORAL_CLI=~/.cache/patchops/bin/temporal npm run bench:cycle
 *   BENCH_ENDPOINTS=10000 npm run bench:cycle        (or: npm run bench:cycle -- 10000; 100000 is allowed)
 *
 * Measures approval → verified (the approval is accepted → the cycle reaches REPORTING, i.e. every verify job
 * has come back) and approval → COMPLETED, the stage times, and the Temporal history of every workflow of the
 * cycle (the cycle and its wave children, found through the child-started events): events and bytes, summed.
 * Prints the machine's cores, memory and load average with the figures. Exits 1 when the cycle does not complete
 * or when a target is missed (10k in < 120 s; history < 2,000 events).
 *
 * BENCH_CPU_PROF=DIR: the server process writes a V8 CPU profile (node --cpu-prof) into DIR, stopped with SIGTERM at
 * the end so the profile is written; open it in Chrome DevTools or summarise it with scripts/cpu-profile-top.mjs.
 * BENCH_PROCESS_LOG=PREFIX: the server's and the worker's whole output (LOG_LEVEL warn) into PREFIX.server and
 * PREFIX.worker, e.g. the gateway's minute summaries of database errors answered 503.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Client, Connection } from '@temporalio/client';
import { sql } from 'drizzle-orm';
import type { SimStats } from '../src/agent-sim/fleet';
import { loadConfig } from '../src/config/index';
import { getCycleRow } from '../src/db/cycles';
import { endpointGroups, endpoints, groupMembers } from '../src/db/schema/index';
import { TERMINAL_STAGES, workflowIdForCycle, type CycleStage } from '../src/domain/cycle';
import { loadAuditKeys } from '../src/runtime/database';
import { createCycleService } from '../src/services/temporal-cycle-service';
import { freePort, startDevServer } from '../src/temporal/dev-server';
import { grantApprovers, saveTestPolicy } from '../test/helpers/cycle-fixtures';
import { createTestDatabase } from '../test/helpers/db';
import { startSimProcess, type SimProcess } from '../test/helpers/sim-process';

const ENDPOINTS = Number(process.argv[2] ?? process.env.BENCH_ENDPOINTS ?? 1000);
const TIMEOUT_S = Number(process.env.BENCH_TIMEOUT_SECONDS ?? Math.max(900, ENDPOINTS / 10));
const WAIT_S = Number(process.env.BENCH_AGENT_WAIT_SECONDS ?? 30);
const SIM_PROCESSES = Math.max(1, Number(process.env.BENCH_SIM_PROCESSES ?? Math.ceil(ENDPOINTS / 2500)));
const root = path.resolve(import.meta.dirname, '..');
let stopping = false;

const machine = () => {
  const l = os
    .loadavg()
    .map((x) => x.toFixed(2))
    .join(' ');
  return `${os.cpus().length} cores (${os.cpus()[0]?.model.trim() ?? '?'}), ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB memory, load average ${l}`;
};

function startProcess(
  command: 'server' | 'worker',
  env: NodeJS.ProcessEnv,
  nodeArgs: string[] = [],
): Promise<ChildProcess> {
  const child = spawn(process.execPath, [...nodeArgs, path.join(root, 'bin', 'patchops.mjs'), command], {
    cwd: root,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  // BENCH_PROCESS_LOG=PREFIX: each process's whole output also goes to PREFIX.server / PREFIX.worker.
  const file = process.env.BENCH_PROCESS_LOG ? createWriteStream(`${process.env.BENCH_PROCESS_LOG}.${command}`) : null;
  const keep = (c: Buffer) => {
    file?.write(c);
    out = (out + c.toString()).slice(-20_000);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  child.once('exit', (code, signal) => {
    if (signal !== 'SIGKILL' && !stopping)
      console.error(`patchops ${command} exited (${code ?? signal}); its last output:\n${out.slice(-4000)}`);
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`patchops ${command}: no ready line within 300 s:\n${out}`)),
      300_000,
    );
    const poll = setInterval(() => {
      if (out.includes('patchops ready')) {
        clearInterval(poll);
        clearTimeout(timer);
        resolve(child);
      }
    }, 100);
    child.once('exit', (code) => {
      clearInterval(poll);
      clearTimeout(timer);
      reject(new Error(`patchops ${command} exited (${code}):\n${out}`));
    });
  });
}

/** The workflow and every child it started (recursively), with each one's history length and size. */
async function histories(
  client: Client,
  workflowId: string,
): Promise<Array<{ workflowId: string; events: number; bytes: number }>> {
  const out: Array<{ workflowId: string; events: number; bytes: number }> = [];
  const queue = [workflowId];
  while (queue.length > 0) {
    const id = queue.shift()!;
    const handle = client.workflow.getHandle(id);
    const d = await handle.describe();
    const h = await handle.fetchHistory();
    for (const e of h.events ?? []) {
      const child = e.childWorkflowExecutionStartedEventAttributes?.workflowExecution?.workflowId;
      if (child) queue.push(child);
    }
    out.push({ workflowId: id, events: h.events?.length ?? d.historyLength, bytes: d.historySize ?? 0 });
  }
  return out;
}

async function main() {
  const t00 = Date.now();
  const cliPath = process.env.TEMPORAL_CLI ?? path.join(os.homedir(), '.cache', 'patchops', 'bin', 'temporal');
  console.log(
    `cycle benchmark: ${ENDPOINTS} endpoints, ${process.env.DATABASE_URL ? 'PostgreSQL' : 'embedded PGlite'}; ${machine()}`,
  );
  const db = await createTestDatabase({ migrate: false });
  const temporal = await startDevServer({ cliPath, port: await freePort() });
  const secretsKey = randomBytes(32).toString('hex');
  const enrollSecret = `bench-enrol-secret-${randomBytes(8).toString('hex')}`;
  await loadAuditKeys(loadConfig({ SECRETS_KEY: secretsKey, DATABASE_URL: db.url }));
  const children: ChildProcess[] = [];
  let connection: Connection | undefined;
  const stopFirst: Array<() => Promise<void>> = [];
  const cleanup = async () => {
    stopping = true;
    for (const stop of stopFirst) await stop().catch(() => undefined);
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    await connection?.close().catch(() => undefined);
    await temporal.stop().catch(() => undefined);
    await db.close().catch(() => undefined);
  };
  try {
    const httpPort = await freePort();
    const baseEnv = async (): Promise<NodeJS.ProcessEnv> => ({
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      LOG_LEVEL: 'warn',
      DATABASE_URL: db.url,
      TEMPORAL_ADDRESS: temporal.address,
      TEMPORAL_CLI: cliPath,
      SECRETS_KEY: secretsKey,
      AGENT_ENROLL_SECRET: enrollSecret,
      PATCHOPS_ADMIN_PASSWORD: 'bench-admin-password',
      PATCHOPS_DATA_DIR: await fs.mkdtemp(path.join(os.tmpdir(), 'patchops-bench-cycle-')),
    });
    const profile = process.env.BENCH_CPU_PROF
      ? ['--cpu-prof', `--cpu-prof-dir=${path.resolve(process.env.BENCH_CPU_PROF)}`]
      : [];
    const server = await startProcess('server', { ...(await baseEnv()), PORT: String(httpPort) }, profile);
    children.push(server);
    if (process.env.BENCH_CPU_PROF)
      stopFirst.push(async () => {
        server.kill('SIGTERM');
        if (server.exitCode === null && server.signalCode === null)
          await Promise.race([new Promise((r) => server.once('exit', r)), sleep(30_000)]);
      });
    children.push(await startProcess('worker', await baseEnv()));
    console.log(`server and worker ready after ${((Date.now() - t00) / 1000).toFixed(1)} s`);

    const te = Date.now();
    const fleets: SimProcess[] = [];
    for (let i = 0; i < SIM_PROCESSES; i++) {
      const count = Math.floor(ENDPOINTS / SIM_PROCESSES) + (i < ENDPOINTS % SIM_PROCESSES ? 1 : 0);
      const fleet = await startSimProcess({
        serverUrl: `http://127.0.0.1:${httpPort}`,
        enrollSecret,
        count,
        prefix: `cb${i}`,
        waitSeconds: WAIT_S,
        latencyMs: [0, 0],
        failureRate: 0,
        seed: 15 + i,
        // Agents that have been running for a while do not all open their long poll in the same instant.
        startSpreadSeconds: Number(process.env.BENCH_START_SPREAD_SECONDS ?? WAIT_S),
        logLevel: process.env.BENCH_LOG_LEVEL ?? 'error', // the agents' 503 back-offs are counted below, not logged
        cwd: root,
      });
      fleets.push(fleet);
      children.push(fleet.child);
    }
    await Promise.all(fleets.map((f) => f.ready));
    const enrolled = fleets.reduce((n, f) => n + f.machines.size, 0);
    console.log(
      `${enrolled} agents enrolled with inventories in ${((Date.now() - te) / 1000).toFixed(1)} s (${SIM_PROCESSES} agent-sim processes)`,
    );
    const statsOfAll = async (): Promise<SimStats & { rssMb: number }> => {
      const all = await Promise.all(fleets.map((f) => f.stats()));
      const sum = { ...all[0]!, statuses: {} as Record<number, number>, rssMb: 0 };
      for (const k of [
        'enrolled',
        'polls',
        'jobs',
        'failedInstalls',
        'refusedResults',
        'errors',
        'resultRetries',
        'pollsNotHeld',
        'lostPolls',
      ] as const)
        sum[k] = all.reduce((n, x) => n + x[k], 0);
      for (const x of all)
        for (const [code, n] of Object.entries(x.statuses))
          sum.statuses[Number(code)] = (sum.statuses[Number(code)] ?? 0) + n;
      for (const f of fleets) {
        const status = await fs.readFile(`/proc/${f.child.pid}/status`, 'utf8').catch(() => '');
        sum.rssMb += Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0) / 1024;
      }
      return sum;
    };
    // Progress every 30 s: whether the agent-sim processes keep up (their memory) and what the gateway answered.
    const progress = setInterval(() => {
      void statsOfAll().then((s) =>
        console.log(
          `  [${new Date().toISOString().slice(11, 19)}] agents: ${s.polls} polls, ${s.jobs} jobs, ${s.errors} errors (${s.lostPolls} polls with no answer), statuses ${JSON.stringify(s.statuses)}; ` +
            `agent-sim RSS ${s.rssMb.toFixed(0)} MB in all; load average ${os
              .loadavg()
              .map((x) => x.toFixed(2))
              .join(' ')}`,
        ),
      );
    }, 30_000);
    progress.unref();

    // A test ring of 5 endpoints, the rest in production; a fast policy: no windows, short soak, limits at the fleet size.
    const all = await db.db.select({ id: endpoints.id }).from(endpoints);
    const [test, prod] = await db.db
      .insert(endpointGroups)
      .values([{ name: 'cb-test', isTestGroup: true }, { name: 'cb-prod' }])
      .returning();
    for (let i = 0; i < all.length; i += 1000) {
      await db.db
        .insert(groupMembers)
        .values(all.slice(i, i + 1000).map((e, k) => ({ groupId: (i + k < 5 ? test : prod)!.id, endpointId: e.id })));
    }
    await saveTestPolicy(db.db, 'cb', 'cb-test', {
      approval: { approverGroups: ['ops'], quorum: { low: 1, moderate: 1, high: 1, critical: 1 } },
      concurrency: Math.min(100_000, Math.max(200, ENDPOINTS)),
      batchSize: Math.min(100_000, Math.max(200, ENDPOINTS)),
      jobs: { unreachableAfterSeconds: 600, pollIntervalSeconds: 1 },
    });
    await grantApprovers(db.db, ['cli:cb-approver']);

    connection = await Connection.connect({ address: temporal.address });
    const client = new Client({ connection });
    const service = createCycleService({ client, db: db.db });
    const stages: Array<{ stage: CycleStage | 'approved'; at: number }> = [];
    const t0 = Date.now();
    const { cycleId } = await service.start({
      policyName: 'cb',
      scope: { groups: ['cb-test', 'cb-prod'] },
      requestedBy: 'cli:cb-requester',
    });
    let stage: CycleStage | null = null;
    let approvedAt = 0;
    while (Date.now() - t0 < TIMEOUT_S * 1000) {
      // A failed read (this process's pool timed out while its agents starved its event loop) is read again, not fatal.
      const row = await getCycleRow(db.db, cycleId).catch((e: unknown) => {
        console.log(`  (reading the cycle's stage failed: ${(e as Error).message}; reading again)`);
        return undefined;
      });
      const now: CycleStage | null = (row?.stage as CycleStage | undefined) ?? stage;
      if (now && now !== stage) {
        stages.push({ stage: now, at: Date.now() });
        stage = now;
      }
      if (stage && TERMINAL_STAGES.includes(stage)) break;
      if (stage === 'AWAIT_APPROVAL' && !approvedAt) {
        await service.approve(cycleId, { identity: 'cli:cb-approver', channel: 'cli' });
        approvedAt = Date.now();
        stages.push({ stage: 'approved', at: approvedAt });
      }
      await sleep(100);
    }
    const tEnd = Date.now();
    const at = (s: string) => stages.find((x) => x.stage === s)?.at;
    const fmt = (ms: number | undefined) => (ms === undefined ? '–' : `${(ms / 1000).toFixed(1)} s`);
    console.log(
      `stages (s after start): ${stages.map((s) => `${s.stage} ${((s.at - t0) / 1000).toFixed(1)}`).join(', ')}`,
    );
    const verified = at('REPORTING') ?? at('COMPLETED');
    const hs = await histories(client, workflowIdForCycle(cycleId));
    const events = hs.reduce((n, h) => n + h.events, 0);
    const bytes = hs.reduce((n, h) => n + h.bytes, 0);
    const r = await db.db.execute<{ kind: string; state: string; n: number }>(
      sql`select kind, state, count(*)::int as n from agent_jobs where cycle_id = ${cycleId} group by kind, state order by 1, 2`,
    );
    const jobs = r.rows.map((x) => `${x.kind}/${x.state} ${x.n}`).join(', ');
    console.log(`jobs: ${jobs}`);
    // Where a stage's time goes: per kind and wave, when its jobs were written, first handed out, and finished
    // (50th, 99th percentile, last), in seconds after the approval; attempts > 1 are jobs offered again.
    const tl = await db.db.execute<{
      kind: string;
      wave: number | null;
      n: number;
      created: number;
      leased: number;
      p50: number;
      p99: number;
      last: number;
      retried: number;
    }>(sql`
      select kind, wave, count(*)::int as n,
        extract(epoch from min(created_at))::float8 as created, extract(epoch from min(started_at))::float8 as leased,
        extract(epoch from percentile_disc(0.5) within group (order by finished_at))::float8 as p50,
        extract(epoch from percentile_disc(0.99) within group (order by finished_at))::float8 as p99,
        extract(epoch from max(finished_at))::float8 as last, count(*) filter (where attempts > 1)::int as retried
      from agent_jobs where cycle_id = ${cycleId} group by kind, wave order by min(created_at)`);
    const rel = (epoch: number | null) =>
      epoch === null ? '–' : ((epoch * 1000 - (approvedAt ?? t0)) / 1000).toFixed(1);
    console.log(
      'job timeline (s after approval): kind wave jobs written first-leased p50-done p99-done last-done offered-again',
    );
    for (const x of tl.rows)
      console.log(
        `  ${x.kind.padEnd(7)} ${String(x.wave ?? '-').padStart(4)} ${String(x.n).padStart(6)} ${rel(x.created).padStart(7)} ${rel(x.leased).padStart(7)} ${rel(x.p50).padStart(7)} ${rel(x.p99).padStart(7)} ${rel(x.last).padStart(7)} ${String(x.retried).padStart(6)}`,
      );
    const agents = await statsOfAll();
    const installs = fleets.flatMap((f) => [...f.installsRun.values()]);
    console.log(
      `agents: ${agents.polls} polls, ${agents.jobs} jobs, statuses ${JSON.stringify(agents.statuses)}, ${agents.resultRetries} result retries; ` +
        `${installs.length} patch installs run, ${installs.filter((n) => n !== 1).length} of them more than once (counted by the agents)`,
    );
    console.log(`workflows: ${hs.map((h) => `${h.workflowId} ${h.events} events ${h.bytes} B`).join('; ')}`);
    console.log(
      'endpoints   stage       start → approval asked   approval → verified   approval → completed   workflows   history events   history bytes',
    );
    console.log(
      `${String(ENDPOINTS).padStart(9)}   ${String(stage).padEnd(9)}   ${fmt(at('AWAIT_APPROVAL') && at('AWAIT_APPROVAL')! - t0).padStart(22)}   ${fmt(verified && approvedAt ? verified - approvedAt : undefined).padStart(19)}   ${fmt(stage === 'COMPLETED' && approvedAt ? tEnd - approvedAt : undefined).padStart(20)}   ${String(hs.length).padStart(9)}   ${String(events).padStart(14)}   ${String(bytes).padStart(13)}`,
    );
    console.log(`measured on ${machine()}`);
    const ok =
      stage === 'COMPLETED' &&
      events < 2000 &&
      (ENDPOINTS < 10_000 || ENDPOINTS > 10_000 || (verified !== undefined && verified - approvedAt < 120_000));
    console.log(
      ok ? 'targets met (completed; history < 2,000 events; 10k: approval → verified < 120 s)' : 'target NOT met',
    );
    clearInterval(progress);
    await Promise.all(fleets.map((f) => f.stop()));
    await cleanup();
    process.exit(ok ? 0 : 1);
  } catch (e) {
    await cleanup();
    throw e;
  }
}

void main().catch((e: unknown) => {
  console.error(e);
  process.exit(2);
});
