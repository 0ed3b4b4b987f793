import { eq, sql } from 'drizzle-orm';
import type { FastifyInstance } from 'fastify';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../test/helpers/db';
import { addEnrollSecret } from '../db/agent-enroll-secrets';
import { agentJobs, endpoints, patches } from '../db/schema/index';
import { createLogger } from '../logging';
import { createAgentGateway } from '../server/agent-gateway';
import { buildServer } from '../server/app';
import { SimFleet, type SimMachine } from './fleet';
import { startSimProcess } from '../../test/helpers/sim-process';
import { SecretBox } from '../db/secret-box';

let tdb: TestDatabase;
let app: FastifyInstance;
let url: string;
let ac2: AbortController | undefined;
const N = 30;

beforeAll(async () => {
  tdb = await createTestDatabase();
  const logger = createLogger('silent');
  // The test dispatches the fleet's scans itself and counts them: no enrolment scan here.
  const gw = createAgentGateway({
    database: tdb,
    secretBox: SecretBox.ephemeral(),
    logger,
    refreshMs: 100,
    scanOnFirstEnrolment: false,
  });
  app = await buildServer({ logger, health: [], routes: [gw.routes] });
  await app.listen({ host: '127.0.0.1', port: 0 });
  url = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`;
  await addEnrollSecret(tdb.db, { name: 'sim', secret: 'sim-secret-0123456789' });
});
afterAll(async () => {
  ac2?.abort();
  await app?.close();
  await tdb?.close();
});

const KB = {
  patchId: 'KB5039001',
  title: 'Security update',
  vendor: 'Microsoft',
  product: 'Windows',
  type: 'security',
  cves: ['CVE-2024-3400'],
  rebootRequired: false,
  packages: [{ manager: 'windows-update', name: 'KB5039001' }],
};

const countJobs = async (like: string, states: string[]) =>
  (
    await tdb.db.execute<{ n: number }>(
      sql`select count(*)::int as n from agent_jobs where id like ${like} and state = any(${sql.param(states)}::text[])`,
    )
  ).rows[0]!.n;

/** Queues an install of KB on each endpoint as `<tag>-<endpoint id>`; resolves with each machine's job state. */
async function installEverywhere(tag: string, machines: Map<string, SimMachine>): Promise<Record<string, string>> {
  const ids = [...machines.values()].map((m) => m.endpointId);
  await tdb.db.insert(agentJobs).values(
    ids.map((id) => ({
      id: `${tag}-${id}`,
      endpointId: id,
      kind: 'install',
      payload: { patches: [{ patchId: KB.patchId, packages: KB.packages }] },
    })),
  );
  await expect.poll(() => countJobs(`${tag}-%`, ['succeeded', 'failed']), { timeout: 20_000 }).toBe(ids.length);
  const rows = await tdb.db.execute<{ endpoint_id: string; state: string }>(
    sql`select endpoint_id, state from agent_jobs where id like ${`${tag}-%`}`,
  );
  return Object.fromEntries(
    rows.rows.map((r) => [[...machines.values()].find((m) => m.endpointId === r.endpoint_id)!.machineId, r.state]),
  );
}

// Runs on real PostgreSQL and on embedded PGlite: 30 agents writing at once once broke PGlite's wire
// server (interleaved extended-protocol messages); src/db/embedded.ts keeps each sequence together.
describe('agent-sim', () => {
  it('enrols an OS mix over the real protocol, answers scans with KEV CVEs, and installs with a failure rate', async () => {
    const ac = new AbortController();
    const fleet = new SimFleet({
      serverUrl: url,
      enrollSecret: 'sim-secret-0123456789',
      count: N,
      waitSeconds: 1,
      installLatencyMs: [1, 5],
      failureRate: 0.5,
      seed: 7,
      log: pino({ level: 'silent' }),
      signal: ac.signal,
    });
    await fleet.enroll();
    expect(fleet.stats.enrolled).toBe(N);
    const eps = await tdb.db.select().from(endpoints);
    const families = new Set(eps.map((e) => e.osFamily));
    expect(families).toEqual(new Set(['windows', 'linux', 'macos']));
    ac2 = ac;
    const running = fleet.run();
    await tdb.db
      .insert(agentJobs)
      .values(eps.map((e) => ({ id: `scan-${e.id}`, endpointId: e.id, kind: 'scan', payload: {} })));
    await expect
      .poll(async () => (await tdb.db.select().from(agentJobs).where(eq(agentJobs.state, 'succeeded'))).length, {
        timeout: 20_000,
      })
      .toBe(N);
    ac2 = ac;
    const kev = await tdb.db.execute<{ n: number }>(
      sql`select count(*)::int as n from patches where cardinality(cves) > 0`,
    );
    expect(kev.rows[0]!.n).toBeGreaterThan(5);
    const win = (await tdb.db.select().from(patches)).filter((p) => p.id.startsWith('KB'));
    expect(win.length).toBeGreaterThan(0);
    expect(win.some((p) => ['critical', 'important', 'moderate', 'low'].includes(p.severity))).toBe(true);

    const target = eps[0]!;
    const missing = await tdb.db.execute<{ patch_id: string }>(
      sql`select patch_id from endpoint_patches where endpoint_id = ${target.id}`,
    );
    const ids = missing.rows.map((r) => r.patch_id);
    await tdb.db.insert(agentJobs).values({
      id: 'install-1',
      endpointId: target.id,
      kind: 'install',
      payload: { patches: ids.map((patchId) => ({ patchId, packages: [{ manager: 'x', name: patchId }] })) },
    });
    await expect
      .poll(async () => (await tdb.db.select().from(agentJobs).where(eq(agentJobs.id, 'install-1')))[0]!.state, {
        timeout: 20_000,
      })
      .toMatch(/^(succeeded|failed)$/);
    const [job] = await tdb.db.select().from(agentJobs).where(eq(agentJobs.id, 'install-1'));
    const states = ((job!.result as { patches: Array<{ state: string }> }).patches ?? []).map((p) => p.state);
    expect(states.length).toBe(ids.length);
    expect(states.every((s) => s === 'installed' || s === 'failed')).toBe(true);
    ac.abort();
    await running;
  }, 60_000);

  it('reports the given patches missing on every endpoint, and fails installs only on the machines it is told to', async () => {
    const ac = new AbortController();
    const fleet = new SimFleet({
      serverUrl: url,
      enrollSecret: 'sim-secret-0123456789',
      count: 3,
      prefix: 'knobs',
      waitSeconds: 1,
      installLatencyMs: [1, 2],
      failureRate: 0,
      osMix: { windows: 1, linux: 0, macos: 0 },
      patches: [KB],
      failingMachines: ['knobs-000001'],
      log: pino({ level: 'silent' }),
      signal: ac.signal,
    });
    await fleet.enroll();
    expect([...fleet.machines.keys()].sort()).toEqual(['knobs-000000', 'knobs-000001', 'knobs-000002']);
    const ids = [...fleet.machines.values()].map((m) => m.endpointId);
    const eps = await tdb.db
      .select()
      .from(endpoints)
      .where(sql`${endpoints.id} = any(${sql.param(ids)}::text[])`);
    expect(eps.map((e) => [e.id, e.machineId, e.hostname]).sort()).toEqual(
      [...fleet.machines.values()].map((m) => [m.endpointId, m.machineId, m.hostname]).sort(),
    );
    const running = fleet.run();
    try {
      await tdb.db
        .insert(agentJobs)
        .values(ids.map((id) => ({ id: `knobs-scan-${id}`, endpointId: id, kind: 'scan', payload: {} })));
      await expect.poll(() => countJobs('knobs-scan-%', ['succeeded']), { timeout: 20_000 }).toBe(3);
      const found = await tdb.db.execute<{ endpoint_id: string; patch_id: string }>(
        sql`select endpoint_id, patch_id from endpoint_patches where endpoint_id = any(${sql.param(ids)}::text[]) order by endpoint_id`,
      );
      expect(found.rows).toEqual([...ids].sort().map((id) => ({ endpoint_id: id, patch_id: 'KB5039001' })));

      expect(await installEverywhere('knobs-i1', fleet.machines)).toEqual({
        'knobs-000000': 'succeeded',
        'knobs-000001': 'failed',
        'knobs-000002': 'succeeded',
      });
      // The knob is changed while the fleet runs: now only the last machine fails.
      fleet.failInstallsOn(['knobs-000002']);
      expect(await installEverywhere('knobs-i2', fleet.machines)).toEqual({
        'knobs-000000': 'succeeded',
        'knobs-000001': 'succeeded',
        'knobs-000002': 'failed',
      });
    } finally {
      ac.abort();
      await running;
    }
  }, 60_000);
});

// `patchops agent-sim --ndjson` as a child process, driven through its standard input and output, as the end-to-end
// suite and the cycle benchmark drive their fleets.
describe('agent-sim --ndjson (a fleet in a process of its own)', () => {
  it('reports its machines, installs and results as JSON lines, obeys fail-installs-on, and exits 0 when stdin ends', async () => {
    const sim = await startSimProcess({
      serverUrl: url,
      enrollSecret: 'sim-secret-0123456789',
      count: 3,
      prefix: 'proc',
      waitSeconds: 1,
      latencyMs: [1, 2],
      osMix: [1, 0, 0],
      patches: [KB],
      failingMachines: ['proc-000001'],
      logLevel: 'silent',
    });
    try {
      await sim.ready;
      expect([...sim.machines.keys()].sort()).toEqual(['proc-000000', 'proc-000001', 'proc-000002']);
      const ids = [...sim.machines.values()].map((m) => m.endpointId);
      const eps = await tdb.db
        .select()
        .from(endpoints)
        .where(sql`${endpoints.id} = any(${sql.param(ids)}::text[])`);
      expect(eps.map((e) => [e.id, e.machineId, e.hostname, e.osFamily]).sort()).toEqual(
        [...sim.machines.values()].map((m) => [m.endpointId, m.machineId, m.hostname, 'windows']).sort(),
      );

      await tdb.db
        .insert(agentJobs)
        .values(ids.map((id) => ({ id: `proc-scan-${id}`, endpointId: id, kind: 'scan', payload: {} })));
      await expect.poll(() => countJobs('proc-scan-%', ['succeeded']), { timeout: 20_000 }).toBe(3);
      await expect.poll(() => sim.results.get('scan'), { timeout: 5_000 }).toBe(3);

      expect(await installEverywhere('proc-i1', sim.machines)).toEqual({
        'proc-000000': 'succeeded',
        'proc-000001': 'failed',
        'proc-000002': 'succeeded',
      });
      await sim.failInstallsOn(['proc-000002']);
      expect(await installEverywhere('proc-i2', sim.machines)).toEqual({
        'proc-000000': 'succeeded',
        'proc-000001': 'succeeded',
        'proc-000002': 'failed',
      });
      // Counted on the agent side: each machine ran the patch's install once per job.
      await expect.poll(() => sim.jobs(), { timeout: 5_000 }).toBe(9);
      expect(Object.fromEntries(sim.installsRun)).toEqual({
        'proc-000000 KB5039001': 2,
        'proc-000001 KB5039001': 2,
        'proc-000002 KB5039001': 2,
      });
      const stats = await sim.stats();
      expect(stats).toMatchObject({ enrolled: 3, jobs: 9, failedInstalls: 2, refusedResults: 0 });
      expect(stats.polls).toBeGreaterThan(0);
    } finally {
      expect(await sim.stop()).toBe(0);
    }
  }, 60_000);
});
