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
import { SimFleet } from './fleet';
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
    const patch = {
      patchId: 'KB5039001',
      title: 'Security update',
      vendor: 'Microsoft',
      product: 'Windows',
      type: 'security',
      cves: ['CVE-2024-3400'],
      rebootRequired: false,
      packages: [{ manager: 'windows-update', name: 'KB5039001' }],
    };
    const fleet = new SimFleet({
      serverUrl: url,
      enrollSecret: 'sim-secret-0123456789',
      count: 3,
      prefix: 'knobs',
      waitSeconds: 1,
      installLatencyMs: [1, 2],
      failureRate: 0,
      osMix: { windows: 1, linux: 0, macos: 0 },
      patches: [patch],
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
      await expect
        .poll(
          async () =>
            (
              await tdb.db.execute<{ n: number }>(
                sql`select count(*)::int as n from agent_jobs where id like 'knobs-scan-%' and state = 'succeeded'`,
              )
            ).rows[0]!.n,
          { timeout: 20_000 },
        )
        .toBe(3);
      const found = await tdb.db.execute<{ endpoint_id: string; patch_id: string }>(
        sql`select endpoint_id, patch_id from endpoint_patches where endpoint_id = any(${sql.param(ids)}::text[]) order by endpoint_id`,
      );
      expect(found.rows).toEqual([...ids].sort().map((id) => ({ endpoint_id: id, patch_id: 'KB5039001' })));

      const install = (tag: string) =>
        ids.map((id) => ({
          id: `knobs-${tag}-${id}`,
          endpointId: id,
          kind: 'install',
          payload: {
            patches: [{ patchId: 'KB5039001', packages: [{ manager: 'windows-update', name: 'KB5039001' }] }],
          },
        }));
      const outcome = async (tag: string) => {
        await expect
          .poll(
            async () =>
              (
                await tdb.db.execute<{ n: number }>(
                  sql`select count(*)::int as n from agent_jobs where id like ${`knobs-${tag}-%`} and state in ('succeeded', 'failed')`,
                )
              ).rows[0]!.n,
            { timeout: 20_000 },
          )
          .toBe(3);
        const rows = await tdb.db.execute<{ endpoint_id: string; state: string }>(
          sql`select endpoint_id, state from agent_jobs where id like ${`knobs-${tag}-%`}`,
        );
        return Object.fromEntries(
          rows.rows.map((r) => [
            [...fleet.machines.values()].find((m) => m.endpointId === r.endpoint_id)!.machineId,
            r.state,
          ]),
        );
      };
      await tdb.db.insert(agentJobs).values(install('i1'));
      expect(await outcome('i1')).toEqual({
        'knobs-000000': 'succeeded',
        'knobs-000001': 'failed',
        'knobs-000002': 'succeeded',
      });
      // The knob is changed while the fleet runs: now only the last machine fails.
      fleet.failInstallsOn(['knobs-000002']);
      await tdb.db.insert(agentJobs).values(install('i2'));
      expect(await outcome('i2')).toEqual({
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
