/**
 * A deployment scaled apart, for the tests of issue #15 (scale-out, fault injection): one PostgreSQL database, one
 * dedicated Temporal dev server, and real `patchops server` / `patchops worker` processes joined to both. Also the
 * fleet's grouping into a test ring and production, and a cycle driven from start through approval to its end
 * through the public cycle service, reading the stage from the database (it answers while no worker runs).
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Client, Connection } from '@temporalio/client';
import { inject } from 'vitest';
import { loadConfig } from '../../src/config/index';
import { getCycleRow } from '../../src/db/cycles';
import { endpointGroups, endpoints, groupMembers } from '../../src/db/schema/index';
import type { DeploymentPolicyInput } from '../../src/domain/policy';
import { TERMINAL_STAGES, type CycleStage } from '../../src/domain/cycle';
import { loadAuditKeys } from '../../src/runtime/database';
import { createCycleService } from '../../src/services/temporal-cycle-service';
import { freePort, startDevServer, type DevServer } from '../../src/temporal/dev-server';
import { grantApprovers, saveTestPolicy } from './cycle-fixtures';
import { createTestDatabase, type TestDatabase } from './db';
import { startPatchopsUp, type UpProcess } from './up-process';

export interface Deployment {
  db: TestDatabase;
  temporal: DevServer;
  enrollSecret: string;
  /** Starts one process (its own data folder; `extra` adds or overrides variables) and resolves on its ready line. */
  start(command: 'server' | 'worker', extra?: NodeJS.ProcessEnv, timeoutMs?: number): Promise<UpProcess>;
  /** The public cycle service, as the CLI and the API use it. */
  cycles(): Promise<ReturnType<typeof createCycleService>>;
  /** SIGKILLs every process still running, stops the dev server, drops the database. */
  close(): Promise<void>;
}

export async function startDeployment(name: string): Promise<Deployment> {
  const db = await createTestDatabase({ migrate: false });
  const temporal = await startDevServer({ cliPath: inject('temporalCliPath'), port: await freePort() });
  const secretsKey = randomBytes(32).toString('hex');
  const enrollSecret = `${name}-enrol-secret-0123456789`;
  const started: UpProcess[] = [];
  let connection: Connection | undefined;
  // This test writes audit rows too (the policy, the grants): with the deployment's key, as an admin's CLI would.
  await loadAuditKeys(loadConfig({ SECRETS_KEY: secretsKey, DATABASE_URL: db.url }));
  return {
    db,
    temporal,
    enrollSecret,
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
  const all = (await db.select({ id: endpoints.id, machineId: endpoints.machineId }).from(endpoints)).filter((e) => select.member(e.machineId));
  const [test, prod] = await db.insert(endpointGroups).values([{ name: `${name}-test`, isTestGroup: true }, { name: `${name}-prod` }]).returning();
  for (let i = 0; i < all.length; i += 1000) {
    await db.insert(groupMembers).values(all.slice(i, i + 1000).map((e) => ({ groupId: (select.ring(e.machineId) ? test : prod)!.id, endpointId: e.id })));
  }
  await saveTestPolicy(db, name, `${name}-test`, { approval: { approverGroups: ['ops'], quorum: { low: 1, moderate: 1, high: 1, critical: 1 } }, ...overrides });
  const approver = `cli:${name}-approver`;
  await grantApprovers(db, [approver]);
  return { groups: [`${name}-test`, `${name}-prod`], endpoints: all.length, approver };
}

/** The cycle's stage as the workflow last wrote it (null before its first write). */
export async function stageOf(dep: Deployment, cycleId: string): Promise<CycleStage | null> {
  return ((await getCycleRow(dep.db.db, cycleId))?.stage as CycleStage | undefined) ?? null;
}

/**
 * Starts a cycle of `policyName` over `groups`, approves it when it asks (retrying while no worker can take the
 * update), and waits for a terminal stage or `timeoutMs`. `onStarted` receives the cycle id at once.
 */
export async function runApprovedCycle(
  dep: Deployment,
  input: { policyName: string; groups: string[]; approver: string; timeoutMs: number; onStarted?: (cycleId: string) => void },
): Promise<{ cycleId: string; stage: CycleStage | null; ms: number }> {
  const service = await dep.cycles();
  const t0 = Date.now();
  const { cycleId } = await service.start({ policyName: input.policyName, scope: { groups: input.groups }, requestedBy: `cli:${input.policyName}-requester` });
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
