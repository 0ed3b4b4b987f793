/**
 * Issue #15, "running past one machine": two `patchops server` and two `patchops worker` processes against one
 * Temporal server and one PostgreSQL, started at the same moment, with the simulated fleet split over both
 * servers. One cycle completes: every endpoint installs each patch exactly once (counted on the agent side),
 * both servers answered polls and both workers ran activities (their Prometheus metrics say so), and the audit
 * chain verifies.
 */
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { SimFleet } from '../../src/agent-sim/fleet';
import { verifyAuditChain } from '../../src/db/audit';
import { createLogger } from '../../src/logging';
import { freePort } from '../helpers/free-port';
import { groupFleetWithPolicy, runApprovedCycle, startDeployment, type Deployment } from '../helpers/deployment';

const PER_SERVER = 15;

let dep: Deployment;
const abort = new AbortController();

async function metricsOf(port: number): Promise<string> {
  return (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
}

function sumOf(text: string, pattern: RegExp): number {
  let total = 0;
  for (const line of text.split('\n')) if (pattern.test(line)) total += Number(line.trim().split(/\s+/).pop());
  return total;
}

beforeAll(async () => {
  if (!process.env.PATCHOPS_SCALE_OUT) return;
  dep = await startDeployment('scale-out');
}, 120_000);

afterAll(async () => {
  abort.abort();
  await dep?.close();
});

// Four real processes need about two minutes on an idle machine and much more on a loaded one: run with
// PATCHOPS_SCALE_OUT=1 (test/faults, `npm run test:faults`, runs the same deployment with its worker killed).
it.skipIf(!process.env.PATCHOPS_SCALE_OUT)(
  'two servers and two workers complete one cycle with agents on both servers',
  async () => {
    const ports = {
      s1: await freePort(),
      s2: await freePort(),
      m1: await freePort(),
      m2: await freePort(),
      m3: await freePort(),
      m4: await freePort(),
    };
    // All four at once, against a database nobody has migrated yet: they take turns on the migrations.
    const processes = await Promise.all([
      dep.start('server', { PORT: String(ports.s1), METRICS_ADDRESS: `127.0.0.1:${ports.m1}` }),
      dep.start('server', { PORT: String(ports.s2), METRICS_ADDRESS: `127.0.0.1:${ports.m2}` }),
      dep.start('worker', { METRICS_ADDRESS: `127.0.0.1:${ports.m3}` }),
      dep.start('worker', { METRICS_ADDRESS: `127.0.0.1:${ports.m4}` }),
    ]);

    // Half the fleet talks to each server.
    const log = createLogger('warn');
    const fleets = [ports.s1, ports.s2].map(
      (port, i) =>
        new SimFleet({
          serverUrl: `http://127.0.0.1:${port}`,
          enrollSecret: dep.enrollSecret,
          count: PER_SERVER,
          prefix: `so${i}`,
          waitSeconds: 5,
          installLatencyMs: [0, 50],
          failureRate: 0,
          seed: 7 + i,
          log,
          signal: abort.signal,
        }),
    );
    await Promise.all(fleets.map((f) => f.enroll()));
    const running = fleets.map((f) => f.run());

    // A test ring of two endpoints from each half, everyone else in production.
    const { groups, endpoints, approver } = await groupFleetWithPolicy(
      dep,
      'scale-out',
      { member: () => true, ring: (m) => /-00000[01]$/.test(m) },
      { concurrency: 50, batchSize: 50 },
    );
    expect(endpoints).toBe(2 * PER_SERVER);
    const cycle = await runApprovedCycle(dep, { policyName: 'scale-out', groups, approver, timeoutMs: 540_000 });
    expect(cycle.stage).toBe('COMPLETED');
    const status = await (await dep.cycles()).status(cycle.cycleId);
    expect(status.endpoints).toBe(2 * PER_SERVER);

    // Exactly once, counted by the agents themselves.
    const installs = fleets.flatMap((f) => [...f.installsRun.entries()]);
    expect(installs.length).toBeGreaterThan(2 * PER_SERVER);
    expect(installs.filter(([, n]) => n !== 1)).toEqual([]);
    expect(fleets.map((f) => f.stats.statuses[500] ?? 0)).toEqual([0, 0]);

    // Both servers answered polls; both workers ran activities.
    const [m1, m2, m3, m4] = await Promise.all([ports.m1, ports.m2, ports.m3, ports.m4].map(metricsOf));
    const polls = /^patchops_http_requests_total\{route="\/agent\/v1\/jobs",method="GET"/;
    expect(sumOf(m1!, polls)).toBeGreaterThan(0);
    expect(sumOf(m2!, polls)).toBeGreaterThan(0);
    const ran = /^patchops_activity_executions_total\{.*outcome="completed"/;
    expect(sumOf(m3!, ran)).toBeGreaterThan(0);
    expect(sumOf(m4!, ran)).toBeGreaterThan(0);

    // One first admin, one enrolment secret, whatever the race between the two servers.
    const admins = await dep.db.db.execute<{ n: number }>(
      sql`select count(*)::int as n from web_users where username = 'admin'`,
    );
    expect(Number(admins.rows[0]!.n)).toBe(1);

    abort.abort();
    await Promise.all(running);
    for (const p of processes) p.child.kill('SIGINT');
    const exits = await Promise.all(processes.map((p) => p.exited));
    expect(exits.map((e) => e.code)).toEqual([0, 0, 0, 0]);

    // Four processes appended to one audit chain; it verifies end to end.
    const audit = await verifyAuditChain(dep.db.db);
    expect(audit).toEqual({ ok: true, rows: expect.any(Number) });
  },
  900_000,
);
