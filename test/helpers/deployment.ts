/**
 * A deployment scaled apart, for the tests of issue #15 (scale-out, fault injection): one PostgreSQL database, one
 * dedicated Temporal dev server, and real `patchops server` / `patchops worker` processes joined to both. Also the
 * fleet's grouping into a test ring and production, and a cycle driven from start through approval to its end
 * through the public cycle service, reading the stage from the database (it answers while no worker runs). And
 * what the fault-injection tests (test/faults) share: a simulated fleet, faults injected at random moments spread
 * over the cycle's stages, and the cycle's outcome counted on the agent side and in the database.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Client, Connection } from '@temporalio/client';
import { sql } from 'drizzle-orm';
import { inject } from 'vitest';
import { SimFleet, seeded } from '../../src/agent-sim/fleet';
import { loadConfig } from '../../src/config/index';
import { getCycleRow } from '../../src/db/cycles';
import { endpointGroups, endpoints, groupMembers } from '../../src/db/schema/index';
import type { DeploymentPolicyInput } from '../../src/domain/policy';
import { TERMINAL_STAGES, type CycleStage } from '../../src/domain/cycle';
import type { Logger } from '../../src/logging';
import { loadAuditKeys } from '../../src/runtime/database';
import { createCycleService } from '../../src/services/temporal-cycle-service';
import { startDevServer, type DevServer } from '../../src/temporal/dev-server';
import { freePort } from './free-port';
import { grantApprovers, saveTestPolicy } from './cycle-fixtures';
import { createTestDatabase, type TestDatabase } from './db';
import { startPatchopsUp, type UpProcess } from './up-process';

export interface Deployment {
  db: TestDatabase;
  /** The dev server now running (restartTemporal() replaces it, on the same address). */
  readonly temporal: DevServer;
  enrollSecret: string;
  /**
   * Stops the Temporal dev server (SIGTERM), waits `downMs` and starts it again on the same address. Only with
   * `temporalDbFile`: its state is on file, so workflows carry on where they were.
   */
  restartTemporal(downMs?: number): Promise<void>;
  /** Starts one process (its own data folder; `extra` adds or overrides variables) and resolves on its ready line. */
  start(command: 'server' | 'worker', extra?: NodeJS.ProcessEnv, timeoutMs?: number): Promise<UpProcess>;
  /** The public cycle service, as the CLI and the API use it. */
  cycles(): Promise<ReturnType<typeof createCycleService>>;
  /** SIGKILLs every process still running, stops the dev server, drops the database. */
  close(): Promise<void>;
}

/**
 * `databaseUrl`: the PostgreSQL server to make the database on (default DATABASE_URL's; a private one for a restart
 * test). `temporalDbFile`: the dev server keeps its state in this SQLite file (default in memory).
 */
export async function startDeployment(
  name: string,
  options: { databaseUrl?: string; temporalDbFile?: string } = {},
): Promise<Deployment> {
  const db = await createTestDatabase({ migrate: false, baseUrl: options.databaseUrl });
  const temporalPort = await freePort();
  const startTemporal = () =>
    startDevServer({
      cliPath: inject('temporalCliPath'),
      port: temporalPort,
      dbFile: options.temporalDbFile,
      startTimeoutMs: 120_000,
    });
  let temporal = await startTemporal();
  const secretsKey = randomBytes(32).toString('hex');
  const enrollSecret = `${name}-enrol-secret-0123456789`;
  const started: UpProcess[] = [];
  let connection: Connection | undefined;
  // This test writes audit rows too (the policy, the grants): with the deployment's key, as an admin's CLI would.
  await loadAuditKeys(loadConfig({ SECRETS_KEY: secretsKey, DATABASE_URL: db.url }));
  return {
    db,
    get temporal() {
      return temporal;
    },
    enrollSecret,
    async restartTemporal(downMs = 0) {
      if (!options.temporalDbFile)
        throw new Error('restartTemporal: the dev server keeps its state in memory (no temporalDbFile)');
      await temporal.stop();
      if (downMs > 0) await sleep(downMs);
      temporal = await startTemporal();
    },
    async start(command, extra = {}, timeoutMs = 240_000) {
      const env: NodeJS.ProcessEnv = {
        PATH: process.env.PATH,
        HOME: process.env.HOME,
        // info: a process that never gets ready shows in the failure how far it got.
        LOG_LEVEL: 'info',
        DATABASE_URL: db.url,
        TEMPORAL_ADDRESS: temporal.address,
        TEMPORAL_CLI: inject('temporalCliPath'),
        SECRETS_KEY: secretsKey,
        AGENT_ENROLL_SECRET: enrollSecret,
        PATCHOPS_ADMIN_PASSWORD: `${name}-admin-password`,
        PATCHOPS_DATA_DIR: await fs.mkdtemp(path.join(os.tmpdir(), `patchops-${name}-`)),
        ...extra,
      };
      const p = await startPatchopsUp(env, command, timeoutMs);
      started.push(p);
      return p;
    },
    async cycles() {
      connection ??= await Connection.connect({ address: temporal.address });
      return createCycleService({ client: new Client({ connection }), db: db.db });
    },
    async close() {
      for (const p of started) if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL');
      await connection?.close();
      await temporal.stop();
      await db.close();
    },
  };
}

/**
 * Puts the endpoints whose machine id `member` accepts into two new groups, `<name>-test` (those `ring` accepts,
 * the policy's test group) and `<name>-prod`, and saves a fast test policy `name` (overrides on top) with one
 * approver, `cli:<name>-approver`. Returns the groups and how many endpoints they hold.
 */
export async function groupFleetWithPolicy(
  dep: Deployment,
  name: string,
  select: { member: (machineId: string) => boolean; ring: (machineId: string) => boolean },
  overrides: Partial<DeploymentPolicyInput> = {},
): Promise<{ groups: string[]; endpoints: number; approver: string }> {
  const { db } = dep.db;
  const all = (await db.select({ id: endpoints.id, machineId: endpoints.machineId }).from(endpoints)).filter((e) =>
    select.member(e.machineId),
  );
  const [test, prod] = await db
    .insert(endpointGroups)
    .values([{ name: `${name}-test`, isTestGroup: true }, { name: `${name}-prod` }])
    .returning();
  for (let i = 0; i < all.length; i += 1000) {
    await db
      .insert(groupMembers)
      .values(
        all
          .slice(i, i + 1000)
          .map((e) => ({ groupId: (select.ring(e.machineId) ? test : prod)!.id, endpointId: e.id })),
      );
  }
  await saveTestPolicy(db, name, `${name}-test`, {
    approval: { approverGroups: ['ops'], quorum: { low: 1, moderate: 1, high: 1, critical: 1 } },
    ...overrides,
  });
  const approver = `cli:${name}-approver`;
  await grantApprovers(db, [approver]);
  return { groups: [`${name}-test`, `${name}-prod`], endpoints: all.length, approver };
}

/** The cycle's stage as the workflow last wrote it (null before its first write, and while the database is away). */
export async function stageOf(dep: Deployment, cycleId: string): Promise<CycleStage | null> {
  try {
    return ((await getCycleRow(dep.db.db, cycleId))?.stage as CycleStage | undefined) ?? null;
  } catch {
    return null; // PostgreSQL restarting (test/faults/restarts): ask again later
  }
}

/**
 * Starts a cycle of `policyName` over `groups`, approves it when it asks (retrying while no worker can take the
 * update), and waits for a terminal stage or `timeoutMs`. `onStarted` receives the cycle id at once.
 */
export async function runApprovedCycle(
  dep: Deployment,
  input: {
    policyName: string;
    groups: string[];
    approver: string;
    timeoutMs: number;
    onStarted?: (cycleId: string) => void;
  },
): Promise<{ cycleId: string; stage: CycleStage | null; ms: number }> {
  const service = await dep.cycles();
  const t0 = Date.now();
  const { cycleId } = await service.start({
    policyName: input.policyName,
    scope: { groups: input.groups },
    requestedBy: `cli:${input.policyName}-requester`,
  });
  input.onStarted?.(cycleId);
  let approved = false;
  let stage = await stageOf(dep, cycleId);
  while (Date.now() - t0 < input.timeoutMs && !(stage && TERMINAL_STAGES.includes(stage))) {
    if (stage === 'AWAIT_APPROVAL' && !approved) {
      try {
        await service.approve(cycleId, { identity: input.approver, channel: 'cli' });
        approved = true;
      } catch {
        // No worker to take the update just now (it was killed): ask again.
      }
    }
    await sleep(500);
    stage = await stageOf(dep, cycleId);
  }
  return { cycleId, stage, ms: Date.now() - t0 };
}

/** A simulated fleet on the deployment's gateway: no install fails; agents long-poll for 5 s. */
export function simFleet(
  dep: Deployment,
  o: {
    serverUrl: string;
    prefix: string;
    count: number;
    installLatencyMs: [number, number];
    signal: AbortSignal;
    seed: number;
    log: Logger;
  },
): SimFleet {
  return new SimFleet({
    serverUrl: o.serverUrl,
    enrollSecret: dep.enrollSecret,
    count: o.count,
    prefix: o.prefix,
    waitSeconds: 5,
    installLatencyMs: o.installLatencyMs,
    failureRate: 0,
    seed: o.seed,
    log: o.log,
    signal: o.signal,
  });
}

/** Agent jobs of one cycle by kind and state. */
export async function jobCounts(dep: Deployment, cycleId: string): Promise<Record<string, Record<string, number>>> {
  const r = await dep.db.db.execute<{ kind: string; state: string; n: number }>(
    sql`select kind, state, count(*)::int as n from agent_jobs where cycle_id = ${cycleId} group by kind, state`,
  );
  const out: Record<string, Record<string, number>> = {};
  for (const row of r.rows) (out[row.kind] ??= {})[row.state] = Number(row.n);
  return out;
}

/** Every (machine id, patch id) the cycle sent in an install job, as `<machine id> <patch id>` (the fleet's key). */
export async function installsSent(dep: Deployment, cycleId: string): Promise<string[]> {
  const r = await dep.db.db.execute<{ key: string }>(sql`
    select e.machine_id || ' ' || (p ->> 'patchId') as key
    from agent_jobs j join endpoints e on e.id = j.endpoint_id, jsonb_array_elements(j.payload -> 'patches') p
    where j.cycle_id = ${cycleId} and j.kind = 'install'`);
  return r.rows.map((row) => row.key);
}

export interface CycleOutcome {
  jobs: Record<string, Record<string, number>>;
  /** Installs run on the agent side (distinct keys), and sent in install jobs. */
  installs: number;
  sent: number;
  /** Keys the agents ran more than once; keys sent but never run. */
  duplicates: Array<[string, number]>;
  missing: string[];
  /** Jobs of the cycle still queued, leased or held. */
  unfinished: number;
}

/** What a fault-injection case checks after its cycle: the fleet's installs against what the cycle sent. */
export async function cycleOutcome(dep: Deployment, cycleId: string, fleet: SimFleet): Promise<CycleOutcome> {
  const jobs = await jobCounts(dep, cycleId);
  const sent = await installsSent(dep, cycleId);
  const ran = [...fleet.installsRun.entries()];
  return {
    jobs,
    installs: ran.length,
    sent: sent.length,
    duplicates: ran.filter(([, n]) => n > 1),
    missing: sent.filter((k) => !fleet.installsRun.has(k)),
    unfinished: Object.values(jobs).reduce(
      (n, byState) => n + (byState.queued ?? 0) + (byState.leased ?? 0) + (byState.held ?? 0),
      0,
    ),
  };
}

/**
 * Injects `count` faults into a running cycle: a random pause of 1–8 s (seeded), then `fault()`, until `count` or
 * the cycle's end. At most a quarter of the faults (rounded up) per stage, the stage read from the database: when
 * a stage has had its share the next fault waits for the next stage, so they spread over scan, assess, deploy and
 * verify as far as the timing allows. Prints one `faults:` line per fault; returns each fault's stage and moment.
 */
export async function injectFaults(
  dep: Deployment,
  o: {
    name: string;
    count: number;
    seed: number;
    cycleId: () => string | undefined;
    done: () => boolean;
    fault: () => Promise<void>;
  },
): Promise<Array<{ stage: CycleStage; atMs: number; ms: number }>> {
  const rnd = seeded(o.seed);
  const perStage = Math.ceil(o.count / 4);
  const faults: Array<{ stage: CycleStage; atMs: number; ms: number }> = [];
  const hits = (stage: string) => faults.filter((k) => k.stage === stage).length;
  const t0 = Date.now();
  const stageNow = async () => {
    const id = o.cycleId();
    return id ? await stageOf(dep, id) : null;
  };
  while (faults.length < o.count && !o.done()) {
    await sleep(1000 + rnd() * 7000);
    let stage = await stageNow();
    while (!o.done() && (!stage || hits(stage) >= perStage)) {
      await sleep(250);
      stage = await stageNow();
    }
    if (o.done() || !stage || TERMINAL_STAGES.includes(stage)) break;
    const at = Date.now();
    await o.fault();
    faults.push({ stage, atMs: at - t0, ms: Date.now() - at });
    console.log(
      `faults: ${o.name} ${faults.length}/${o.count} at ${((at - t0) / 1000).toFixed(1)} s, stage ${stage} (took ${((Date.now() - at) / 1000).toFixed(1)} s)`,
    );
  }
  return faults;
}

/** Faults by stage, for the `faults:` line: {"DEPLOYING":2,…}. */
export function byStage(faults: Array<{ stage: string }>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const f of faults) out[f.stage] = (out[f.stage] ?? 0) + 1;
  return out;
}
