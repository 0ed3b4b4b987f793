import { randomUUID } from 'node:crypto';
import { jobId as dispatchJobId } from '../db/agent-jobs';
import type { FastifyInstance } from 'fastify';
import { eq, sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../test/helpers/db';
import { addEnrollSecret, revokeAgent, revokeEnrollSecret } from '../db/agents';
import { agentJobs, endpointPatches, endpoints, patches, softwareInventory } from '../db/schema/index';
import { createLogger } from '../logging';
import type { EnrollResponse, FoundPatch, PollResponse } from '../shared/agent-protocol';
import { createAgentGateway, type AgentGateway } from './agent-gateway';
import { buildServer } from './app';

let tdb: TestDatabase;
let app: FastifyInstance;
let gateway: AgentGateway;
const SECRET = 'test-enrol-secret-0123456789';

beforeAll(async () => {
  tdb = await createTestDatabase();
  const logger = createLogger(process.env.TEST_LOG ?? 'silent');
  gateway = createAgentGateway({ database: tdb, logger, leaseSeconds: 30, refreshMs: 100 });
  app = await buildServer({ logger, health: [], routes: [gateway.routes] });
  await addEnrollSecret(tdb.db, { name: 'main', secret: SECRET });
});
afterAll(async () => {
  await app?.close();
  await tdb?.close();
});

let machineN = 0;
async function enroll(overrides: Record<string, unknown> = {}): Promise<EnrollResponse> {
  machineN += 1;
  const res = await app.inject({
    method: 'POST',
    url: '/agent/v1/enroll',
    payload: { enrollSecret: SECRET, machineId: `machine-${machineN}-${Date.now()}`, hostname: `host${machineN}`, osFamily: 'linux', osName: 'Debian GNU/Linux', osVersion: '12', arch: 'x64', ...overrides },
  });
  expect(res.statusCode, res.body).toBe(200);
  return res.json<EnrollResponse>();
}

const auth = (key: string) => ({ authorization: `Bearer ${key}` });

async function addJob(endpointId: string, fields: Partial<typeof agentJobs.$inferInsert> = {}): Promise<string> {
  // Ids as dispatch makes them: deterministic from (cycle, wave, endpoint, kind), and long (a fleet scan's
  // cycle id is a workflow id), so the result route must take parameters longer than Fastify's default 100.
  const id = fields.id ?? dispatchJobId(`scan:fleet-scan:2026-11-27T114721024Z-51f4:${randomUUID()}`, null, endpointId, 'scan');
  await tdb.db.insert(agentJobs).values({ id, endpointId, kind: 'scan', payload: { patchIds: [] }, ...fields });
  return id;
}

async function poll(key: string, wait = 0): Promise<PollResponse> {
  const res = await app.inject({ method: 'GET', url: `/agent/v1/jobs?wait=${wait}`, headers: auth(key) });
  expect(res.statusCode, res.body).toBe(200);
  return res.json<PollResponse>();
}

const scanResult = (missing: FoundPatch[]) => ({ status: 'succeeded', missing, patches: [], rebootPending: false });
const found = (id: string, extra: Partial<FoundPatch> = {}): FoundPatch => ({
  patchId: id,
  title: `Update ${id}`,
  vendor: 'Debian',
  product: 'openssl',
  type: 'security',
  vendorSeverity: 'high',
  severitySource: 'debian',
  cves: ['CVE-2024-0727'],
  rebootRequired: false,
  packages: [{ manager: 'apt', name: 'openssl', version: '3.0.13-1~deb12u1' }],
  ...extra,
});

describe('enrolment', () => {
  it('refuses a wrong or revoked enrol secret with 401 and a malformed body with 400, storing nothing', async () => {
    const before = await tdb.db.$count(endpoints);
    const wrong = await app.inject({ method: 'POST', url: '/agent/v1/enroll', payload: { enrollSecret: 'nope-nope-nope-nope', machineId: 'm-wrong-000', hostname: 'h', osFamily: 'linux' } });
    expect(wrong.statusCode).toBe(401);
    const bad = await app.inject({ method: 'POST', url: '/agent/v1/enroll', payload: { enrollSecret: SECRET, machineId: 'short', hostname: 'h', osFamily: 'beos' } });
    expect(bad.statusCode).toBe(400);
    expect(bad.json<{ message: string }>().message).toMatch(/osFamily/);
    await addEnrollSecret(tdb.db, { name: 'old', secret: 'old-secret-old-secret-1' });
    await revokeEnrollSecret(tdb.db, 'old');
    const revoked = await app.inject({ method: 'POST', url: '/agent/v1/enroll', payload: { enrollSecret: 'old-secret-old-secret-1', machineId: 'm-revoked-00', hostname: 'h', osFamily: 'linux' } });
    expect(revoked.statusCode).toBe(401);
    expect(await tdb.db.$count(endpoints)).toBe(before);
  });

  it('accepts any active secret; the same machine re-enrolling keeps its endpoint id and its old key stops working', async () => {
    await addEnrollSecret(tdb.db, { name: 'second', secret: 'second-secret-0123456' });
    const first = await enroll({ machineId: 'stable-machine-id-1' });
    expect(first.nodeKey.length).toBeGreaterThanOrEqual(43);
    expect(first.manifestSigningKey).toContain('BEGIN PUBLIC KEY');
    const again = await app.inject({
      method: 'POST',
      url: '/agent/v1/enroll',
      payload: { enrollSecret: 'second-secret-0123456', machineId: 'stable-machine-id-1', hostname: 'renamed', osFamily: 'linux' },
    });
    const second = again.json<EnrollResponse>();
    expect(second.endpointId).toBe(first.endpointId);
    expect(second.nodeKey).not.toBe(first.nodeKey);
    expect((await app.inject({ method: 'GET', url: '/agent/v1/jobs', headers: auth(first.nodeKey) })).statusCode).toBe(401);
    expect((await app.inject({ method: 'GET', url: '/agent/v1/jobs', headers: auth(second.nodeKey) })).statusCode).toBe(200);
    const [row] = await tdb.db.select().from(endpoints).where(eq(endpoints.id, first.endpointId));
    expect(row!.hostname).toBe('renamed');
    // only the hash is stored
    const stored = await tdb.db.execute<{ n: number }>(sql`select count(*)::int as n from agent_node_keys where key_hash = ${second.nodeKey}`);
    expect(stored.rows[0]!.n).toBe(0);
  });
});

describe('authentication', () => {
  it('401 for a missing, forged or revoked key', async () => {
    const a = await enroll();
    expect((await app.inject({ method: 'GET', url: '/agent/v1/jobs' })).statusCode).toBe(401);
    expect((await app.inject({ method: 'GET', url: '/agent/v1/jobs', headers: auth(a.nodeKey.slice(0, -2) + 'AA') })).statusCode).toBe(401);
    expect((await app.inject({ method: 'GET', url: '/agent/v1/jobs', headers: auth(a.nodeKey) })).statusCode).toBe(200); // now cached
    await revokeAgent(tdb.db, a.endpointId);
    await expect.poll(async () => (await app.inject({ method: 'GET', url: '/agent/v1/jobs', headers: auth(a.nodeKey) })).statusCode, { timeout: 3000 }).toBe(401);
    const inv = await app.inject({ method: 'PUT', url: '/agent/v1/inventory', headers: auth(a.nodeKey), payload: { software: [] } });
    expect(inv.statusCode).toBe(401);
  });
});

describe('jobs', () => {
  it('hands a job out once, with a lease; another agent gets 403 for it; results are idempotent and conflicts are 409', async () => {
    const a = await enroll();
    const b = await enroll();
    const jobId = await addJob(a.endpointId);
    await expect.poll(async () => (await poll(a.nodeKey)).jobs.map((j) => j.id), { timeout: 3000 }).toEqual([jobId]);
    expect((await poll(a.nodeKey)).jobs).toEqual([]);
    const [leased] = await tdb.db.select().from(agentJobs).where(eq(agentJobs.id, jobId));
    expect(leased!.state).toBe('leased');
    expect(leased!.attempts).toBe(1);
    expect(leased!.leaseExpiresAt!.getTime()).toBeGreaterThan(Date.now() + 20_000);

    const body = scanResult([found('DSA-5000-1')]);
    const other = await app.inject({ method: 'POST', url: `/agent/v1/jobs/${encodeURIComponent(jobId)}/result`, headers: auth(b.nodeKey), payload: body });
    expect(other.statusCode).toBe(403);
    const bad = await app.inject({ method: 'POST', url: `/agent/v1/jobs/${encodeURIComponent(jobId)}/result`, headers: auth(a.nodeKey), payload: { status: 'done' } });
    expect(bad.statusCode).toBe(400);
    expect((await tdb.db.select().from(agentJobs).where(eq(agentJobs.id, jobId)))[0]!.state).toBe('leased');

    const ok = await app.inject({ method: 'POST', url: `/agent/v1/jobs/${encodeURIComponent(jobId)}/result`, headers: auth(a.nodeKey), payload: body });
    expect(ok.json()).toEqual({ ok: true, outcome: 'recorded' });
    const dup = await app.inject({ method: 'POST', url: `/agent/v1/jobs/${encodeURIComponent(jobId)}/result`, headers: auth(a.nodeKey), payload: body });
    expect(dup.statusCode).toBe(200);
    expect(dup.json()).toEqual({ ok: true, outcome: 'duplicate' });
    const diff = await app.inject({ method: 'POST', url: `/agent/v1/jobs/${encodeURIComponent(jobId)}/result`, headers: auth(a.nodeKey), payload: { status: 'failed', error: 'x' } });
    expect(diff.statusCode).toBe(409);
    const missing = await app.inject({ method: 'POST', url: `/agent/v1/jobs/nope/result`, headers: auth(a.nodeKey), payload: body });
    expect(missing.statusCode).toBe(404);
  });

  it('a cancelled job refuses results (409); a late result for an unreachable job is recorded', async () => {
    const a = await enroll();
    const cancelled = await addJob(a.endpointId, { state: 'cancelled' });
    const unreachable = await addJob(a.endpointId, { state: 'unreachable', attempts: 1 });
    const r1 = await app.inject({ method: 'POST', url: `/agent/v1/jobs/${cancelled}/result`, headers: auth(a.nodeKey), payload: scanResult([]) });
    expect(r1.statusCode).toBe(409);
    const r2 = await app.inject({ method: 'POST', url: `/agent/v1/jobs/${unreachable}/result`, headers: auth(a.nodeKey), payload: { status: 'failed', error: 'apt lock held' } });
    expect(r2.statusCode).toBe(200);
    const [row] = await tdb.db.select().from(agentJobs).where(eq(agentJobs.id, unreachable));
    expect(row!.state).toBe('failed');
    expect(row!.error).toBe('apt lock held');
  });

  it('offers an expired lease again and fails a job whose deadline passed', async () => {
    const a = await enroll();
    const expired = await addJob(a.endpointId, { state: 'leased', attempts: 1, leaseExpiresAt: new Date(Date.now() - 1000) });
    const late = await addJob(a.endpointId, { deadline: new Date(Date.now() - 1000) });
    const future = await addJob(a.endpointId, { notBefore: new Date(Date.now() + 3600_000) });
    await expect.poll(async () => (await poll(a.nodeKey)).jobs.map((j) => j.id), { timeout: 3000 }).toEqual([expired]);
    const rows = await tdb.db.select().from(agentJobs).where(eq(agentJobs.endpointId, a.endpointId));
    const by = new Map(rows.map((r) => [r.id, r]));
    expect(by.get(expired)!.attempts).toBe(2);
    expect(by.get(late)!.state).toBe('failed');
    expect(by.get(late)!.error).toBe('deadline passed before the agent picked it up');
    expect(by.get(future)!.state).toBe('queued');
  });

  it('never hands the same job to two concurrent polls', async () => {
    const a = await enroll();
    const ids = await Promise.all(Array.from({ length: 25 }, (_, i) => addJob(a.endpointId, { id: `conc-${a.endpointId}-${i}` })));
    gateway.wake([a.endpointId]);
    const results = await Promise.all(Array.from({ length: 6 }, () => poll(a.nodeKey, 2)));
    const more = await poll(a.nodeKey);
    const handed = [...results.flatMap((r) => r.jobs.map((j) => j.id)), ...more.jobs.map((j) => j.id)];
    const rest = await poll(a.nodeKey);
    handed.push(...rest.jobs.map((j) => j.id));
    expect(new Set(handed).size).toBe(handed.length);
    expect(new Set(handed)).toEqual(new Set(ids));
  });

  it('a waiting long poll returns as soon as work is dispatched (wake) or seen by the refresh', async () => {
    const a = await enroll();
    await poll(a.nodeKey);
    let t0 = Date.now();
    const waiting = poll(a.nodeKey, 20);
    await new Promise((r) => setTimeout(r, 200));
    const id1 = await addJob(a.endpointId);
    gateway.wake([a.endpointId]);
    expect((await waiting).jobs.map((j) => j.id)).toEqual([id1]);
    expect(Date.now() - t0).toBeLessThan(3000);

    t0 = Date.now();
    const waiting2 = poll(a.nodeKey, 20);
    await new Promise((r) => setTimeout(r, 200));
    const id2 = await addJob(a.endpointId); // no wake: the refresh finds it
    expect((await waiting2).jobs.map((j) => j.id)).toEqual([id2]);
    expect(Date.now() - t0).toBeLessThan(3000);

    t0 = Date.now();
    expect((await poll(a.nodeKey, 1)).jobs).toEqual([]);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(900);
  });
});

describe('results and inventory land in the model', () => {
  it('a scan replaces the missing set, upserts the catalog, and an install result updates states', async () => {
    const a = await enroll();
    const scan1 = await addJob(a.endpointId);
    gateway.wake([a.endpointId]);
    await poll(a.nodeKey);
    const r = await app.inject({
      method: 'POST',
      url: `/agent/v1/jobs/${scan1}/result`,
      headers: auth(a.nodeKey),
      payload: scanResult([found('DSA-1-1'), found('DSA-2-1', { vendorSeverity: 'low', cvss: 3.1 }), found('DSA-3-1', { vendorSeverity: undefined, cvss: 9.8 })]),
    });
    expect(r.statusCode).toBe(200);
    const cat = new Map((await tdb.db.select().from(patches)).map((p) => [p.id, p]));
    expect(cat.get('DSA-1-1')!.severity).toBe('important');
    expect(cat.get('DSA-2-1')!.severity).toBe('low');
    expect(cat.get('DSA-3-1')!.severity).toBe('critical');
    expect(cat.get('DSA-1-1')!.cves).toEqual(['CVE-2024-0727']);
    const states = async () =>
      Object.fromEntries((await tdb.db.select().from(endpointPatches).where(eq(endpointPatches.endpointId, a.endpointId))).map((e) => [e.patchId, e.state]));
    expect(await states()).toEqual({ 'DSA-1-1': 'missing', 'DSA-2-1': 'missing', 'DSA-3-1': 'missing' });

    const install = await addJob(a.endpointId, { kind: 'install', payload: { patches: [] } });
    gateway.wake([a.endpointId]);
    await poll(a.nodeKey);
    await app.inject({
      method: 'POST',
      url: `/agent/v1/jobs/${install}/result`,
      headers: auth(a.nodeKey),
      payload: { status: 'failed', rebootPending: true, patches: [{ patchId: 'DSA-1-1', state: 'installed' }, { patchId: 'DSA-2-1', state: 'failed', error: 'dpkg error' }, { patchId: 'DSA-3-1', state: 'pending_reboot' }] },
    });
    expect(await states()).toEqual({ 'DSA-1-1': 'installed', 'DSA-2-1': 'failed', 'DSA-3-1': 'pending_reboot' });
    expect((await tdb.db.select().from(endpoints).where(eq(endpoints.id, a.endpointId)))[0]!.pendingReboot).toBe(true);

    const scan2 = await addJob(a.endpointId);
    gateway.wake([a.endpointId]);
    await poll(a.nodeKey);
    await app.inject({ method: 'POST', url: `/agent/v1/jobs/${scan2}/result`, headers: auth(a.nodeKey), payload: scanResult([found('DSA-2-1')]) });
    expect(await states()).toEqual({ 'DSA-1-1': 'installed', 'DSA-2-1': 'missing', 'DSA-3-1': 'installed' });
  });

  it('inventory replaces software and updates facts; a bad inventory is 400 and stores nothing', async () => {
    const a = await enroll();
    const put = (payload: unknown) => app.inject({ method: 'PUT', url: '/agent/v1/inventory', headers: auth(a.nodeKey), payload: payload as Record<string, unknown> });
    expect((await put({ osVersion: '12.5', pendingReboot: true, software: [{ source: 'apt', name: 'openssl', version: '3.0.11-1' }, { source: 'apt', name: 'bash', version: '5.2.15-2' }] })).statusCode).toBe(200);
    expect((await put({ software: [{ source: 'apt', name: 'x' }] })).statusCode).toBe(400);
    const sw = await tdb.db.select().from(softwareInventory).where(eq(softwareInventory.endpointId, a.endpointId));
    expect(sw.map((s) => s.name).sort()).toEqual(['bash', 'openssl']);
    const [ep] = await tdb.db.select().from(endpoints).where(eq(endpoints.id, a.endpointId));
    expect(ep!.osVersion).toBe('12.5');
    expect(ep!.pendingReboot).toBe(true);
  });

  it('polls update last-seen in batches', async () => {
    const a = await enroll();
    await tdb.db.update(endpoints).set({ lastSeenAt: new Date(0), status: 'unreachable' }).where(eq(endpoints.id, a.endpointId));
    await poll(a.nodeKey);
    await expect
      .poll(async () => (await tdb.db.select().from(endpoints).where(eq(endpoints.id, a.endpointId)))[0]!, { timeout: 3000 })
      .toMatchObject({ status: 'active' });
    const [ep] = await tdb.db.select().from(endpoints).where(eq(endpoints.id, a.endpointId));
    expect(ep!.lastSeenAt!.getTime()).toBeGreaterThan(Date.now() - 10_000);
  });
});
