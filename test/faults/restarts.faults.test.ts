/**
 * Issue #15, fault injection (`npm run test:faults`; not part of `npm test`): the services a deployment leans on
 * restarted while a cycle runs. The same deployment scaled apart as the worker-kill test (test/helpers/deployment.ts:
 * one `patchops server`, one `patchops worker`, a dedicated Temporal dev server, PostgreSQL) and a simulated fleet
 * speaking the real agent protocol, except that PostgreSQL is a private server of this test (the machine's shared
 * one is never restarted; test/helpers/private-postgres.ts) and the dev server keeps its state on file.
 *
 * 1. PostgreSQL restarted (fast shutdown, open connections cut) mid-cycle.
 * 2. The Temporal dev server restarted (SIGTERM, state in its SQLite file) mid-cycle.
 * 3. The HTTP server (agent gateway) SIGKILLed while the agents long-poll, and started again on the same port.
 *
 * Each time: the cycle completes, every (endpoint, patch) install ran exactly once on the agent side, no job result
 * is lost, the audit chain verifies, and the agents reconnect on their own (they are never restarted).
 *
 * Size: FAULT_ENDPOINTS (default 1000) per case, FAULT_KILLS (default 3) restarts per case, FAULT_SEED (default:
 * the clock; printed). Each case prints one `faults:` line of counts.
 */
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { SimFleet } from '../../src/agent-sim/fleet';
import { verifyAuditChain } from '../../src/db/audit';
import { createLogger } from '../../src/logging';
import { freePort } from '../helpers/free-port';
import {
  byStage,
  cycleOutcome,
  groupFleetWithPolicy,
  injectFaults,
  runApprovedCycle,
  simFleet,
  startDeployment,
  type Deployment,
} from '../helpers/deployment';
import { startPrivatePostgres, type PrivatePostgres } from '../helpers/private-postgres';
import type { UpProcess } from '../helpers/up-process';

const ENDPOINTS = Number(process.env.FAULT_ENDPOINTS ?? 1000);
const RESTARTS = Number(process.env.FAULT_KILLS ?? 3);
const SEED = Number(process.env.FAULT_SEED ?? Date.now() % 1_000_000);
/** How long an agent has to report a job before it is offered again (the server's AGENT_LEASE_SECONDS). */
const LEASE_SECONDS = 10;
/** How long each restarted service stays down. */
const DOWN_MS = 2000;
/** A cycle must end within this; each restart may cost up to the activities' 30 s heartbeat timeout and a start. */
const CYCLE_TIMEOUT_MS = 300_000 + RESTARTS * 90_000;

let pg: PrivatePostgres;
let dep: Deployment;
let server: UpProcess;
let port = 0;
let serverUrl = '';
let tmp = '';
const abort = new AbortController();
const log = createLogger('warn');
const serverEnv = () => ({ PORT: String(port), AGENT_LEASE_SECONDS: String(LEASE_SECONDS) });

beforeAll(async () => {
  pg = await startPrivatePostgres();
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'patchops-restarts-'));
  dep = await startDeployment('restarts', { databaseUrl: pg.url, temporalDbFile: path.join(tmp, 'temporal.db') });
  port = await freePort();
  serverUrl = `http://127.0.0.1:${port}`;
  server = await dep.start('server', serverEnv());
  await dep.start('worker');
}, 300_000);

afterAll(async () => {
  abort.abort();
  await dep?.close();
  await pg?.close();
  if (tmp) await fs.rm(tmp, { recursive: true, force: true });
});

/**
 * One cycle over a fleet of its own (machine ids `<prefix>-…`) with `fault` injected RESTARTS times at random
 * moments spread over its stages; prints the `faults:` line and checks the outcome.
 */
async function cycleSurvives(
  name: string,
  prefix: string,
  seed: number,
  fault: () => Promise<void>,
  opts: { no500: boolean },
): Promise<void> {
  const stop = new AbortController();
  const agents: SimFleet = simFleet(dep, {
    serverUrl,
    prefix,
    count: ENDPOINTS,
    installLatencyMs: [1, 10],
    signal: AbortSignal.any([abort.signal, stop.signal]),
    seed,
    log,
  });
  await agents.enroll();
  const running = agents.run();
  const ring = new RegExp(`^${prefix}-00000[0-4]$`);
  const { groups, endpoints, approver } = await groupFleetWithPolicy(
    dep,
    prefix,
    { member: (m) => m.startsWith(`${prefix}-`), ring: (m) => ring.test(m) },
    { concurrency: 200, batchSize: 200 },
  );
  expect(endpoints).toBe(ENDPOINTS);

  let cycleId: string | undefined;
  let done = false;
  const cycle = runApprovedCycle(dep, {
    policyName: prefix,
    groups,
    approver,
    timeoutMs: CYCLE_TIMEOUT_MS,
    onStarted: (id) => (cycleId = id),
  }).finally(() => (done = true));
  const faults = await injectFaults(dep, {
    name,
    count: RESTARTS,
    seed,
    cycleId: () => cycleId,
    done: () => done,
    fault,
  });
  const result = await cycle;

  const o = await cycleOutcome(dep, result.cycleId, agents);
  const s = agents.stats;
  console.log(
    `faults: ${name} endpoints=${ENDPOINTS} seed=${seed} restarts=${faults.length} stages=${JSON.stringify(byStage(faults))} ` +
      `restartSeconds=${JSON.stringify(faults.map((f) => Number((f.ms / 1000).toFixed(1))))} stage=${result.stage} ` +
      `installs=${o.installs} sent=${o.sent} duplicates=${o.duplicates.length} missing=${o.missing.length} unfinishedJobs=${o.unfinished} ` +
      `jobs=${JSON.stringify(o.jobs)} agentErrors=${s.errors} resultRetries=${s.resultRetries} refusedResults=${s.refusedResults} ` +
      `statuses=${JSON.stringify(s.statuses)} duration=${(result.ms / 1000).toFixed(1)}s`,
  );

  // A 500 is a bug (an outage must read 503 + Retry-After): show what the server logged at error level.
  if (s.statuses[500])
    for (const line of server
      .output()
      .split('\n')
      .filter((l) => l.includes('"level":50'))
      .slice(-5))
      console.log(`faults: ${name} server error: ${line.slice(0, 600)}`);

  expect(faults.length, 'the cycle ended before the first restart').toBeGreaterThan(0);
  expect(result.stage).toBe('COMPLETED');
  expect(o.duplicates).toEqual([]);
  expect(o.missing).toEqual([]);
  expect(o.installs).toBe(o.sent);
  expect(o.unfinished).toBe(0);
  expect(o.jobs.install?.succeeded).toBe(ENDPOINTS);
  expect(o.jobs.verify?.succeeded).toBe(ENDPOINTS);
  if (opts.no500) expect(s.statuses[500] ?? 0).toBe(0);
  expect(await verifyAuditChain(dep.db.db)).toEqual({ ok: true, rows: expect.any(Number) });

  stop.abort();
  await running;
}

it(
  `PostgreSQL restarted ${RESTARTS} times mid-cycle (${ENDPOINTS} endpoints): every install exactly once, no result lost`,
  async () => {
    // While the database is away the gateway answers 503 with Retry-After (never 500); the agents retry until it is back.
    await cycleSurvives('postgres-restart', 'rp', SEED, () => pg.restart(DOWN_MS), { no500: true });
  },
  CYCLE_TIMEOUT_MS + 300_000,
);

it(
  `the Temporal dev server (state on file) restarted ${RESTARTS} times mid-cycle: every install exactly once, no result lost`,
  async () => {
    await cycleSurvives('temporal-restart', 'rt', SEED + 1, () => dep.restartTemporal(DOWN_MS), { no500: true });
  },
  CYCLE_TIMEOUT_MS + 300_000,
);

it(
  `the HTTP server SIGKILLed ${RESTARTS} times while agents long-poll, started again: agents reconnect, every install exactly once`,
  async () => {
    await cycleSurvives(
      'gateway-kill',
      'rg',
      SEED + 2,
      async () => {
        server.child.kill('SIGKILL');
        await server.exited;
        await sleep(DOWN_MS);
        server = await dep.start('server', serverEnv());
      },
      { no500: true },
    );
  },
  CYCLE_TIMEOUT_MS + 300_000,
);
