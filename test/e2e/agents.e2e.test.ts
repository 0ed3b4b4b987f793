/**
 * Real processes: `patchops server` (agent gateway) and three `patchops agent` processes with separate state
 * dirs, each running the real apt backend against its own throwaway root and a local signed repository.
 * Scan jobs are dispatched by inserting agent_jobs rows (as the cycle's DrizzleAgentJobs does); results land
 * in endpoint_patches. One agent is killed mid-job: its job is not a hang — after the lease it is marked
 * unreachable by the cycle's expiry (DrizzleAgentJobs.expireUnreachable), and the restarted agent's late
 * result is still recorded.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { eq, inArray } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it, inject } from 'vitest';
import { NativeConnection, Worker } from '@temporalio/worker';
import { createActivities } from '../../src/activities/index';
import { DrizzleAgentJobs } from '../../src/db/agent-jobs';
import { createLogger } from '../../src/logging';
import { TaskQueue } from '../../src/temporal/task-queues';
import { loggedInCli } from '../helpers/cli-session';
import { addEnrollSecret } from '../../src/db/agent-enroll-secrets';
import {
  agentJobs,
  endpointGroups,
  endpointPatches,
  endpoints,
  groupMembers,
  softwareInventory,
} from '../../src/db/schema/index';
import { freePort } from '../helpers/free-port';
import { aptInstallInto, buildAptTestRepo, skipWithoutAptTools, type AptTestRepo } from '../helpers/apt-repo';
import { createTestDatabase, type TestDatabase } from '../helpers/db';

const root = path.resolve(import.meta.dirname, '..', '..');
const SECRET = 'e2e-enrol-secret-0123456789abcdef';
const LEASE = 5;

interface Proc {
  child: ChildProcess;
  output: () => string;
}

function start(args: string[], env: NodeJS.ProcessEnv): Proc {
  // Own process group: killing "the agent" kills the apt-get it started too, as a crash or power loss would.
  const child = spawn(process.execPath, [path.join(root, 'bin', 'patchops.mjs'), ...args], {
    cwd: root,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  let out = '';
  child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (out += c.toString()));
  return { child, output: () => out };
}

async function until<T>(
  what: string,
  fn: () => Promise<T | undefined | false>,
  timeoutMs: number,
  extra: () => string = () => '',
): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    // The test's own polling query may collide with the server's on embedded PGlite (one backend shared by all
    // connections: "portal does not exist"); such a poll counts as "not yet", the next one asks again.
    const v = await fn().catch(() => undefined);
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}\n${extra()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe.skipIf(
  skipWithoutAptTools('three real agents against a real server (test/e2e/agents.e2e.test.ts: the apt round trip)'),
)('three real agents against a real server', () => {
  let tdb: TestDatabase;
  let repo: AptTestRepo;
  const roots: string[] = [];
  const procs: Proc[] = [];
  let server: Proc;
  let serverUrl: string;
  let hangingRepo: http.Server;
  let hang = false;
  const baseEnv = { PATH: process.env.PATH, HOME: process.env.HOME, LOG_LEVEL: 'info' };

  beforeAll(async () => {
    tdb = await createTestDatabase();
    await addEnrollSecret(tdb.db, { name: 'e2e', secret: SECRET });
    repo = await buildAptTestRepo();
    // The third agent's repository is served over HTTP by a server that can be made to hang (after the enrolment
    // scans): its apt-get update then blocks, so the agent is reliably mid-job when it is killed.
    hangingRepo = http.createServer((req, res) => {
      if (hang) return; // never answers
      const file = path.join(repo.repo, decodeURIComponent(new URL(req.url!, 'http://x').pathname));
      fs.readFile(file).then(
        (b) => res.writeHead(200).end(b),
        () => res.writeHead(404).end(),
      );
    });
    await new Promise<void>((r) => hangingRepo.listen(0, '127.0.0.1', r));
    for (let i = 0; i < 3; i++) {
      const r = path.join(repo.dir, `root${i}`);
      await fs.cp(repo.root, r, { recursive: true });
      aptInstallInto(r, `${repo.packageName}=1.0`);
      roots.push(r);
    }
    await fs.writeFile(
      path.join(roots[2]!, 'etc/apt/sources.list'),
      `deb http://127.0.0.1:${(hangingRepo.address() as AddressInfo).port}/ ./\n`,
    );

    const port = await freePort();
    serverUrl = `http://127.0.0.1:${port}`;
    server = start(['server'], {
      ...baseEnv,
      DATABASE_URL: tdb.url,
      PORT: String(port),
      TEMPORAL_ADDRESS: inject('temporalAddress'),
      TEMPORAL_CLI: inject('temporalCliPath'),
      AGENT_LEASE_SECONDS: String(LEASE),
      PATCHOPS_DATA_DIR: await fs.mkdtemp(path.join(os.tmpdir(), 'patchops-e2e-data-')),
    });
    procs.push(server);
    await until(
      'the server to be ready',
      async () => server.output().includes('patchops ready'),
      90_000,
      server.output,
    );
  }, 180_000);

  afterAll(async () => {
    for (const p of procs) {
      try {
        process.kill(-p.child.pid!, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    hangingRepo?.closeAllConnections();
    hangingRepo?.close();
    await tdb?.close();
    await repo?.cleanup();
  });

  const agentArgs = (i: number, stateDir: string) => [
    'agent',
    '--server',
    serverUrl,
    '--enroll-secret',
    SECRET,
    '--state-dir',
    stateDir,
    '--apt-root',
    roots[i]!,
    '--machine-id',
    `e2e-machine-${i}-0000`,
    '--hostname',
    `e2e-${i}`,
    '--wait',
    '2',
    '--no-reboot',
  ];

  it("enrol, report inventory, scan for real; a killed agent's job ends unreachable after its lease, and the restarted agent keeps its identity", async () => {
    const stateDirs = await Promise.all(
      [0, 1, 2].map(() => fs.mkdtemp(path.join(os.tmpdir(), 'patchops-agent-state-'))),
    );
    const agents = [0, 1, 2].map((i) => start(agentArgs(i, stateDirs[i]!), baseEnv));
    procs.push(...agents);
    const ids = await until(
      'three enrolled endpoints',
      async () => {
        const rows = await tdb.db.select().from(endpoints);
        return rows.length === 3
          ? rows.sort((a, b) => a.hostname.localeCompare(b.hostname)).map((r) => r.id)
          : undefined;
      },
      60_000,
      () => agents.map((a) => a.output()).join('\n---\n'),
    );
    for (const d of stateDirs) {
      const text = await until(
        'the state file',
        () => fs.readFile(path.join(d, 'state.json'), 'utf8').catch(() => undefined),
        10_000,
      );
      expect((JSON.parse(text) as { nodeKey: string }).nodeKey.length).toBeGreaterThanOrEqual(43);
    }
    await until(
      'inventory from each agent',
      async () =>
        (await tdb.db.select().from(softwareInventory).where(eq(softwareInventory.name, repo.packageName))).length ===
        3,
      30_000,
    );
    // Each agent scans at once on enrolment (the server queues it); the third agent's repository hangs only after.
    await until(
      'the enrolment scans',
      async () => {
        const scans = await tdb.db.select().from(agentJobs).where(inArray(agentJobs.endpointId, ids));
        return scans.length === 3 && scans.every((j) => j.kind === 'scan' && j.state === 'succeeded');
      },
      60_000,
      () => agents.map((a) => a.output()).join('\n---\n'),
    );
    hang = true;

    // Dispatch one scan per endpoint, the way the cycle's DrizzleAgentJobs inserts them.
    const jobIds = ids.map((id) => `e2e-cycle:scan:${id}`);
    await tdb.db.insert(agentJobs).values(
      ids.map((id, i) => ({
        id: jobIds[i]!,
        cycleId: 'e2e-cycle',
        wave: null,
        endpointId: id,
        kind: 'scan',
        payload: { patchIds: [] },
      })),
    );

    // agent 2 leases its scan and hangs in apt-get update: kill it there.
    await until(
      'agent 2 to lease its job',
      async () => (await tdb.db.select().from(agentJobs).where(eq(agentJobs.id, jobIds[2]!)))[0]!.state === 'leased',
      30_000,
      agents[2]!.output,
    );
    process.kill(-agents[2]!.child.pid!, 'SIGKILL');
    hangingRepo.closeAllConnections();
    const killedAt = Date.now();
    // The killed agent's job: not unreachable while its lease (and the silence grace) runs …
    const jobs = new DrizzleAgentJobs(tdb.db);
    expect(await jobs.expireUnreachable('e2e-cycle', null, LEASE, new Date())).toBe(0);

    // agents 0 and 1 complete their scans for real: the 2.0 security update is missing on both.
    await until(
      'scans of agents 0 and 1',
      async () =>
        (
          await tdb.db
            .select()
            .from(agentJobs)
            .where(inArray(agentJobs.id, jobIds.slice(0, 2)))
        ).every((j) => j.state === 'succeeded'),
      60_000,
      () => agents.map((a) => a.output()).join('\n---\n'),
    );
    const missing = await tdb.db
      .select()
      .from(endpointPatches)
      .where(inArray(endpointPatches.endpointId, ids.slice(0, 2)));
    expect(missing.map((m) => [m.patchId, m.state])).toEqual([
      [`apt:${repo.packageName}:2.0`, 'missing'],
      [`apt:${repo.packageName}:2.0`, 'missing'],
    ]);

    // … then the cycle's expiry marks it unreachable: counted, not waited on.
    await until('the lease and grace to run out', async () => Date.now() - killedAt > 2 * LEASE * 1000 + 500, 30_000);
    expect((await tdb.db.select().from(agentJobs).where(eq(agentJobs.id, jobIds[2]!)))[0]!.state).toBe('leased');
    expect(await jobs.expireUnreachable('e2e-cycle', null, LEASE, new Date())).toBe(1);
    const counts = await jobs.counts('e2e-cycle', null, 'scan');
    expect(counts).toMatchObject({ succeeded: 2, unreachable: 1 });

    // Restarted with the same state dir (same identity) and its repository answering again: the agent's late
    // result is not re-offered work (the job is unreachable now), so nothing hangs; a fresh scan succeeds.
    hang = false;
    const restarted = start(agentArgs(2, stateDirs[2]!), baseEnv);
    procs.push(restarted);
    await tdb.db.insert(agentJobs).values({ id: 'e2e-rescan-2', endpointId: ids[2]!, kind: 'scan', payload: {} });
    await until(
      'the restarted agent to scan',
      async () =>
        (await tdb.db.select().from(agentJobs).where(eq(agentJobs.id, 'e2e-rescan-2')))[0]!.state === 'succeeded',
      60_000,
      restarted.output,
    );
    expect((await tdb.db.select().from(endpoints)).length).toBe(3); // same identity, no new endpoint
    const [ep2] = await tdb.db.select().from(endpoints).where(eq(endpoints.id, ids[2]!));
    expect(ep2!.status).toBe('active');
    const p2 = await tdb.db.select().from(endpointPatches).where(eq(endpointPatches.endpointId, ids[2]!));
    expect(p2.map((p) => p.state)).toEqual(['missing']);
  }, 240_000);

  it('a small patch cycle through the real workflow installs 2.0 on all three agents', async () => {
    const ids = (await tdb.db.select().from(endpoints)).map((e) => e.id);
    expect(ids).toHaveLength(3);
    const [g] = await tdb.db.insert(endpointGroups).values({ name: 'e2e-agents' }).returning();
    await tdb.db.insert(groupMembers).values(ids.map((endpointId) => ({ groupId: g!.id, endpointId })));
    // The CLI goes through the server's API, logged in as people: alice (admin) starts, bob (approver) approves.
    const cli = await loggedInCli(serverUrl, tdb.db, { username: 'alice', role: 'admin' });
    const bob = await loggedInCli(serverUrl, tdb.db, { username: 'bob', role: 'approver' });
    const file = path.join(await fs.mkdtemp(path.join(os.tmpdir(), 'patchops-e2e-policy-')), 'policy.json');
    await fs.writeFile(
      file,
      JSON.stringify({
        name: 'e2e-agents',
        test: { group: null },
        waves: [{ name: 'all', percent: 100 }],
        maintenance: { respectWindows: false },
        jobs: { pollIntervalSeconds: 1, unreachableAfterSeconds: 60 },
      }),
    );
    expect((await cli(['policies', 'set', file])).code).toBe(0);

    const connection = await NativeConnection.connect({ address: inject('temporalAddress') });
    const worker = await Worker.create({
      connection,
      taskQueue: TaskQueue.cycles,
      workflowBundle: { codePath: inject('workflowBundlePath') },
      activities: createActivities({ database: tdb, logger: createLogger('silent') }),
    });
    try {
      await worker.runUntil(async () => {
        const start = await cli(['start', 'e2e-agents', 'group:e2e-agents']);
        expect(start.code, start.stderr).toBe(0);
        const cycleId = /cycle (\S+) started/.exec(start.stdout)![1]!;
        await until(
          'approval to be asked',
          async () => (await cli(['status', cycleId])).stdout.includes('AWAIT_APPROVAL'),
          90_000,
        );
        expect((await bob(['approve', cycleId])).code).toBe(0);
        const done = await until(
          'the cycle to complete',
          async () => {
            const st = await cli(['status', cycleId, '--json']);
            return /"stage":\s*"(COMPLETED|FAILED|CANCELLED|REJECTED)"/.test(st.stdout) ? st.stdout : undefined;
          },
          150_000,
        );
        // --json prints the command's typed outcome: { verb: 'status', status: CycleStatus }.
        expect(JSON.parse(done)).toMatchObject({ verb: 'status', status: { cycleId, stage: 'COMPLETED' } });
      });
    } finally {
      await connection.close();
    }
    for (const r of roots)
      expect((await fs.readFile(path.join(r, 'usr/share', repo.packageName, 'version'), 'utf8')).trim()).toBe('2.0');
    const states = await tdb.db.select().from(endpointPatches).where(inArray(endpointPatches.endpointId, ids));
    expect(states.map((x) => x.state)).toEqual(['installed', 'installed', 'installed']);
  }, 300_000);
});
