/**
 * The agent in-process against the real gateway and database: planned restarts with user deferral (through
 * the real `patchops agent --defer-reboot` command), and lease renewal during an install that outlasts its lease.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { eq } from 'drizzle-orm';
import type { FastifyInstance } from 'fastify';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../test/helpers/db';
import { addEnrollSecret } from '../db/agent-enroll-secrets';
import { agentJobs, endpoints } from '../db/schema/index';
import { createLogger } from '../logging';
import { createAgentGateway, type AgentGateway } from '../server/agent-gateway';
import { buildServer } from '../server/app';
import type { PackageRef, PatchJobPayload } from '../shared/agent-protocol';
import { Agent } from './agent';
import type { Backend, OperationResult } from './backends/types';
import { RecordingRebooter } from './reboot';
import { StateStore } from './state';
import { SecretBox } from '../db/secret-box';

const run = promisify(execFile);
const root = path.resolve(import.meta.dirname, '..', '..');
const SECRET = 'agent-test-enrol-secret-0123';
const LEASE_SECONDS = 3;

let tdb: TestDatabase;
let app: FastifyInstance;
let gateway: AgentGateway;
let url: string;

beforeAll(async () => {
  tdb = await createTestDatabase();
  const logger = createLogger(process.env.TEST_LOG ?? 'silent');
  // These tests count the jobs each poll brings: no enrolment scan (tested in src/server/agent-trust.integration.test.ts).
  gateway = createAgentGateway({
    database: tdb,
    secretBox: SecretBox.ephemeral(),
    logger,
    leaseSeconds: LEASE_SECONDS,
    refreshMs: 100,
    scanOnFirstEnrolment: false,
  });
  app = await buildServer({ logger, health: [], routes: [gateway.routes] });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const addr = app.server.address();
  url = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`;
  await addEnrollSecret(tdb.db, { name: 'main', secret: SECRET });
});
afterAll(async () => {
  await app?.close();
  await tdb?.close();
});

/** A package manager in memory: installs take `installMs` and need a restart. */
class MemoryBackend implements Backend {
  readonly name = 'apt';
  readonly versions = new Map<string, string>([['openssl', '3.0.11-1~deb12u2']]);
  constructor(private readonly installMs = 0) {}
  async scan() {
    return [];
  }
  async install(pkgs: PackageRef[]): Promise<OperationResult> {
    await new Promise((r) => setTimeout(r, this.installMs));
    for (const p of pkgs) this.versions.set(p.name, p.version!);
    return { ok: true, log: `installed ${pkgs.map((p) => p.name).join(' ')}`, rebootRequired: true };
  }
  async rollback(): Promise<OperationResult> {
    return { ok: false, log: '', error: 'not in this test' };
  }
  async installedVersions(names: string[]) {
    return new Map(names.map((n) => [n, this.versions.get(n) ?? null]));
  }
  async inventory() {
    return [...this.versions].map(([name, version]) => ({ source: 'apt', name, version }));
  }
}

async function startAgent(name: string, backend: Backend, extra: Partial<ConstructorParameters<typeof Agent>[0]> = {}) {
  const stateDir = await fs.mkdtemp(path.join(os.tmpdir(), `patchops-agent-${name}-`));
  const rebooter = new RecordingRebooter();
  const agent = new Agent({
    serverUrl: url,
    enrollSecret: SECRET,
    stateDir,
    log: pino({ level: process.env.TEST_LOG ?? 'silent' }),
    platform: {
      osFamily: 'linux',
      osName: 'Debian GNU/Linux',
      osVersion: '12',
      arch: 'x64',
      hostname: name,
      machineId: `machine-${name}-${Date.now()}`,
    },
    backends: new Map([['apt', backend]]),
    rebooter,
    waitSeconds: 2,
    ...extra,
  });
  await agent.start();
  return { agent, rebooter, stateDir, store: new StateStore(stateDir) };
}

const installPayload = (reboot: PatchJobPayload['reboot']): PatchJobPayload => ({
  patches: [
    {
      patchId: 'DSA-5764-1',
      packages: [{ manager: 'apt', name: 'openssl', version: '3.0.15-1~deb12u1' }],
      rebootRequired: true,
    },
  ],
  reboot,
});

async function addJob(endpointId: string, id: string, payload: PatchJobPayload) {
  await tdb.db.insert(agentJobs).values({ id, endpointId, kind: 'install', payload });
  gateway.wake([endpointId]);
}

describe('restarts after an install', () => {
  it('plans the restart, tells the user, takes one deferral from the CLI, refuses the next and restarts when due', async () => {
    const { agent, rebooter, store, stateDir } = await startAgent('reboot-host', new MemoryBackend());
    // The request drop box is writable by any user and not listable; the state directory only traversable.
    if (process.platform !== 'win32') {
      expect((await fs.stat(store.requestsDir)).mode & 0o7777).toBe(0o1733);
      expect((await fs.stat(stateDir)).mode & 0o777).toBe(0o711);
    }
    const jobId = `install:reboot-test:${agent.endpointId}`;
    await addJob(
      agent.endpointId,
      jobId,
      installPayload({ behaviour: 'if_required', notifyUser: true, deferralLimit: 1, deferralMinutes: 60 }),
    );
    expect(await agent.pollOnce(2)).toBe(1);

    const job = await tdb.db.query.agentJobs.findFirst({ where: eq(agentJobs.id, jobId) });
    expect(job?.state).toBe('succeeded');
    expect(job?.result).toMatchObject({
      rebootPending: true,
      patches: [{ patchId: 'DSA-5764-1', state: 'pending_reboot' }],
    });
    const ep = await tdb.db.query.endpoints.findFirst({ where: eq(endpoints.id, agent.endpointId) });
    expect(ep?.pendingReboot).toBe(true);
    expect(rebooter.notices).toHaveLength(1);
    expect(rebooter.notices[0]).toMatch(/restarts in 15 minutes .*patchops agent --defer-reboot/);
    expect(rebooter.reboots).toBe(0);

    const planned = (await store.load())!.pendingReboot!;
    expect(planned.deferralsUsed).toBe(0);
    const due = new Date(planned.dueAt);

    // The logged-in user defers through the real command.
    const defer = await run(
      process.execPath,
      [path.join(root, 'bin/patchops.mjs'), 'agent', '--defer-reboot', '--state-dir', stateDir],
      { cwd: root },
    );
    expect(defer.stdout).toContain('restart deferral requested');
    await agent.rebootTick(new Date(due.getTime() - 60_000));
    expect(rebooter.reboots).toBe(0);
    expect(rebooter.notices.at(-1)).toMatch(/^Restart deferred to .* \(1 of 1 deferral\(s\) used\)\.$/);
    const deferred = (await store.load())!.pendingReboot!;
    expect(deferred.deferralsUsed).toBe(1);
    expect(Date.parse(deferred.dueAt)).toBe(due.getTime() - 60_000 + 60 * 60_000);
    await expect(fs.stat(store.deferFile)).rejects.toThrow(); // the request was consumed

    // A second request is over the limit: refused, and the restart happens when due.
    await run(
      process.execPath,
      [path.join(root, 'bin/patchops.mjs'), 'agent', '--defer-reboot', '--state-dir', stateDir],
      { cwd: root },
    );
    await agent.rebootTick(new Date(Date.parse(deferred.dueAt) - 1000));
    expect(rebooter.notices.at(-1)).toContain('No deferrals left (1 allowed)');
    expect(rebooter.reboots).toBe(0);
    await agent.rebootTick(new Date(deferred.dueAt));
    expect(rebooter.reboots).toBe(1);
    expect((await store.load())!.pendingReboot!.issuedAt).toBe(deferred.dueAt);
  }, 60_000);

  it('"never" plans nothing: the restart is reported pending and no one is disturbed', async () => {
    const { agent, rebooter, store } = await startAgent('never-host', new MemoryBackend());
    await addJob(
      agent.endpointId,
      `install:never-test:${agent.endpointId}`,
      installPayload({ behaviour: 'never', notifyUser: true, deferralLimit: 0, deferralMinutes: 60 }),
    );
    expect(await agent.pollOnce(2)).toBe(1);
    expect(rebooter.notices).toEqual([]);
    expect((await store.load())!.pendingReboot).toBeUndefined();
    const job = await tdb.db.query.agentJobs.findFirst({
      where: eq(agentJobs.id, `install:never-test:${agent.endpointId}`),
    });
    expect(job?.result).toMatchObject({ rebootPending: true });
  });

  it('the CLI says which state directory is wrong when no agent ever ran there', async () => {
    const missing = path.join(os.tmpdir(), `patchops-no-agent-${Date.now()}`);
    const r = await run(
      process.execPath,
      [path.join(root, 'bin/patchops.mjs'), 'agent', '--defer-reboot', '--state-dir', missing],
      { cwd: root },
    ).catch((e: { code: number; stderr: string }) => e);
    expect('code' in r && r.code).not.toBe(0);
    expect(r.stderr).toContain(`no agent has run with the state directory ${missing}`);
  }, 30_000);
});

describe('lease renewal', () => {
  it('an install longer than the lease keeps its lease, is not handed out again, and its result is recorded', async () => {
    const installMs = (LEASE_SECONDS + 3) * 1000;
    const { agent } = await startAgent('slow-host', new MemoryBackend(installMs), { leaseRenewEveryMs: 500 });
    const jobId = `install:lease-test:${agent.endpointId}`;
    await addJob(
      agent.endpointId,
      jobId,
      installPayload({ behaviour: 'never', notifyUser: false, deferralLimit: 0, deferralMinutes: 60 }),
    );
    const running = agent.pollOnce(2);
    // Well past the first lease's end the job is still leased, and the lease has not run out.
    await new Promise((r) => setTimeout(r, (LEASE_SECONDS + 1.5) * 1000));
    const mid = await tdb.db.query.agentJobs.findFirst({ where: eq(agentJobs.id, jobId) });
    expect(mid?.state).toBe('leased');
    expect(mid?.attempts).toBe(1);
    expect(mid!.leaseExpiresAt!.getTime()).toBeGreaterThan(Date.now());
    expect(await running).toBe(1);
    const done = await tdb.db.query.agentJobs.findFirst({ where: eq(agentJobs.id, jobId) });
    expect(done?.state).toBe('succeeded');
    expect(done?.attempts).toBe(1);
  }, 30_000);
});
