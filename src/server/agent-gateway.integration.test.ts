import { createHash, generateKeyPairSync, randomBytes, randomUUID, sign as cryptoSign } from 'node:crypto';
import fs from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import type { FastifyInstance } from 'fastify';
import { eq, sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../test/helpers/db';
import { downloadVerified } from '../agent/verify';
import { addEnrollSecret, revokeEnrollSecret } from '../db/agent-enroll-secrets';
import {
  DrizzleAgentJobs,
  jobId as dispatchJobId,
  LEASE_DEADLINE_GRACE_SECONDS,
  leaseJobs,
  renewJobLease,
  returnLeasedJobs,
} from '../db/agent-jobs';
import { revokeAgent } from '../db/agent-keys';
import { addDistributionPoint } from '../db/distribution-points';
import { setEndpointSite } from '../db/endpoint-sites';
import { activeSigningKey } from '../db/repository';
import { agentJobs, endpointPatches, endpoints, patches, softwareInventory } from '../db/schema/index';
import { startDistributionPoint, type RunningDistributionPoint } from '../distribution-point/server';
import { createLogger } from '../logging';
import type { EnrollResponse, FoundPatch, ManifestBody, PollResponse } from '../shared/agent-protocol';
import { verifyDownloadToken } from '../shared/download-token';
import { createAgentGateway, DOWNLOAD_TOKEN_TTL_SECONDS, type AgentGateway } from './agent-gateway';
import { buildServer } from './app';
import { SecretBox } from '../db/secret-box';

let tdb: TestDatabase;
let app: FastifyInstance;
let gateway: AgentGateway;
const secretBox = SecretBox.ephemeral();
let central: string;
let repositoryDir: string;
const SECRET = 'test-enrol-secret-0123456789';

beforeAll(async () => {
  tdb = await createTestDatabase();
  const logger = createLogger(process.env.TEST_LOG ?? 'silent');
  repositoryDir = await fs.mkdtemp(path.join(os.tmpdir(), 'po-repo-'));
  // No scan on enrolment here: these tests hand out jobs they add themselves (the enrolment scan has its own test in
  // agent-trust.integration.test.ts). The concurrency test below polls one agent six times at once to test the
  // database claim; the per-agent poll cap is tested there with its default.
  gateway = createAgentGateway({
    database: tdb,
    secretBox,
    logger,
    leaseSeconds: 30,
    refreshMs: 100,
    repositoryDir,
    distributionPointsRefreshMs: 100,
    scanOnFirstEnrolment: false,
    maxConcurrentPollsPerAgent: 8,
  });
  app = await buildServer({ logger, health: [], routes: [gateway.routes] });
  central = await app.listen({ port: 0, host: '127.0.0.1' });
  await addEnrollSecret(tdb.db, { name: 'main', secret: SECRET });
});
afterAll(async () => {
  await app?.close();
  await tdb?.close();
});

let machineN = 0;
/** Enrols a machine; re-enrolling a known one needs its current node key (`currentKey`). */
async function enroll(overrides: Record<string, unknown> = {}, currentKey?: string): Promise<EnrollResponse> {
  machineN += 1;
  const res = await app.inject({
    method: 'POST',
    url: '/agent/v1/enroll',
    ...(currentKey ? { headers: { authorization: `Bearer ${currentKey}` } } : {}),
    payload: {
      enrollSecret: SECRET,
      machineId: `machine-${machineN}-${Date.now()}`,
      hostname: `host${machineN}`,
      osFamily: 'linux',
      osName: 'Debian GNU/Linux',
      osVersion: '12',
      arch: 'x64',
      ...overrides,
    },
  });
  expect(res.statusCode, res.body).toBe(200);
  return res.json<EnrollResponse>();
}

const auth = (key: string) => ({ authorization: `Bearer ${key}` });

async function addJob(endpointId: string, fields: Partial<typeof agentJobs.$inferInsert> = {}): Promise<string> {
  // Ids as dispatch makes them: deterministic from (cycle, wave, endpoint, kind), and long (a fleet scan's
  // cycle id is a workflow id), so the result route must take parameters longer than Fastify's default 100.
  const id =
    fields.id ?? dispatchJobId(`scan:fleet-scan:2026-11-27T114721024Z-51f4:${randomUUID()}`, null, endpointId, 'scan');
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
    const wrong = await app.inject({
      method: 'POST',
      url: '/agent/v1/enroll',
      payload: { enrollSecret: 'nope-nope-nope-nope', machineId: 'm-wrong-000', hostname: 'h', osFamily: 'linux' },
    });
    expect(wrong.statusCode).toBe(401);
    const bad = await app.inject({
      method: 'POST',
      url: '/agent/v1/enroll',
      payload: { enrollSecret: SECRET, machineId: 'short', hostname: 'h', osFamily: 'beos' },
    });
    expect(bad.statusCode).toBe(400);
    expect(bad.json<{ message: string }>().message).toMatch(/osFamily/);
    await addEnrollSecret(tdb.db, { name: 'old', secret: 'old-secret-old-secret-1' });
    await revokeEnrollSecret(tdb.db, 'old');
    const revoked = await app.inject({
      method: 'POST',
      url: '/agent/v1/enroll',
      payload: { enrollSecret: 'old-secret-old-secret-1', machineId: 'm-revoked-00', hostname: 'h', osFamily: 'linux' },
    });
    expect(revoked.statusCode).toBe(401);
    expect(await tdb.db.$count(endpoints)).toBe(before);
  });

  it('accepts any active secret; the same machine re-enrolling with its current key keeps its endpoint id and its old key stops working', async () => {
    await addEnrollSecret(tdb.db, { name: 'second', secret: 'second-secret-0123456' });
    const first = await enroll({ machineId: 'stable-machine-id-1' });
    expect(first.nodeKey.length).toBeGreaterThanOrEqual(43);
    expect(first.manifestSigningKey).toContain('BEGIN PUBLIC KEY');
    const again = await app.inject({
      method: 'POST',
      url: '/agent/v1/enroll',
      headers: auth(first.nodeKey),
      payload: {
        enrollSecret: 'second-secret-0123456',
        machineId: 'stable-machine-id-1',
        hostname: 'renamed',
        osFamily: 'linux',
      },
    });
    expect(again.statusCode, again.body).toBe(200);
    const second = again.json<EnrollResponse>();
    expect(second.endpointId).toBe(first.endpointId);
    expect(second.nodeKey).not.toBe(first.nodeKey);
    expect((await app.inject({ method: 'GET', url: '/agent/v1/jobs', headers: auth(first.nodeKey) })).statusCode).toBe(
      401,
    );
    expect((await app.inject({ method: 'GET', url: '/agent/v1/jobs', headers: auth(second.nodeKey) })).statusCode).toBe(
      200,
    );
    const [row] = await tdb.db.select().from(endpoints).where(eq(endpoints.id, first.endpointId));
    expect(row!.hostname).toBe('renamed');
    // only the hash is stored
    const stored = await tdb.db.execute<{ n: number }>(
      sql`select count(*)::int as n from agent_node_keys where key_hash = ${second.nodeKey}`,
    );
    expect(stored.rows[0]!.n).toBe(0);
  });
});

describe('authentication', () => {
  it('401 for a missing, forged or revoked key', async () => {
    const a = await enroll();
    expect((await app.inject({ method: 'GET', url: '/agent/v1/jobs' })).statusCode).toBe(401);
    expect(
      (await app.inject({ method: 'GET', url: '/agent/v1/jobs', headers: auth(a.nodeKey.slice(0, -2) + 'AA') }))
        .statusCode,
    ).toBe(401);
    expect((await app.inject({ method: 'GET', url: '/agent/v1/jobs', headers: auth(a.nodeKey) })).statusCode).toBe(200); // now cached
    await revokeAgent(tdb.db, a.endpointId);
    await expect
      .poll(
        async () => (await app.inject({ method: 'GET', url: '/agent/v1/jobs', headers: auth(a.nodeKey) })).statusCode,
        { timeout: 3000 },
      )
      .toBe(401);
    const inv = await app.inject({
      method: 'PUT',
      url: '/agent/v1/inventory',
      headers: auth(a.nodeKey),
      payload: { software: [] },
    });
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
    const other = await app.inject({
      method: 'POST',
      url: `/agent/v1/jobs/${encodeURIComponent(jobId)}/result`,
      headers: auth(b.nodeKey),
      payload: body,
    });
    expect(other.statusCode).toBe(403);
    const bad = await app.inject({
      method: 'POST',
      url: `/agent/v1/jobs/${encodeURIComponent(jobId)}/result`,
      headers: auth(a.nodeKey),
      payload: { status: 'done' },
    });
    expect(bad.statusCode).toBe(400);
    expect((await tdb.db.select().from(agentJobs).where(eq(agentJobs.id, jobId)))[0]!.state).toBe('leased');

    const ok = await app.inject({
      method: 'POST',
      url: `/agent/v1/jobs/${encodeURIComponent(jobId)}/result`,
      headers: auth(a.nodeKey),
      payload: body,
    });
    expect(ok.json()).toEqual({ ok: true, outcome: 'recorded' });
    const dup = await app.inject({
      method: 'POST',
      url: `/agent/v1/jobs/${encodeURIComponent(jobId)}/result`,
      headers: auth(a.nodeKey),
      payload: body,
    });
    expect(dup.statusCode).toBe(200);
    expect(dup.json()).toEqual({ ok: true, outcome: 'duplicate' });
    const diff = await app.inject({
      method: 'POST',
      url: `/agent/v1/jobs/${encodeURIComponent(jobId)}/result`,
      headers: auth(a.nodeKey),
      payload: { status: 'failed', error: 'x' },
    });
    expect(diff.statusCode).toBe(409);
    const missing = await app.inject({
      method: 'POST',
      url: `/agent/v1/jobs/nope/result`,
      headers: auth(a.nodeKey),
      payload: body,
    });
    expect(missing.statusCode).toBe(404);
  });

  it('a cancelled job refuses results (409); a late result for an unreachable job is recorded', async () => {
    const a = await enroll();
    const cancelled = await addJob(a.endpointId, { state: 'cancelled' });
    const unreachable = await addJob(a.endpointId, { state: 'unreachable', attempts: 1 });
    const r1 = await app.inject({
      method: 'POST',
      url: `/agent/v1/jobs/${cancelled}/result`,
      headers: auth(a.nodeKey),
      payload: scanResult([]),
    });
    expect(r1.statusCode).toBe(409);
    const r2 = await app.inject({
      method: 'POST',
      url: `/agent/v1/jobs/${unreachable}/result`,
      headers: auth(a.nodeKey),
      payload: { status: 'failed', error: 'apt lock held' },
    });
    expect(r2.statusCode).toBe(200);
    const [row] = await tdb.db.select().from(agentJobs).where(eq(agentJobs.id, unreachable));
    expect(row!.state).toBe('failed');
    expect(row!.error).toBe('apt lock held');
  });

  it('offers an expired lease again and fails a job whose deadline passed', async () => {
    const a = await enroll();
    const expired = await addJob(a.endpointId, {
      state: 'leased',
      attempts: 1,
      leaseExpiresAt: new Date(Date.now() - 1000),
    });
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
    const ids = await Promise.all(
      Array.from({ length: 25 }, (_, i) => addJob(a.endpointId, { id: `conc-${a.endpointId}-${i}` })),
    );
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

describe('an agent that hangs up on its long poll', () => {
  const jobRow = async (id: string) => (await tdb.db.select().from(agentJobs).where(eq(agentJobs.id, id)))[0]!;

  it('leases it nothing: work dispatched after it hung up waits queued for its next poll', async () => {
    const a = await enroll();
    await poll(a.nodeKey);
    // A real socket (inject has none to close): the agent's long poll, then its own time-out closes the connection.
    const req = http.get(`${central}/agent/v1/jobs?wait=20`, { headers: auth(a.nodeKey) });
    req.on('error', () => undefined);
    await expect.poll(() => gateway.stats().heldPolls, { timeout: 3000 }).toBeGreaterThan(0);
    req.destroy();
    await expect.poll(() => gateway.stats().heldPolls, { timeout: 3000 }).toBe(0);

    const id = await addJob(a.endpointId);
    gateway.wake([a.endpointId]);
    await new Promise((r) => setTimeout(r, 300));
    const row = await jobRow(id);
    expect(row.state).toBe('queued');
    expect(row.attempts).toBe(0);
    // The agent's next poll gets it at once, as its first attempt (not ten minutes later, when a lease expired).
    expect((await poll(a.nodeKey)).jobs.map((j) => j.id)).toEqual([id]);
    expect((await jobRow(id)).attempts).toBe(1);
  });

  it('jobs leased to a poll that cannot answer are handed back, uncounted; a lease renewed since is kept', async () => {
    const a = await enroll();
    const first = await addJob(a.endpointId, { id: `back-1-${a.endpointId}` });
    const second = await addJob(a.endpointId, { id: `back-2-${a.endpointId}` });
    const leased = await leaseJobs(tdb.db, a.endpointId, { now: new Date(), leaseSeconds: 30 });
    expect(leased.map((j) => j.id).sort()).toEqual([first, second].sort());
    // The agent holds `second` under a renewed lease (it did get it, from another poll): that lease stands.
    await new Promise((r) => setTimeout(r, 5));
    await renewJobLease(tdb.db, a.endpointId, second, { now: new Date(), leaseSeconds: 60 });

    expect(await returnLeasedJobs(tdb.db, a.endpointId, leased)).toBe(1);
    const [f, s] = [await jobRow(first), await jobRow(second)];
    expect([f.state, f.attempts, f.leaseExpiresAt, f.startedAt]).toEqual(['queued', 0, null, null]);
    expect([s.state, s.attempts]).toEqual(['leased', 1]);
    // Handing back twice changes nothing.
    expect(await returnLeasedJobs(tdb.db, a.endpointId, leased)).toBe(0);
  });
});

describe('a poll the server could not answer in time', () => {
  it('leases nothing past its wait plus the grace: the job stays queued for the next poll, not for a lease to expire', async () => {
    const a = await enroll();
    const id = await addJob(a.endpointId);
    // A gateway whose grace is 0 s: a poll with wait=0 is past it once any time at all has gone by (as a poll whose
    // server stalled past wait + 10 s is in production). Agents give up on a poll 15 s past its wait.
    const logger = createLogger('silent');
    const strict = createAgentGateway({
      database: tdb,
      secretBox,
      logger,
      refreshMs: 100,
      scanOnFirstEnrolment: false,
      pollAnswerGraceSeconds: 0,
    });
    const strictApp = await buildServer({ logger, health: [], routes: [strict.routes] });
    strict.wake([a.endpointId]);
    try {
      const res = await strictApp.inject({ method: 'GET', url: '/agent/v1/jobs?wait=0', headers: auth(a.nodeKey) });
      expect(res.statusCode, res.body).toBe(200);
      expect(res.json<PollResponse>().jobs).toEqual([]);
      const [row] = await tdb.db.select().from(agentJobs).where(eq(agentJobs.id, id));
      expect([row!.state, row!.attempts, row!.leaseExpiresAt]).toEqual(['queued', 0, null]);
    } finally {
      await strictApp.close();
    }
    // A poll answered in time (the default grace) gets it, as its first attempt.
    gateway.wake([a.endpointId]);
    expect((await poll(a.nodeKey)).jobs.map((j) => j.id)).toEqual([id]);
  });
});

describe('an agent whose last poll got no answer (lost=1)', () => {
  const jobRow = async (id: string) => (await tdb.db.select().from(agentJobs).where(eq(agentJobs.id, id)))[0]!;

  it('is offered again at once what was leased to it before that poll, instead of when the lease ends', async () => {
    const a = await enroll();
    const id = await addJob(a.endpointId);
    gateway.wake([a.endpointId]);
    // This answer never reaches the agent (its connection broke after the server wrote it).
    expect((await poll(a.nodeKey)).jobs.map((j) => j.id)).toEqual([id]);
    // A poll that does not say so gets nothing: the job is the agent's until its lease ends.
    const plain = await poll(a.nodeKey);
    expect(plain.jobs).toEqual([]);
    expect(plain.lostChecked).toBeUndefined();
    // The agent says its last poll got no answer: the job comes again (though the poll before found nothing, so the
    // work hint has nothing for this endpoint).
    const res = await app.inject({
      method: 'GET',
      url: '/agent/v1/jobs?wait=0&lost=1',
      headers: auth(a.nodeKey),
    });
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json<PollResponse>().jobs.map((j) => j.id)).toEqual([id]);
    expect(res.json<PollResponse>().lostChecked).toBe(true);
    const row = await jobRow(id);
    expect([row.state, row.attempts]).toEqual(['leased', 2]);
    expect(gateway.stats().lostPolls).toBeGreaterThan(0);
    // Anything but lost=1 / lost=0 is a bad request.
    const bad = await app.inject({ method: 'GET', url: '/agent/v1/jobs?wait=0&lost=yes', headers: auth(a.nodeKey) });
    expect(bad.statusCode).toBe(400);
  });

  it('takes back only leases granted before the poll arrived, never one granted after it', async () => {
    const a = await enroll();
    const id = await addJob(a.endpointId);
    const t0 = new Date();
    expect((await leaseJobs(tdb.db, a.endpointId, { now: t0, leaseSeconds: 30 })).map((j) => j.id)).toEqual([id]);
    const later = new Date(t0.getTime() + 1000);
    // A poll that arrived before the lease (a stale poll leased after it came in): the lease stands.
    expect(
      await leaseJobs(tdb.db, a.endpointId, {
        now: later,
        leaseSeconds: 30,
        reclaimBefore: new Date(t0.getTime() - 1),
      }),
    ).toEqual([]);
    expect((await jobRow(id)).attempts).toBe(1);
    // A poll that arrived after it: offered again.
    expect(
      (
        await leaseJobs(tdb.db, a.endpointId, {
          now: later,
          leaseSeconds: 30,
          reclaimBefore: new Date(t0.getTime() + 1),
        })
      ).map((j) => j.id),
    ).toEqual([id]);
    expect((await jobRow(id)).attempts).toBe(2);
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
      payload: scanResult([
        found('DSA-1-1'),
        found('DSA-2-1', { vendorSeverity: 'low', cvss: 3.1 }),
        found('DSA-3-1', { vendorSeverity: undefined, cvss: 9.8 }),
      ]),
    });
    expect(r.statusCode).toBe(200);
    const cat = new Map((await tdb.db.select().from(patches)).map((p) => [p.id, p]));
    expect(cat.get('DSA-1-1')!.severity).toBe('important');
    expect(cat.get('DSA-2-1')!.severity).toBe('low');
    expect(cat.get('DSA-3-1')!.severity).toBe('critical');
    expect(cat.get('DSA-1-1')!.cves).toEqual(['CVE-2024-0727']);
    const states = async () =>
      Object.fromEntries(
        (await tdb.db.select().from(endpointPatches).where(eq(endpointPatches.endpointId, a.endpointId))).map((e) => [
          e.patchId,
          e.state,
        ]),
      );
    expect(await states()).toEqual({ 'DSA-1-1': 'missing', 'DSA-2-1': 'missing', 'DSA-3-1': 'missing' });

    const install = await addJob(a.endpointId, { kind: 'install', payload: { patches: [] } });
    gateway.wake([a.endpointId]);
    await poll(a.nodeKey);
    await app.inject({
      method: 'POST',
      url: `/agent/v1/jobs/${install}/result`,
      headers: auth(a.nodeKey),
      payload: {
        status: 'failed',
        rebootPending: true,
        patches: [
          { patchId: 'DSA-1-1', state: 'installed' },
          { patchId: 'DSA-2-1', state: 'failed', error: 'dpkg error' },
          { patchId: 'DSA-3-1', state: 'pending_reboot' },
        ],
      },
    });
    expect(await states()).toEqual({ 'DSA-1-1': 'installed', 'DSA-2-1': 'failed', 'DSA-3-1': 'pending_reboot' });
    expect((await tdb.db.select().from(endpoints).where(eq(endpoints.id, a.endpointId)))[0]!.pendingReboot).toBe(true);

    const scan2 = await addJob(a.endpointId);
    gateway.wake([a.endpointId]);
    await poll(a.nodeKey);
    await app.inject({
      method: 'POST',
      url: `/agent/v1/jobs/${scan2}/result`,
      headers: auth(a.nodeKey),
      payload: scanResult([found('DSA-2-1')]),
    });
    expect(await states()).toEqual({ 'DSA-1-1': 'installed', 'DSA-2-1': 'missing', 'DSA-3-1': 'installed' });
  });

  it('inventory replaces software and updates facts; a bad inventory is 400 and stores nothing', async () => {
    const a = await enroll();
    const put = (payload: unknown) =>
      app.inject({
        method: 'PUT',
        url: '/agent/v1/inventory',
        headers: auth(a.nodeKey),
        payload: payload as Record<string, unknown>,
      });
    expect(
      (
        await put({
          osVersion: '12.5',
          pendingReboot: true,
          software: [
            { source: 'apt', name: 'openssl', version: '3.0.11-1' },
            { source: 'apt', name: 'bash', version: '5.2.15-2' },
          ],
        })
      ).statusCode,
    ).toBe(200);
    expect((await put({ software: [{ source: 'apt', name: 'x' }] })).statusCode).toBe(400);
    const sw = await tdb.db.select().from(softwareInventory).where(eq(softwareInventory.endpointId, a.endpointId));
    expect(sw.map((s) => s.name).sort()).toEqual(['bash', 'openssl']);
    const [ep] = await tdb.db.select().from(endpoints).where(eq(endpoints.id, a.endpointId));
    expect(ep!.osVersion).toBe('12.5');
    expect(ep!.pendingReboot).toBe(true);
  });

  it('polls update last-seen in batches', async () => {
    const a = await enroll();
    await tdb.db
      .update(endpoints)
      .set({ lastSeenAt: new Date(0), status: 'unreachable' })
      .where(eq(endpoints.id, a.endpointId));
    await poll(a.nodeKey);
    await expect
      .poll(async () => (await tdb.db.select().from(endpoints).where(eq(endpoints.id, a.endpointId)))[0]!, {
        timeout: 3000,
      })
      .toMatchObject({ status: 'active' });
    const [ep] = await tdb.db.select().from(endpoints).where(eq(endpoints.id, a.endpointId));
    expect(ep!.lastSeenAt!.getTime()).toBeGreaterThan(Date.now() - 10_000);
  });
});

const tagsOf = async (endpointId: string) =>
  (await tdb.db.select({ tags: endpoints.tags }).from(endpoints).where(eq(endpoints.id, endpointId)))[0]!.tags;

describe('sites', () => {
  it('an enrolment with a site gives exactly one site tag, replaced on re-enrolment, other tags kept; a bad site is 400', async () => {
    const machineId = `site-machine-${randomUUID()}`;
    const a = await enroll({ machineId, site: 'Branch-1' });
    expect(await tagsOf(a.endpointId)).toEqual(['site:branch-1']);
    await tdb.db
      .update(endpoints)
      .set({ tags: ['ring:pilot', 'site:branch-1'] })
      .where(eq(endpoints.id, a.endpointId));
    const b = await enroll({ machineId, site: 'branch-2' }, a.nodeKey);
    expect(await tagsOf(a.endpointId)).toEqual(['ring:pilot', 'site:branch-2']);
    await enroll({ machineId }, b.nodeKey); // no site: left as it is
    expect(await tagsOf(a.endpointId)).toEqual(['ring:pilot', 'site:branch-2']);
    for (const site of ['-dash-first', 'has space', 'x'.repeat(64), '']) {
      const bad = await app.inject({
        method: 'POST',
        url: '/agent/v1/enroll',
        payload: { enrollSecret: SECRET, machineId, hostname: 'h', osFamily: 'linux', site },
      });
      expect(bad.statusCode, site).toBe(400);
      expect(bad.json<{ message: string }>().message).toMatch(/site/);
    }
    expect(await tagsOf(a.endpointId)).toEqual(['ring:pilot', 'site:branch-2']);
  });

  it("offers a site's distribution points only to agents of that site; a site set later (CLI) is picked up by the next refresh", async () => {
    const site = `poll-${randomUUID().slice(0, 8)}`;
    await addDistributionPoint(tdb.db, { name: `dp-${site}`, url: 'http://dp1.branch.example:8081/', site });
    const inSite = await enroll({ site });
    const otherSite = await enroll({ site: `${site}-other` });
    const noSite = await enroll({ hostname: `late-${site}` });
    await expect
      .poll(async () => (await poll(inSite.nodeKey)).distributionPoints, { timeout: 3000 })
      .toEqual(['http://dp1.branch.example:8081']);
    expect((await poll(otherSite.nodeKey)).distributionPoints).toEqual([]);
    expect((await poll(noSite.nodeKey)).distributionPoints).toEqual([]); // its key (with no site) is now cached

    const set = await setEndpointSite(tdb.db, `late-${site}`, site, 'test');
    expect(set).toMatchObject({ endpointId: noSite.endpointId, previous: null, site });
    await expect
      .poll(async () => (await poll(noSite.nodeKey)).distributionPoints, { timeout: 3000 })
      .toEqual(['http://dp1.branch.example:8081']);
    expect(await tagsOf(noSite.endpointId)).toEqual([`site:${site}`]);
    await setEndpointSite(tdb.db, noSite.endpointId, null);
    await expect.poll(async () => (await poll(noSite.nodeKey)).distributionPoints, { timeout: 3000 }).toEqual([]);
    expect(await tagsOf(noSite.endpointId)).toEqual([]);
  });

  it('setEndpointSite: NotFound, a hostname naming several endpoints, a bad site', async () => {
    await expect(setEndpointSite(tdb.db, 'no-such-host', 'x')).rejects.toMatchObject({ code: 'NOT_FOUND' });
    const host = `twin-${randomUUID().slice(0, 8)}`;
    const one = await enroll({ hostname: host });
    await enroll({ hostname: host });
    await expect(setEndpointSite(tdb.db, host, 'x')).rejects.toMatchObject({ code: 'CONFLICT' });
    await expect(setEndpointSite(tdb.db, one.endpointId, 'not a site')).rejects.toMatchObject({
      code: 'INVALID_INPUT',
    });
    expect((await setEndpointSite(tdb.db, one.endpointId, 'twin-site')).site).toBe('twin-site');
  });
});

describe('whoami and the central files route', () => {
  const bytes = Buffer.from(`installer ${randomUUID()}`);
  const hash = createHash('sha256').update(bytes).digest('hex');
  const url = `/agent/v1/files/${hash}`;

  it('whoami names the agent (with its site) or the distribution point; 401 otherwise', async () => {
    const a = await enroll({ site: 'who-site' });
    const r = await app.inject({ method: 'GET', url: '/agent/v1/whoami', headers: auth(a.nodeKey) });
    expect(r.json()).toEqual({ kind: 'agent', endpointId: a.endpointId, site: 'who-site' });
    const { token } = await addDistributionPoint(tdb.db, {
      name: 'who-dp',
      url: 'http://who-dp:8081',
      site: 'who-site',
    });
    expect(token.length).toBeGreaterThanOrEqual(43); // 256 bits, base64url
    expect((await app.inject({ method: 'GET', url: '/agent/v1/whoami', headers: auth(token) })).json()).toEqual({
      kind: 'distribution-point',
      name: 'who-dp',
      site: 'who-site',
      tokenKey: (await activeSigningKey(tdb.db, secretBox)).publicKey,
    });
    const stored = await tdb.db.execute<{ n: number }>(
      sql`select count(*)::int as n from distribution_points where token_hash = ${token}`,
    );
    expect(stored.rows[0]!.n).toBe(0); // only the hash
    for (const headers of [{}, auth('forged-key-forged-key-forged-key-forged-key')]) {
      const no = await app.inject({ method: 'GET', url: '/agent/v1/whoami', headers });
      expect(no.statusCode).toBe(401);
      expect(no.json()).toMatchObject({ error: 'UNAUTHORIZED', message: expect.any(String) });
    }
    await revokeAgent(tdb.db, a.endpointId);
    await expect
      .poll(
        async () => (await app.inject({ method: 'GET', url: '/agent/v1/whoami', headers: auth(a.nodeKey) })).statusCode,
        { timeout: 3000 },
      )
      .toBe(401);
  });

  it('serves files to agents and distribution points only: anonymous, forged and rotated-out tokens get 401', async () => {
    await fs.writeFile(path.join(repositoryDir, hash), bytes);
    const anon = await app.inject({ method: 'GET', url });
    expect(anon.statusCode).toBe(401);
    expect(anon.json()).toMatchObject({ error: 'UNAUTHORIZED', message: expect.stringMatching(/Bearer/) });
    expect((await app.inject({ method: 'GET', url, headers: auth('wrong-token') })).statusCode).toBe(401);
    const a = await enroll();
    const byAgent = await app.inject({ method: 'GET', url, headers: auth(a.nodeKey) });
    expect(byAgent.statusCode).toBe(200);
    expect(byAgent.rawPayload).toEqual(bytes);
    const first = await addDistributionPoint(tdb.db, { name: 'files-dp', url: 'http://files-dp:8081', site: 'files' });
    expect((await app.inject({ method: 'GET', url, headers: auth(first.token) })).rawPayload).toEqual(bytes);
    const second = await addDistributionPoint(tdb.db, { name: 'files-dp', url: 'http://files-dp:8081', site: 'files' }); // re-registered: new token
    expect((await app.inject({ method: 'GET', url, headers: auth(second.token) })).statusCode).toBe(200);
    // A gateway caches a point's token for up to 30 s; one that has not seen it refuses the replaced token.
    const fresh = createAgentGateway({ database: tdb, secretBox, logger: createLogger('silent'), repositoryDir });
    const app2 = await buildServer({ logger: createLogger('silent'), health: [], routes: [fresh.routes] });
    try {
      expect((await app2.inject({ method: 'GET', url, headers: auth(first.token) })).statusCode).toBe(401);
      expect((await app2.inject({ method: 'GET', url, headers: auth(second.token) })).statusCode).toBe(200);
    } finally {
      await app2.close();
    }
  });
});

describe('a distribution point in front of the real gateway', () => {
  const bytes = randomBytes(64 * 1024);
  const hash = createHash('sha256').update(bytes).digest('hex');
  const manifest: ManifestBody = {
    version: 1,
    expiresAt: new Date(Date.now() + 3600_000).toISOString(),
    files: [{ name: 'tool.msi', sha256: hash, size: bytes.length }],
  };
  const file = { name: 'tool.msi', sha256: hash };
  const site = `dp-site-${randomUUID().slice(0, 8)}`;
  let dp: RunningDistributionPoint;
  let token: string;
  /** Every Authorization header the point was sent (its server is wrapped by a recording proxy). */
  const dpSaw: string[] = [];
  let proxy: http.Server;
  let dpUrl: string;

  beforeAll(async () => {
    await fs.writeFile(path.join(repositoryDir, hash), bytes);
    ({ token } = await addDistributionPoint(tdb.db, { name: `dp-${site}`, url: 'http://127.0.0.1:1', site }));
    dp = await startDistributionPoint({
      upstream: central,
      token,
      cacheDir: await fs.mkdtemp(path.join(os.tmpdir(), 'po-dp-it-')),
      host: '127.0.0.1',
      port: 0,
      log: pino({ level: 'silent' }),
    });
    proxy = http.createServer((req, res) => {
      dpSaw.push(req.headers.authorization ?? '');
      const up = http.request(`${dp.url}${req.url}`, { method: req.method, headers: req.headers }, (r) => {
        res.writeHead(r.statusCode ?? 502, r.headers);
        r.pipe(res);
      });
      up.on('error', () => res.writeHead(502).end());
      req.pipe(up);
    });
    await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
    dpUrl = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    proxy?.close();
    await dp?.close();
  });

  const viaDp = (key: string | null) => fetch(`${dpUrl}/agent/v1/files/${hash}`, { headers: key ? auth(key) : {} });
  /** An agent of `s`, once the gateway hands it a download token (the point list is re-read every 100 ms). */
  async function agentWithToken(s = site): Promise<EnrollResponse & { downloadToken: string }> {
    const a = await enroll({ site: s });
    let downloadToken: string | undefined;
    await expect
      .poll(async () => (downloadToken = (await poll(a.nodeKey)).downloadToken), { timeout: 3000 })
      .toBeDefined();
    return { ...a, downloadToken: downloadToken! };
  }
  const authFor = (a: { nodeKey: string; downloadToken: string }) => (source: string) =>
    source === central ? `Bearer ${a.nodeKey}` : `Bearer ${a.downloadToken}`;
  const forge = async (
    claims: Partial<{ sub: string; site: string; exp: number; aud: string }>,
    privateKey?: string,
  ) => {
    const body = { sub: 'ep', site, exp: Math.floor(Date.now() / 1000) + 900, aud: 'distribution-point', ...claims };
    const payload = Buffer.from(JSON.stringify(body)).toString('base64url');
    const key = privateKey ?? (await activeSigningKey(tdb.db, secretBox)).privateKey;
    return `v1.${payload}.${cryptoSign(null, Buffer.from(`patchops-download-token-v1\n${payload}`), key).toString('base64url')}`;
  };

  it('an agent of the site downloads through the point with its download token; the point never sees the node key', async () => {
    const a = await agentWithToken();
    const destDir = await fs.mkdtemp(path.join(os.tmpdir(), 'po-dl-'));
    const misses = dp.stats.misses;
    dpSaw.length = 0;
    const p = await downloadVerified(file, manifest, { sources: [dpUrl, central], destDir, authFor: authFor(a) });
    expect(await fs.readFile(p)).toEqual(bytes);
    expect(dp.stats.misses).toBe(misses + 1);
    await downloadVerified(file, manifest, { sources: [dpUrl, central], destDir, authFor: authFor(a) });
    expect(dp.stats.hits).toBeGreaterThanOrEqual(1);
    expect(dp.cache().files).toBe(1);
    expect(dpSaw).toEqual([`Bearer ${a.downloadToken}`, `Bearer ${a.downloadToken}`]);
    expect(dpSaw.join()).not.toContain(a.nodeKey);
    const r = await viaDp(a.nodeKey);
    expect(r.status).toBe(401); // a node key sent anyway is refused
    expect(await r.json()).toMatchObject({ error: 'UNAUTHORIZED', message: expect.stringMatching(/node keys/) });
  });

  it('refuses missing, unknown, expired, tampered, foreign-signed and wrong-audience tokens (401) and a token of another site (403)', async () => {
    const a = await agentWithToken();
    expect((await viaDp(a.downloadToken)).status).toBe(200);
    const [v, payload, sig] = a.downloadToken.split('.');
    const claims = JSON.parse(Buffer.from(payload!, 'base64url').toString()) as {
      sub: string;
      site: string;
      exp: number;
      aud: string;
    };
    expect(claims).toMatchObject({ sub: a.endpointId, site, aud: 'distribution-point' });
    const tampered = `${v}.${Buffer.from(JSON.stringify({ ...claims, sub: 'someone-else' })).toString('base64url')}.${sig}`;
    const other = generateKeyPairSync('ed25519', {
      privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
      publicKeyEncoding: { type: 'spki', format: 'pem' },
    });
    for (const [credential, status] of [
      [null, 401],
      ['forged-key-forged-key-forged-key-forged-key', 401],
      [await forge({ sub: a.endpointId, exp: Math.floor(Date.now() / 1000) - 120 }), 401],
      [tampered, 401],
      [await forge({ sub: a.endpointId }, other.privateKey), 401],
      [await forge({ sub: a.endpointId, aud: 'central' }), 401],
      [await forge({ sub: a.endpointId, site: `${site}-elsewhere` }), 403],
    ] as const) {
      expect((await viaDp(credential)).status, String(credential)).toBe(status);
    }
    // The agent of another site gets its file from the central server.
    const b = await enroll({ site: `${site}-elsewhere` });
    const p = await downloadVerified(file, manifest, {
      sources: [dpUrl, central],
      destDir: await fs.mkdtemp(path.join(os.tmpdir(), 'po-dl-')),
      authFor: authFor({
        nodeKey: b.nodeKey,
        downloadToken: await forge({ sub: b.endpointId, site: `${site}-elsewhere` }),
      }),
    });
    expect(await fs.readFile(p)).toEqual(bytes);
  });

  it('a revoked agent keeps its token until it expires (the documented trade-off), but the central server refuses it at once', async () => {
    const a = await agentWithToken();
    await revokeAgent(tdb.db, a.endpointId);
    await expect
      .poll(
        async () =>
          (await app.inject({ method: 'GET', url: `/agent/v1/files/${hash}`, headers: auth(a.nodeKey) })).statusCode,
        { timeout: 3000 },
      )
      .toBe(401);
    expect((await viaDp(a.downloadToken)).status).toBe(200);
  });

  it('without credentials a download is refused everywhere; with them, the agent falls back to the central server when the point is down', async () => {
    const a = await agentWithToken();
    const destDir = await fs.mkdtemp(path.join(os.tmpdir(), 'po-dl-'));
    await expect(downloadVerified(file, manifest, { sources: [dpUrl, central], destDir })).rejects.toThrow(
      /HTTP 401.*HTTP 401/,
    );
    const down = await startDistributionPoint({
      upstream: central,
      token,
      cacheDir: await fs.mkdtemp(path.join(os.tmpdir(), 'po-dp-down-')),
      host: '127.0.0.1',
      port: 0,
      log: pino({ level: 'silent' }),
    });
    const downUrl = down.url;
    await down.close();
    const p = await downloadVerified(file, manifest, { sources: [downUrl, central], destDir, authFor: authFor(a) });
    expect(await fs.readFile(p)).toEqual(bytes);
  });

  it('a point with a wrong token does not start', async () => {
    await expect(
      startDistributionPoint({
        upstream: central,
        token: 'wrong-token',
        cacheDir: await fs.mkdtemp(path.join(os.tmpdir(), 'po-dp-bad-')),
        host: '127.0.0.1',
        port: 0,
        log: pino({ level: 'silent' }),
      }),
    ).rejects.toThrow(/refused this distribution point's token/);
  });
});

describe('download tokens from the gateway', () => {
  it('come with polls only when the site has points, are reused across polls and renewed once less than half their lifetime is left', async () => {
    let clock = new Date('2026-11-27T12:00:00Z');
    const g = createAgentGateway({
      database: tdb,
      secretBox,
      logger: createLogger('silent'),
      refreshMs: 50,
      distributionPointsRefreshMs: 50,
      now: () => clock,
    });
    const app2 = await buildServer({ logger: createLogger('silent'), health: [], routes: [g.routes] });
    try {
      const s = `tok-site-${randomUUID().slice(0, 8)}`;
      const a = await enroll({ site: s });
      const poll2 = async () =>
        (
          await app2.inject({ method: 'GET', url: '/agent/v1/jobs?wait=0', headers: auth(a.nodeKey) })
        ).json<PollResponse>();
      expect((await poll2()).downloadToken).toBeUndefined(); // no point in its site yet
      await addDistributionPoint(tdb.db, { name: `dp-${s}`, url: 'http://dp.tok:8081', site: s });
      await expect
        .poll(async () => (await poll2()).distributionPoints, { timeout: 3000 })
        .toEqual(['http://dp.tok:8081']);
      const first = (await poll2()).downloadToken!;
      const { publicKey } = await activeSigningKey(tdb.db, secretBox);
      const exp = (t: string) => verifyDownloadToken(t, publicKey, { now: clock, site: s }).exp;
      expect(exp(first)).toBe(clock.getTime() / 1000 + DOWNLOAD_TOKEN_TTL_SECONDS);
      const signed = g.stats().downloadTokensSigned;
      clock = new Date(clock.getTime() + (DOWNLOAD_TOKEN_TTL_SECONDS / 2 - 10) * 1000);
      expect((await poll2()).downloadToken).toBe(first); // more than half left: the same token
      expect(g.stats().downloadTokensSigned).toBe(signed);
      clock = new Date(clock.getTime() + 20_000);
      const second = (await poll2()).downloadToken!;
      expect(second).not.toBe(first); // less than half left: a new one
      expect(exp(second)).toBe(clock.getTime() / 1000 + DOWNLOAD_TOKEN_TTL_SECONDS);
      expect(g.stats().downloadTokensSigned).toBe(signed + 1);
      expect((await poll2()).downloadToken).toBe(second);
      // The point learns the key the tokens verify with from whoami.
      const { token } = await addDistributionPoint(tdb.db, { name: `dp-${s}`, url: 'http://dp.tok:8081', site: s });
      expect((await app2.inject({ method: 'GET', url: '/agent/v1/whoami', headers: auth(token) })).json()).toEqual({
        kind: 'distribution-point',
        name: `dp-${s}`,
        site: s,
        tokenKey: publicKey,
      });
    } finally {
      await app2.close();
    }
  });
});

describe('lease renewal', () => {
  const renew = (key: string, id: string) =>
    app.inject({ method: 'POST', url: `/agent/v1/jobs/${encodeURIComponent(id)}/lease`, headers: auth(key) });
  const row = async (id: string) => (await tdb.db.select().from(agentJobs).where(eq(agentJobs.id, id)))[0]!;

  it('the owning agent extends a leased job by the lease length (200); 403 for another agent, 404 unknown, 401 without a key', async () => {
    const a = await enroll();
    const b = await enroll();
    const id = await addJob(a.endpointId);
    await expect.poll(async () => (await poll(a.nodeKey)).jobs.map((j) => j.id), { timeout: 3000 }).toEqual([id]);
    await tdb.db
      .update(agentJobs)
      .set({ leaseExpiresAt: new Date(Date.now() + 2000) })
      .where(eq(agentJobs.id, id));
    const before = Date.now();
    const ok = await renew(a.nodeKey, id);
    expect(ok.statusCode, ok.body).toBe(200);
    const until = Date.parse(ok.json<{ leaseExpiresAt: string }>().leaseExpiresAt);
    expect(until).toBeGreaterThanOrEqual(before + 30_000 - 1000);
    expect(until).toBeLessThanOrEqual(Date.now() + 30_000);
    expect((await row(id)).leaseExpiresAt!.getTime()).toBe(until);
    expect((await renew(b.nodeKey, id)).statusCode).toBe(403);
    expect((await renew(a.nodeKey, 'no-such-job')).statusCode).toBe(404);
    expect(
      (await app.inject({ method: 'POST', url: `/agent/v1/jobs/${encodeURIComponent(id)}/lease` })).statusCode,
    ).toBe(401);
    expect((await row(id)).leaseExpiresAt!.getTime()).toBe(until);
  });

  it.each([
    ['finished', { state: 'succeeded', finishedAt: new Date() }],
    ['cancelled', { state: 'cancelled' }],
    ['marked unreachable', { state: 'unreachable', attempts: 1 }],
    ['never handed out', { state: 'queued' }],
    [
      'leased, but the lease expired (up to be offered again)',
      { state: 'leased', attempts: 1, leaseExpiresAt: new Date(Date.now() - 1000) },
    ],
    [
      'past its deadline and the grace',
      {
        state: 'leased',
        attempts: 1,
        leaseExpiresAt: new Date(Date.now() + 5000),
        deadline: new Date(Date.now() - (LEASE_DEADLINE_GRACE_SECONDS + 60) * 1000),
      },
    ],
  ] as const)('409 when the job is %s', async (_name, fields) => {
    const a = await enroll();
    const id = await addJob(a.endpointId, fields as Partial<typeof agentJobs.$inferInsert>);
    const before = await row(id);
    const r = await renew(a.nodeKey, id);
    expect(r.statusCode, r.body).toBe(409);
    expect(r.json()).toMatchObject({ error: 'CONFLICT' });
    const after = await row(id);
    expect(after.state).toBe(before.state);
    expect(after.leaseExpiresAt?.getTime()).toBe(before.leaseExpiresAt?.getTime());
  });

  it('never extends past the deadline plus the grace', async () => {
    const a = await enroll();
    const deadline = new Date(Date.now() - (LEASE_DEADLINE_GRACE_SECONDS - 10) * 1000); // the grace ends in 10 s
    const id = await addJob(a.endpointId, {
      state: 'leased',
      attempts: 1,
      leaseExpiresAt: new Date(Date.now() + 2000),
      deadline,
    });
    const r = await renew(a.nodeKey, id);
    expect(r.statusCode, r.body).toBe(200);
    expect(Date.parse(r.json<{ leaseExpiresAt: string }>().leaseExpiresAt)).toBe(
      deadline.getTime() + LEASE_DEADLINE_GRACE_SECONDS * 1000,
    );
  });

  it('a renewed job is not marked unreachable by the sweep; the same job unrenewed is', async () => {
    const a = await enroll();
    const cycleId = `lease-sweep-${randomUUID()}`;
    const soon = new Date(Date.now() + 1000);
    const renewed = await addJob(a.endpointId, {
      id: `${cycleId}:renewed`,
      cycleId,
      wave: 1,
      kind: 'install',
      state: 'leased',
      attempts: 1,
      leaseExpiresAt: soon,
    });
    const silent = await addJob(a.endpointId, {
      id: `${cycleId}:silent`,
      cycleId,
      wave: 1,
      kind: 'install',
      state: 'leased',
      attempts: 1,
      leaseExpiresAt: soon,
    });
    expect((await renew(a.nodeKey, renewed)).statusCode).toBe(200);
    await new Promise((r) => setTimeout(r, 2000));
    expect((await renew(a.nodeKey, renewed)).statusCode).toBe(200); // the agent keeps renewing while it works
    expect((await renew(a.nodeKey, silent)).statusCode).toBe(409); // its lease ran out
    const swept = await new DrizzleAgentJobs(tdb.db).expireUnreachable(cycleId, 1, 0.5, new Date());
    expect(swept).toBe(1);
    expect((await row(renewed)).state).toBe('leased');
    expect((await row(silent)).state).toBe('unreachable');
  });
});
