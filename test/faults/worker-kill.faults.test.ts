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
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { SimFleet, seeded } from '../../src/agent-sim/fleet';
import { verifyAuditChain } from '../../src/db/audit';
import { TERMINAL_STAGES } from '../../src/domain/cycle';
import { createLogger } from '../../src/logging';
import { freePort } from '../../src/temporal/dev-server';
import { groupFleetWithPolicy, runApprovedCycle, stageOf, startDeployment, type Deployment } from '../helpers/deployment';
import type { UpProcess } from '../helpers/up-process';

const ENDPOINTS = Number(process.env.FAULT_ENDPOINTS ?? 1000);
const KILLS = Number(process.env.FAULT_KILLS ?? 10);
const SEED = Number(process.env.FAULT_SEED ?? Date.now() % 1_000_000);
/** How long an agent has to report a job before it is offered again (the server's AGENT_LEASE_SECONDS). */
const LEASE_SECONDS = 10;
/** The second case's policy: endpoints silent this long are unreachable. */
const UNREACHABLE_AFTER_SECONDS = 30; // the least a policy accepts
/** A cycle must end within this; each kill may cost up to the activities' 60 s heartbeat timeout. */
const CYCLE_TIMEOUT_MS = 300_000 + KILLS * 90_000;

let dep: Deployment;
let worker: UpProcess;
let serverUrl = '';
const abort = new AbortController();
const log = createLogger('warn');

function fleet(prefix: string, count: number, installLatencyMs: [number, number], signal: AbortSignal, seed: number): SimFleet {
  return new SimFleet({ serverUrl, enrollSecret: dep.enrollSecret, count, prefix, waitSeconds: 5, installLatencyMs, failureRate: 0, seed, log, signal });
}

/** Agent jobs of one cycle by kind and state. */
async function jobCounts(cycleId: string): Promise<Record<string, Record<string, number>>> {
  const r = await dep.db.db.execute<{ kind: string; state: string; n: number }>(
    sql`select kind, state, count(*)::int as n from agent_jobs where cycle_id = ${cycleId} group by kind, state`,
  );
  const out: Record<string, Record<string, number>> = {};
  for (const row of r.rows) (out[row.kind] ??= {})[row.state] = Number(row.n);
  return out;
}

/** Every (machine id, patch id) the cycle sent in an install job, as `<machine id> <patch id>` (the fleet's key). */
async function installsSent(cycleId: string): Promise<string[]> {
  const r = await dep.db.db.execute<{ key: string }>(sql`
    select e.machine_id || ' ' || (p ->> 'patchId') as key
    from agent_jobs j join endpoints e on e.id = j.endpoint_id, jsonb_array_elements(j.payload -> 'patches') p
    where j.cycle_id = ${cycleId} and j.kind = 'install'`);
  return r.rows.map((row) => row.key);
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

it(`a cycle of ${ENDPOINTS} endpoints survives ${KILLS} SIGKILLs of its worker: every install exactly once, no result lost`, async () => {
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
  const cycle = runApprovedCycle(dep, { policyName: 'fk', groups, approver, timeoutMs: CYCLE_TIMEOUT_MS, onStarted: (id) => (cycleId = id) }).finally(() => (done = true));

  // The killer: a random pause of 1-8 s, then SIGKILL and a new worker process, until KILLS or the cycle's end.
  // At most a quarter of the kills (rounded up) per stage: when the stage has had its share, the next kill waits
  // for the next stage, so the kills spread over scan, assess, deploy and verify as far as the timing allows.
  const rnd = seeded(SEED);
  const perStage = Math.ceil(KILLS / 4);
  const kills: Array<{ stage: string; atMs: number }> = [];
  const hits = (stage: string) => kills.filter((k) => k.stage === stage).length;
  const t0 = Date.now();
  while (kills.length < KILLS && !done) {
    await sleep(1000 + rnd() * 7000);
    let stage = cycleId ? await stageOf(dep, cycleId) : null;
    while (!done && (!stage || hits(stage) >= perStage)) {
      await sleep(250);
      stage = cycleId ? await stageOf(dep, cycleId) : null;
    }
    if (done || !stage || TERMINAL_STAGES.includes(stage)) break;
    worker.child.kill('SIGKILL');
    await worker.exited;
    kills.push({ stage, atMs: Date.now() - t0 });
    console.log(`faults: kill ${kills.length}/${KILLS} of the worker at ${((Date.now() - t0) / 1000).toFixed(1)} s, stage ${stage}`);
    worker = await dep.start('worker');
  }
  const result = await cycle;

  const counts = await jobCounts(result.cycleId);
  const sent = await installsSent(result.cycleId);
  const ran = [...agents.installsRun.entries()];
  const duplicates = ran.filter(([, n]) => n > 1);
  const missing = sent.filter((k) => !agents.installsRun.has(k));
  const unfinished = Object.values(counts).reduce((n, byState) => n + (byState.queued ?? 0) + (byState.leased ?? 0) + (byState.held ?? 0), 0);
  const byStage: Record<string, number> = {};
  for (const k of kills) byStage[k.stage] = (byStage[k.stage] ?? 0) + 1;
  console.log(
    `faults: worker-kill endpoints=${ENDPOINTS} seed=${SEED} kills=${kills.length} stages=${JSON.stringify(byStage)} stage=${result.stage} ` +
      `installs=${ran.length} sent=${sent.length} duplicates=${duplicates.length} missing=${missing.length} unfinishedJobs=${unfinished} ` +
      `jobs=${JSON.stringify(counts)} duration=${(result.ms / 1000).toFixed(1)}s`,
  );

  expect(kills.length, 'the cycle ended before the first kill').toBeGreaterThan(0);
  expect(result.stage).toBe('COMPLETED');
  expect(duplicates).toEqual([]);
  expect(missing).toEqual([]);
  expect(ran.length).toBe(sent.length);
  expect(unfinished).toBe(0);
  expect(counts.install?.succeeded).toBe(ENDPOINTS);
  expect(counts.verify?.succeeded).toBe(ENDPOINTS);
  expect(agents.stats.statuses[500] ?? 0).toBe(0);
  expect(await verifyAuditChain(dep.db.db)).toEqual({ ok: true, rows: expect.any(Number) });

  abort.abort();
  await running;
}, CYCLE_TIMEOUT_MS + 300_000);

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
    { concurrency: 200, batchSize: 200, jobs: { unreachableAfterSeconds: UNREACHABLE_AFTER_SECONDS, pollIntervalSeconds: 1 } },
  );

  // Kill every doomed agent once all of them hold an install lease (or when the cycle ends first).
  let done = false;
  const cycle = runApprovedCycle(dep, { policyName: 'mi', groups, approver, timeoutMs: 600_000 }).finally(() => (done = true));
  const machinesInstalling = () => new Set([...doomed.installsRun.keys()].map((k) => k.split(' ')[0])).size;
  while (!done && machinesInstalling() < doomedCount) await sleep(200);
  const killedMidInstall = machinesInstalling();
  doomedSignal.abort();
  const result = await cycle;

  const counts = await jobCounts(result.cycleId);
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
