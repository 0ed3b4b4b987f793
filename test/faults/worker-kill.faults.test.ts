/**
 * Issue #15, fault injection (`npm run test:faults`; not part of `npm test`). A deployment scaled apart (one
 * `patchops server`, one `patchops worker`, a dedicated Temporal dev server, PostgreSQL) and a simulated fleet
 * speaking the real agent protocol.
 *
 * 1. The worker is killed with SIGKILL at random moments of a cycle and started again each time: the cycle
 *    completes, every (endpoint, patch) install ran exactly once on the agent side, no job result is lost, and
 *    the audit chain verifies.
 * 2. A slice of the agents dies in the middle of its installs and never comes back: their leases expire, those
 *    endpoints are counted unreachable, and the cycle still ends within a bounded time.
 *
 * Size: FAULT_ENDPOINTS (default 1000), FAULT_KILLS (default 10), FAULT_SEED (default: the clock; printed).
 * Each case prints one `faults:` line of counts.
 */
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
  jobCounts,
  runApprovedCycle,
  simFleet,
  startDeployment,
  type Deployment,
} from '../helpers/deployment';
import type { UpProcess } from '../helpers/up-process';

const ENDPOINTS = Number(process.env.FAULT_ENDPOINTS ?? 1000);
const KILLS = Number(process.env.FAULT_KILLS ?? 10);
const SEED = Number(process.env.FAULT_SEED ?? Date.now() % 1_000_000);
/** How long an agent has to report a job before it is offered again (the server's AGENT_LEASE_SECONDS). */
const LEASE_SECONDS = 10;
/** The second case's policy: endpoints silent this long are unreachable. */
const UNREACHABLE_AFTER_SECONDS = 30; // the least a policy accepts
/** A cycle must end within this; each kill may cost up to the activities' 30 s heartbeat timeout and a worker start. */
const CYCLE_TIMEOUT_MS = 300_000 + KILLS * 90_000;

let dep: Deployment;
let worker: UpProcess;
let serverUrl = '';
const abort = new AbortController();
const log = createLogger('warn');

function fleet(
  prefix: string,
  count: number,
  installLatencyMs: [number, number],
  signal: AbortSignal,
  seed: number,
): SimFleet {
  return simFleet(dep, { serverUrl, prefix, count, installLatencyMs, signal, seed, log });
}

beforeAll(async () => {
  dep = await startDeployment('faults');
  const port = await freePort();
  serverUrl = `http://127.0.0.1:${port}`;
  await dep.start('server', { PORT: String(port), AGENT_LEASE_SECONDS: String(LEASE_SECONDS) });
  worker = await dep.start('worker');
}, 300_000);

afterAll(async () => {
  abort.abort();
  await dep?.close();
});

it(
  `a cycle of ${ENDPOINTS} endpoints survives ${KILLS} SIGKILLs of its worker: every install exactly once, no result lost`,
  async () => {
    const agents = fleet('fk', ENDPOINTS, [1, 10], abort.signal, SEED);
    await agents.enroll();
    const running = agents.run();
    const { groups, endpoints, approver } = await groupFleetWithPolicy(
      dep,
      'fk',
      { member: (m) => m.startsWith('fk-'), ring: (m) => /^fk-00000[0-4]$/.test(m) },
      { concurrency: 200, batchSize: 200 },
    );
    expect(endpoints).toBe(ENDPOINTS);

    let cycleId: string | undefined;
    let done = false;
    const cycle = runApprovedCycle(dep, {
      policyName: 'fk',
      groups,
      approver,
      timeoutMs: CYCLE_TIMEOUT_MS,
      onStarted: (id) => (cycleId = id),
    }).finally(() => (done = true));

    // The killer: SIGKILL and a new worker process at random moments spread over the stages (injectFaults).
    const kills = await injectFaults(dep, {
      name: 'kill of the worker',
      count: KILLS,
      seed: SEED,
      cycleId: () => cycleId,
      done: () => done,
      fault: async () => {
        worker.child.kill('SIGKILL');
        await worker.exited;
        worker = await dep.start('worker');
      },
    });
    const result = await cycle;

    const o = await cycleOutcome(dep, result.cycleId, agents);
    console.log(
      `faults: worker-kill endpoints=${ENDPOINTS} seed=${SEED} kills=${kills.length} stages=${JSON.stringify(byStage(kills))} stage=${result.stage} ` +
        `installs=${o.installs} sent=${o.sent} duplicates=${o.duplicates.length} missing=${o.missing.length} unfinishedJobs=${o.unfinished} ` +
        `jobs=${JSON.stringify(o.jobs)} duration=${(result.ms / 1000).toFixed(1)}s`,
    );

    expect(kills.length, 'the cycle ended before the first kill').toBeGreaterThan(0);
    expect(result.stage).toBe('COMPLETED');
    expect(o.duplicates).toEqual([]);
    expect(o.missing).toEqual([]);
    expect(o.installs).toBe(o.sent);
    expect(o.unfinished).toBe(0);
    expect(o.jobs.install?.succeeded).toBe(ENDPOINTS);
    expect(o.jobs.verify?.succeeded).toBe(ENDPOINTS);
    expect(agents.stats.statuses[500] ?? 0).toBe(0);
    expect(await verifyAuditChain(dep.db.db)).toEqual({ ok: true, rows: expect.any(Number) });

    abort.abort();
    await running;
  },
  CYCLE_TIMEOUT_MS + 300_000,
);

it('agents killed mid-install: their leases expire, they are counted unreachable, and the cycle ends', async () => {
  const doomedCount = Math.max(1, Math.round(ENDPOINTS * 0.05));
  const liveSignal = new AbortController();
  const doomedSignal = new AbortController();
  abort.signal.addEventListener('abort', () => [liveSignal, doomedSignal].forEach((c) => c.abort()));
  const live = fleet('mi', ENDPOINTS - doomedCount, [1, 10], liveSignal.signal, SEED + 1);
  // Installs that take ten minutes: each doomed agent is mid-install when it is killed.
  const doomed = fleet('md', doomedCount, [600_000, 600_000], doomedSignal.signal, SEED + 2);
  await Promise.all([live.enroll(), doomed.enroll()]);
  const running = [live.run(), doomed.run()];
  const { groups, approver } = await groupFleetWithPolicy(
    dep,
    'mi',
    { member: (m) => /^m[id]-/.test(m), ring: (m) => /^mi-00000[0-4]$/.test(m) },
    {
      concurrency: 200,
      batchSize: 200,
      jobs: { unreachableAfterSeconds: UNREACHABLE_AFTER_SECONDS, pollIntervalSeconds: 1 },
    },
  );

  // Kill every doomed agent once all of them hold an install lease (or when the cycle ends first).
  let done = false;
  const cycle = runApprovedCycle(dep, { policyName: 'mi', groups, approver, timeoutMs: 600_000 }).finally(
    () => (done = true),
  );
  const machinesInstalling = () => new Set([...doomed.installsRun.keys()].map((k) => k.split(' ')[0])).size;
  while (!done && machinesInstalling() < doomedCount) await sleep(200);
  const killedMidInstall = machinesInstalling();
  doomedSignal.abort();
  const result = await cycle;

  const counts = await jobCounts(dep, result.cycleId);
  const duplicates = [...live.installsRun.entries()].filter(([, n]) => n > 1);
  console.log(
    `faults: agents-killed endpoints=${ENDPOINTS} killedMidInstall=${killedMidInstall} stage=${result.stage} ` +
      `unreachable=${counts.install?.unreachable ?? 0} installs=${live.installsRun.size} duplicates=${duplicates.length} ` +
      `jobs=${JSON.stringify(counts)} duration=${(result.ms / 1000).toFixed(1)}s`,
  );

  expect(killedMidInstall).toBe(doomedCount);
  // 5 % unreachable stays under the policy's 30 % failure threshold: the cycle completes.
  expect(result.stage).toBe('COMPLETED');
  expect(counts.install?.unreachable).toBe(doomedCount);
  expect(counts.install?.succeeded).toBe(ENDPOINTS - doomedCount);
  expect(counts.install?.queued ?? 0).toBe(0);
  expect(counts.install?.leased ?? 0).toBe(0);
  expect(duplicates).toEqual([]);
  expect(await verifyAuditChain(dep.db.db)).toEqual({ ok: true, rows: expect.any(Number) });

  liveSignal.abort();
  await Promise.all(running);
}, 900_000);
