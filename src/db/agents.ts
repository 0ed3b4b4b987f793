/**
 * Data access for the agent area: enrol secrets, node keys and enrolments waiting for approval, job leasing and
 * results (what a scan reports is applied by patch-reports.ts), inventory, manifests.
 * Returns small plain objects; errors are CodedErrors with the contract named on each method.
 */
import { createHash, generateKeyPairSync, randomBytes, sign } from 'node:crypto';
import { and, desc, eq, gt, inArray, isNull, lt, sql } from 'drizzle-orm';
import { CodedError, ErrorCode } from '../domain/errors';
import { siteSchema, type AgentJob, type EnrollRequest, type Inventory, type JobResult, type ManifestBody, type ScanJobPayload, type SignedManifest } from '../shared/agent-protocol';
import { jobId } from './agent-jobs';
import { appendAudit, canonicalJson } from './audit';
import { applyScan, screenJobResult, type RefusedEntry } from './patch-reports';
import type { Db } from './client';
import { SecretBox } from './secret-box';
import {
  agentEnrollmentRequests,
  agentEnrollSecrets,
  agentJobs,
  agentNodeKeys,
  auditLog,
  distributionPoints,
  endpointPatches,
  endpoints,
  endpointSiteChanges,
  manifestSigningKeys,
  repositoryManifests,
  softwareInventory,
} from './schema/index';

export const sha256Hex = (s: string | Buffer): string => createHash('sha256').update(s).digest('hex');

/** A fresh secret of 256 random bits, URL-safe. */
export const randomSecret = (): string => randomBytes(32).toString('base64url');

const DEADLINE_MESSAGE = 'deadline passed before the agent picked it up';

// ---------------------------------------------------------------- enrol secrets

export interface EnrollSecretInfo {
  id: number;
  name: string;
  createdAt: string;
  revokedAt: string | null;
}

/** Adds an enrol secret (given, or generated) and returns it; the plain secret is never stored. Conflict when the name exists. */
export async function addEnrollSecret(db: Db, input: { name: string; secret?: string; by?: string }): Promise<{ name: string; secret: string }> {
  const secret = input.secret ?? randomSecret();
  if (secret.length < 16) throw new CodedError(ErrorCode.InvalidInput, 'an enrol secret needs at least 16 characters; leave it out to have one generated');
  const rows = await db
    .insert(agentEnrollSecrets)
    .values({ name: input.name, secretHash: sha256Hex(secret), createdBy: input.by ?? 'system' })
    .onConflictDoNothing()
    .returning({ id: agentEnrollSecrets.id });
  if (rows.length === 0) throw new CodedError(ErrorCode.Conflict, `an enrol secret named "${input.name}" (or with that value) exists already; pick another name`);
  await appendAudit(db, { actor: input.by ?? 'system', action: 'agent.enroll_secret.added', subjectType: 'enroll_secret', subjectId: input.name, details: {} });
  return { name: input.name, secret };
}

/** Makes sure the configured secret (AGENT_ENROLL_SECRET) is active under the name "env". Idempotent. */
export async function ensureEnvEnrollSecret(db: Db, secret: string): Promise<void> {
  await db
    .insert(agentEnrollSecrets)
    .values({ name: `env-${sha256Hex(secret).slice(0, 8)}`, secretHash: sha256Hex(secret), createdBy: 'AGENT_ENROLL_SECRET' })
    .onConflictDoNothing();
}

export async function listEnrollSecrets(db: Db): Promise<EnrollSecretInfo[]> {
  const rows = await db.select().from(agentEnrollSecrets).orderBy(agentEnrollSecrets.id);
  return rows.map((r) => ({ id: r.id, name: r.name, createdAt: r.createdAt.toISOString(), revokedAt: r.revokedAt?.toISOString() ?? null }));
}

/** Revokes an enrol secret; NotFound when no active secret has that name. Agents already enrolled keep their keys. */
export async function revokeEnrollSecret(db: Db, name: string, by = 'system'): Promise<void> {
  const rows = await db
    .update(agentEnrollSecrets)
    .set({ revokedAt: new Date() })
    .where(and(eq(agentEnrollSecrets.name, name), isNull(agentEnrollSecrets.revokedAt)))
    .returning({ id: agentEnrollSecrets.id });
  if (rows.length === 0) throw new CodedError(ErrorCode.NotFound, `no active enrol secret named "${name}"; see \`patchops enroll-secret list\``);
  await appendAudit(db, { actor: by, action: 'agent.enroll_secret.revoked', subjectType: 'enroll_secret', subjectId: name, details: {} });
}

// ---------------------------------------------------------------- enrolment and keys

export interface Enrolled {
  endpointId: string;
  nodeKey: string;
  reenrolled: boolean;
  /** True when the key waits for an admin's approval (see enrollAgent); it is refused until then. */
  pending: boolean;
  /** With pending: the endpoint's current agent was heard from recently, so two live agents claim the machine id. */
  duplicateSuspected: boolean;
  /** A scan job was queued for the endpoint (first enrolment): the agent reports its missing patches at once. */
  scanQueued: boolean;
}

/** Enrolments of one machine that may wait for approval at once; more are refused (409) until an admin decides. */
export const MAX_PENDING_ENROLLMENTS = 5;

/** How recently an endpoint's agent must have been heard from for a second claimant to count as a live duplicate. */
export const LIVE_AGENT_WINDOW_MS = 15 * 60_000;

/** The job id of the scan queued when an endpoint is enrolled or its re-enrolment approved (one per endpoint and key). */
const enrolmentScanJob = (endpointId: string, keyTag: string) => jobId(`enrolment:${keyTag}`, null, endpointId, 'scan');

/**
 * Enrols a machine: checks the enrol secret (Unauthorized when unknown or revoked), then by machine id:
 * - unknown machine (or an endpoint that never had an agent): the endpoint is created or its facts updated, a node
 *   key issued and a scan job queued, so the new agent reports what is missing at once;
 * - known machine and `currentNodeKey` is one of its active keys: the key is rotated (the old one revoked), facts
 *   updated; its jobs stay;
 * - known machine without its current key: nothing about the endpoint changes. A key is issued but recorded as an
 *   enrolment request waiting for an admin (`approveEnrollment`); the current agent keeps its key and jobs. When the
 *   current agent was heard from within LIVE_AGENT_WINDOW_MS the request is flagged as a duplicate machine id.
 *   Conflict when MAX_PENDING_ENROLLMENTS requests of the machine wait already.
 * Only key hashes are stored. With a site, the endpoint gets exactly one `site:<site>` tag (an older site tag is
 * replaced, other tags are kept); without one its tags stay as they are.
 */
export async function enrollAgent(
  db: Db,
  req: Omit<EnrollRequest, 'enrollSecret' | 'protocolVersion'> & { enrollSecret: string },
  now = new Date(),
  opts: { currentNodeKey?: string; remoteAddress?: string; scanOnFirstEnrolment?: boolean } = {},
): Promise<Enrolled> {
  const [secret] = await db
    .select({ id: agentEnrollSecrets.id })
    .from(agentEnrollSecrets)
    .where(and(eq(agentEnrollSecrets.secretHash, sha256Hex(req.enrollSecret)), isNull(agentEnrollSecrets.revokedAt)));
  if (!secret) throw new CodedError(ErrorCode.Unauthorized, 'the enrol secret is unknown or revoked: ask an admin for the current one (`patchops enroll-secret list`)');
  const nodeKey = randomSecret();
  const keyHash = sha256Hex(nodeKey);
  const site = req.site === undefined ? undefined : siteSchema.parse(req.site);
  const fields = {
    hostname: req.hostname,
    osFamily: req.osFamily,
    osName: req.osName ?? '',
    osVersion: req.osVersion ?? '',
    arch: req.arch ?? '',
    agentVersion: req.agentVersion ?? null,
  };
  return db.transaction(async (tx) => {
    const t = tx as unknown as Db;
    const [existing] = await t.select({ id: endpoints.id, lastSeenAt: endpoints.lastSeenAt }).from(endpoints).where(eq(endpoints.machineId, req.machineId)).for('update');
    const keys = existing ? await t.select({ keyHash: agentNodeKeys.keyHash, revokedAt: agentNodeKeys.revokedAt }).from(agentNodeKeys).where(eq(agentNodeKeys.endpointId, existing.id)) : [];
    const active = keys.filter((k) => k.revokedAt === null);
    const proven = opts.currentNodeKey !== undefined && active.some((k) => k.keyHash === sha256Hex(opts.currentNodeKey!));

    if (existing && keys.length > 0 && !proven) {
      const waiting = await t.$count(agentEnrollmentRequests, and(eq(agentEnrollmentRequests.endpointId, existing.id), eq(agentEnrollmentRequests.state, 'pending')));
      if (waiting >= MAX_PENDING_ENROLLMENTS) {
        throw new CodedError(
          ErrorCode.Conflict,
          `${waiting} enrolments of this machine already wait for an admin's approval: an admin must approve or reject them first (\`patchops agents list\`, \`patchops agents approve ${existing.id}\`)`,
        );
      }
      const seen = active.length > 0 ? existing.lastSeenAt : null;
      const duplicateSuspected = seen !== null && now.getTime() - seen.getTime() <= LIVE_AGENT_WINDOW_MS;
      await t.insert(agentEnrollmentRequests).values({
        endpointId: existing.id,
        keyHash,
        enrollSecretId: secret.id,
        ...fields,
        site: site ?? null,
        remoteAddress: opts.remoteAddress ?? null,
        activeAgentSeenAt: seen,
        createdAt: now,
      });
      await appendAudit(t, {
        actor: `agent:${existing.id}`,
        action: 'agent.enrollment.pending',
        subjectType: 'endpoint',
        subjectId: existing.id,
        details: {
          hostname: req.hostname,
          remoteAddress: opts.remoteAddress ?? null,
          activeKeys: active.length,
          currentKeyOffered: opts.currentNodeKey !== undefined,
          duplicateSuspected,
          ...(seen ? { activeAgentSeenAt: seen.toISOString() } : {}),
        },
      });
      return { endpointId: existing.id, nodeKey, reenrolled: true, pending: true, duplicateSuspected, scanQueued: false };
    }

    const candidateId = `ep-${sha256Hex(req.machineId).slice(0, 20)}`;
    const inserted = await t
      .insert(endpoints)
      .values({ id: candidateId, machineId: req.machineId, ...fields, lastSeenAt: now, status: 'active', ...(site ? { tags: [`site:${site}`] } : {}) })
      .onConflictDoUpdate({ target: endpoints.machineId, set: { ...fields, lastSeenAt: now, status: 'active', ...(site ? { tags: withSiteTag(site) } : {}) } })
      .returning({ id: endpoints.id });
    const endpointId = inserted[0]!.id;
    if (site) await logSiteChange(t, endpointId, site);
    const revoked = await t
      .update(agentNodeKeys)
      .set({ revokedAt: now })
      .where(and(eq(agentNodeKeys.endpointId, endpointId), isNull(agentNodeKeys.revokedAt)))
      .returning({ id: agentNodeKeys.id });
    await t.insert(agentNodeKeys).values({ keyHash, endpointId, enrollSecretId: secret.id });
    const first = keys.length === 0;
    const scanQueued = first && (opts.scanOnFirstEnrolment ?? true) && (await queueEnrolmentScan(t, endpointId, keyHash, now));
    await appendAudit(t, {
      actor: `agent:${endpointId}`,
      action: first ? 'agent.enrolled' : 'agent.reenrolled',
      subjectType: 'endpoint',
      subjectId: endpointId,
      details: { hostname: req.hostname, osFamily: req.osFamily, previousKeysRevoked: revoked.length, ...(first ? { scanQueued } : { proof: 'current node key' }), ...(site ? { site } : {}) },
    });
    return { endpointId, nodeKey, reenrolled: !first, pending: false, duplicateSuspected: false, scanQueued };
  });
}

/** Queues a full scan for a newly enrolled (or newly approved) agent; false when the job existed already. */
async function queueEnrolmentScan(db: Db, endpointId: string, keyHash: string, now: Date): Promise<boolean> {
  const id = enrolmentScanJob(endpointId, keyHash.slice(0, 16));
  const rows = await db
    .insert(agentJobs)
    .values({ id, cycleId: null, wave: null, endpointId, kind: 'scan', payload: { patchIds: [] } satisfies ScanJobPayload, state: 'queued', createdAt: now })
    .onConflictDoNothing({ target: agentJobs.id })
    .returning({ id: agentJobs.id });
  return rows.length > 0;
}

/** The endpoint named by id, else by hostname. NotFound (none), Conflict (the hostname names several: use the id). */
async function endpointByIdOrHostname(db: Db, endpoint: string): Promise<{ id: string; hostname: string }> {
  let rows = await db.select({ id: endpoints.id, hostname: endpoints.hostname }).from(endpoints).where(eq(endpoints.id, endpoint));
  if (rows.length === 0) rows = await db.select({ id: endpoints.id, hostname: endpoints.hostname }).from(endpoints).where(eq(endpoints.hostname, endpoint));
  if (rows.length === 0) throw new CodedError(ErrorCode.NotFound, `no endpoint with id or hostname "${endpoint}"; see \`patchops agents list\``);
  if (rows.length > 1) throw new CodedError(ErrorCode.Conflict, `${rows.length} endpoints are named "${endpoint}" (${rows.map((r) => r.id).join(', ')}): give the endpoint id`);
  return rows[0]!;
}

export interface PendingEnrollment {
  requestId: number;
  endpointId: string;
  /** The endpoint's hostname now, and the one the request claims. */
  currentHostname: string;
  hostname: string;
  osFamily: string;
  osVersion: string;
  site: string | null;
  remoteAddress: string | null;
  requestedAt: string;
  /** The endpoint's current agent has been heard from since the request (or within LIVE_AGENT_WINDOW_MS before it). */
  duplicateMachineId: boolean;
  /** When the current agent was last heard from; null when it has no active key. */
  currentAgentSeenAt: string | null;
}

/** Enrolments waiting for an admin, oldest first (optionally of one endpoint, by id or hostname). */
export async function listPendingEnrollments(db: Db, endpoint?: string): Promise<PendingEnrollment[]> {
  const endpointId = endpoint === undefined ? undefined : (await endpointByIdOrHostname(db, endpoint)).id;
  const rows = await db
    .select({
      r: agentEnrollmentRequests,
      currentHostname: endpoints.hostname,
      lastSeenAt: endpoints.lastSeenAt,
      activeKeys: sql<number>`(select count(*)::int from ${agentNodeKeys} k where k.endpoint_id = ${agentEnrollmentRequests.endpointId} and k.revoked_at is null)`,
    })
    .from(agentEnrollmentRequests)
    .innerJoin(endpoints, eq(endpoints.id, agentEnrollmentRequests.endpointId))
    .where(and(eq(agentEnrollmentRequests.state, 'pending'), endpointId ? eq(agentEnrollmentRequests.endpointId, endpointId) : undefined))
    .orderBy(agentEnrollmentRequests.id);
  return rows.map(({ r, currentHostname, lastSeenAt, activeKeys }) => {
    const seen = Number(activeKeys) > 0 ? lastSeenAt : null;
    const live = seen !== null && (seen > r.createdAt || r.createdAt.getTime() - seen.getTime() <= LIVE_AGENT_WINDOW_MS);
    return {
      requestId: r.id,
      endpointId: r.endpointId,
      currentHostname,
      hostname: r.hostname,
      osFamily: r.osFamily,
      osVersion: r.osVersion,
      site: r.site,
      remoteAddress: r.remoteAddress,
      requestedAt: r.createdAt.toISOString(),
      duplicateMachineId: live,
      currentAgentSeenAt: seen?.toISOString() ?? null,
    };
  });
}

/** The pending enrolment request a node key belongs to, or null (an active key, an unknown one, a decided request). */
export async function pendingEnrollmentForKey(db: Db, nodeKey: string): Promise<{ endpointId: string; requestId: number } | null> {
  const [row] = await db
    .select({ endpointId: agentEnrollmentRequests.endpointId, requestId: agentEnrollmentRequests.id })
    .from(agentEnrollmentRequests)
    .where(and(eq(agentEnrollmentRequests.keyHash, sha256Hex(nodeKey)), eq(agentEnrollmentRequests.state, 'pending')));
  return row ?? null;
}

/** Picks the one pending request of an endpoint (or the one named). NotFound / Conflict with what to do. */
async function pickPending(db: Db, endpoint: string, requestId: number | undefined, verb: string): Promise<typeof agentEnrollmentRequests.$inferSelect> {
  const ep = await endpointByIdOrHostname(db, endpoint);
  const pending = await db
    .select()
    .from(agentEnrollmentRequests)
    .where(and(eq(agentEnrollmentRequests.endpointId, ep.id), eq(agentEnrollmentRequests.state, 'pending')))
    .orderBy(agentEnrollmentRequests.id)
    .for('update');
  if (pending.length === 0) throw new CodedError(ErrorCode.NotFound, `no enrolment of ${ep.id} (${ep.hostname}) waits for approval; see \`patchops agents list\``);
  if (requestId !== undefined) {
    const r = pending.find((p) => p.id === requestId);
    if (!r) throw new CodedError(ErrorCode.NotFound, `enrolment request ${requestId} is not one waiting for ${ep.id}; waiting: ${pending.map((p) => p.id).join(', ')}`);
    return r;
  }
  if (pending.length > 1) {
    const list = pending.map((p) => `#${p.id} from ${p.remoteAddress ?? '?'} as "${p.hostname}" at ${p.createdAt.toISOString()}`).join('; ');
    throw new CodedError(ErrorCode.Conflict, `${pending.length} enrolments of ${ep.id} wait (${list}): name the one to ${verb} with --request <id>`);
  }
  return pending[0]!;
}

/**
 * Approves a waiting enrolment: its key becomes the endpoint's only active key (the previous agent's keys are
 * revoked, other waiting requests superseded), the facts it carried are applied, and a scan is queued. The endpoint
 * is named by id or hostname; with several waiting requests `requestId` picks one. Errors: NotFound (no such
 * endpoint, or nothing waits), Conflict (several wait and none was named; the hostname names several endpoints).
 */
export async function approveEnrollment(db: Db, endpoint: string, opts: { requestId?: number; by?: string; now?: Date } = {}): Promise<{ endpointId: string; requestId: number; hostname: string; revokedKeys: number; scanQueued: boolean }> {
  const now = opts.now ?? new Date();
  const by = opts.by ?? 'system';
  return db.transaction(async (tx) => {
    const t = tx as unknown as Db;
    const r = await pickPending(t, endpoint, opts.requestId, 'approve');
    const revoked = await t
      .update(agentNodeKeys)
      .set({ revokedAt: now })
      .where(and(eq(agentNodeKeys.endpointId, r.endpointId), isNull(agentNodeKeys.revokedAt)))
      .returning({ id: agentNodeKeys.id });
    await t.insert(agentNodeKeys).values({ keyHash: r.keyHash, endpointId: r.endpointId, enrollSecretId: r.enrollSecretId, createdAt: now });
    await t.update(agentEnrollmentRequests).set({ state: 'approved', decidedAt: now, decidedBy: by }).where(eq(agentEnrollmentRequests.id, r.id));
    await t
      .update(agentEnrollmentRequests)
      .set({ state: 'superseded', decidedAt: now, decidedBy: by })
      .where(and(eq(agentEnrollmentRequests.endpointId, r.endpointId), eq(agentEnrollmentRequests.state, 'pending')));
    const set = { hostname: r.hostname, osFamily: r.osFamily, osName: r.osName, osVersion: r.osVersion, arch: r.arch, agentVersion: r.agentVersion, status: 'active' };
    await t.update(endpoints).set(r.site ? { ...set, tags: withSiteTag(r.site) } : set).where(eq(endpoints.id, r.endpointId));
    if (r.site) await logSiteChange(t, r.endpointId, r.site);
    const scanQueued = await queueEnrolmentScan(t, r.endpointId, r.keyHash, now);
    await appendAudit(t, {
      actor: by,
      action: 'agent.enrollment.approved',
      subjectType: 'endpoint',
      subjectId: r.endpointId,
      details: { requestId: r.id, hostname: r.hostname, remoteAddress: r.remoteAddress, previousKeysRevoked: revoked.length, scanQueued },
    });
    return { endpointId: r.endpointId, requestId: r.id, hostname: r.hostname, revokedKeys: revoked.length, scanQueued };
  });
}

/** Rejects a waiting enrolment: its key stays refused for good; the endpoint and its agent are untouched. Errors as approveEnrollment. */
export async function rejectEnrollment(db: Db, endpoint: string, opts: { requestId?: number; by?: string; now?: Date } = {}): Promise<{ endpointId: string; requestId: number; hostname: string }> {
  const now = opts.now ?? new Date();
  const by = opts.by ?? 'system';
  return db.transaction(async (tx) => {
    const t = tx as unknown as Db;
    const r = await pickPending(t, endpoint, opts.requestId, 'reject');
    await t.update(agentEnrollmentRequests).set({ state: 'rejected', decidedAt: now, decidedBy: by }).where(eq(agentEnrollmentRequests.id, r.id));
    await appendAudit(t, { actor: by, action: 'agent.enrollment.rejected', subjectType: 'endpoint', subjectId: r.endpointId, details: { requestId: r.id, hostname: r.hostname, remoteAddress: r.remoteAddress } });
    return { endpointId: r.endpointId, requestId: r.id, hostname: r.hostname };
  });
}

/** The endpoint's tags with every `site:` tag replaced by `site:<site>` (none when site is null), as an SQL expression. */
function withSiteTag(site: string | null) {
  const others = sql`array(select t from unnest(${endpoints.tags}) as t where t not like 'site:%')`;
  return site ? sql`array_append(${others}, ${`site:${site}`}::text)` : others;
}

async function logSiteChange(db: Db, endpointId: string, site: string | null): Promise<void> {
  await db.insert(endpointSiteChanges).values({ endpointId, site });
  await db.delete(endpointSiteChanges).where(lt(endpointSiteChanges.changedAt, sql`now() - interval '1 day'`));
}

/**
 * Sets (or, with null, removes) an endpoint's site: exactly one `site:<site>` tag, other tags kept. The endpoint
 * is named by id or by hostname. Errors: NotFound (no such endpoint), Conflict (the hostname names several
 * endpoints: use the id), InvalidInput (not a valid site name). Gateways pick the change up on their next refresh.
 */
export async function setEndpointSite(db: Db, endpoint: string, site: string | null, by = 'system'): Promise<{ endpointId: string; hostname: string; site: string | null; previous: string | null }> {
  const parsed = site === null ? null : siteSchema.safeParse(site);
  if (parsed && !parsed.success) throw new CodedError(ErrorCode.InvalidInput, `"${site}" is not a site name: ${parsed.error.issues[0]?.message ?? 'invalid'}`);
  const newSite = parsed ? parsed.data : null;
  return db.transaction(async (tx) => {
    const t = tx as unknown as Db;
    let rows = await t.select({ id: endpoints.id, hostname: endpoints.hostname, tags: endpoints.tags }).from(endpoints).where(eq(endpoints.id, endpoint)).for('update');
    if (rows.length === 0) rows = await t.select({ id: endpoints.id, hostname: endpoints.hostname, tags: endpoints.tags }).from(endpoints).where(eq(endpoints.hostname, endpoint)).for('update');
    if (rows.length === 0) throw new CodedError(ErrorCode.NotFound, `no endpoint with id or hostname "${endpoint}"; see \`patchops agents list\``);
    if (rows.length > 1) throw new CodedError(ErrorCode.Conflict, `${rows.length} endpoints are named "${endpoint}" (${rows.map((r) => r.id).join(', ')}): give the endpoint id`);
    const ep = rows[0]!;
    const previous = ep.tags.find((x) => x.startsWith('site:'))?.slice(5) ?? null;
    await t.update(endpoints).set({ tags: withSiteTag(newSite) }).where(eq(endpoints.id, ep.id));
    await logSiteChange(t, ep.id, newSite);
    await appendAudit(t, { actor: by, action: 'endpoint.site.set', subjectType: 'endpoint', subjectId: ep.id, details: { site: newSite, previous } });
    return { endpointId: ep.id, hostname: ep.hostname, site: newSite, previous };
  });
}

/** Endpoints whose site changed in rows after `afterId` (the gateway's cursor), and the new cursor. */
export async function siteChangesSince(db: Db, afterId: number): Promise<{ endpointIds: string[]; lastId: number }> {
  const rows = await db
    .select({ id: endpointSiteChanges.id, endpointId: endpointSiteChanges.endpointId })
    .from(endpointSiteChanges)
    .where(gt(endpointSiteChanges.id, afterId))
    .orderBy(endpointSiteChanges.id);
  return { endpointIds: [...new Set(rows.map((r) => r.endpointId))], lastId: rows.at(-1)?.id ?? afterId };
}

/** The newest site-change row id (a gateway starts its cursor there: its cache is empty anyway). */
export async function lastSiteChangeId(db: Db): Promise<number> {
  const [row] = await db.select({ id: sql<number>`coalesce(max(${endpointSiteChanges.id}), 0)::bigint` }).from(endpointSiteChanges);
  return Number(row?.id ?? 0);
}

/** The endpoint a node key belongs to (with its site tag), or null when the key is unknown or revoked. */
export async function endpointForKey(db: Db, nodeKey: string): Promise<{ endpointId: string; site: string | null } | null> {
  const [row] = await db
    .select({ endpointId: agentNodeKeys.endpointId, tags: endpoints.tags })
    .from(agentNodeKeys)
    .innerJoin(endpoints, eq(endpoints.id, agentNodeKeys.endpointId))
    .where(and(eq(agentNodeKeys.keyHash, sha256Hex(nodeKey)), isNull(agentNodeKeys.revokedAt)));
  if (!row) return null;
  const tag = row.tags.find((t) => t.startsWith('site:'));
  return { endpointId: row.endpointId, site: tag ? tag.slice(5) : null };
}

/** Key hashes revoked after `since` (the gateway drops them from its cache). */
export async function keysRevokedSince(db: Db, since: Date): Promise<{ hashes: string[]; latest: Date | null }> {
  const rows = await db
    .select({ keyHash: agentNodeKeys.keyHash, revokedAt: agentNodeKeys.revokedAt })
    .from(agentNodeKeys)
    .where(gt(agentNodeKeys.revokedAt, since));
  let latest: Date | null = null;
  for (const r of rows) if (r.revokedAt && (!latest || r.revokedAt > latest)) latest = r.revokedAt;
  return { hashes: rows.map((r) => r.keyHash), latest };
}

/** Revokes every active key of an endpoint; returns how many. NotFound when the endpoint does not exist. */
export async function revokeAgent(db: Db, endpointId: string, by = 'system'): Promise<number> {
  const [ep] = await db.select({ id: endpoints.id }).from(endpoints).where(eq(endpoints.id, endpointId));
  if (!ep) throw new CodedError(ErrorCode.NotFound, `no endpoint "${endpointId}"; see \`patchops agents list\``);
  const rows = await db
    .update(agentNodeKeys)
    .set({ revokedAt: new Date() })
    .where(and(eq(agentNodeKeys.endpointId, endpointId), isNull(agentNodeKeys.revokedAt)))
    .returning({ id: agentNodeKeys.id });
  await appendAudit(db, { actor: by, action: 'agent.revoked', subjectType: 'endpoint', subjectId: endpointId, details: { keys: rows.length } });
  return rows.length;
}

export interface AgentSummary {
  endpointId: string;
  hostname: string;
  osFamily: string;
  osVersion: string;
  status: string;
  lastSeenAt: string | null;
  activeKeys: number;
  /** From the endpoint's `site:<site>` tag; null when it has none. */
  site: string | null;
  /** Re-enrolments of this machine waiting for an admin (`patchops agents approve`). */
  pendingEnrolments: number;
  /** A waiting re-enrolment while the current agent is alive: two agents claim this machine id. */
  duplicateMachineId: boolean;
}

export async function listAgents(db: Db): Promise<AgentSummary[]> {
  const rows = await db
    .select({
      endpointId: endpoints.id,
      hostname: endpoints.hostname,
      osFamily: endpoints.osFamily,
      osVersion: endpoints.osVersion,
      status: endpoints.status,
      lastSeenAt: endpoints.lastSeenAt,
      tags: endpoints.tags,
      // Qualified by hand: in a one-table select drizzle writes ${endpoints.id} as a bare "id", which inside the
      // subquery would be k.id.
      activeKeys: sql<number>`(select count(*)::int from ${agentNodeKeys} k where k.endpoint_id = ${endpoints}.${sql.identifier('id')} and k.revoked_at is null)`,
    })
    .from(endpoints)
    .orderBy(endpoints.hostname);
  const pending = await listPendingEnrollments(db);
  return rows.map(({ tags, ...r }) => {
    const mine = pending.filter((p) => p.endpointId === r.endpointId);
    return {
      ...r,
      lastSeenAt: r.lastSeenAt?.toISOString() ?? null,
      site: tags.find((t) => t.startsWith('site:'))?.slice(5) ?? null,
      pendingEnrolments: mine.length,
      duplicateMachineId: mine.some((p) => p.duplicateMachineId),
    };
  });
}

/** Records that these endpoints were heard from (batched by the gateway); an unreachable endpoint becomes active again. */
export async function touchEndpoints(db: Db, endpointIds: string[], now: Date): Promise<void> {
  if (endpointIds.length === 0) return;
  await db
    .update(endpoints)
    .set({ lastSeenAt: now, status: sql`case when ${endpoints.status} = 'unreachable' then 'active' else ${endpoints.status} end` })
    .where(inArray(endpoints.id, endpointIds));
}

// ---------------------------------------------------------------- jobs

/** Endpoints that have a job an agent could be handed now (the gateway's "has work" hint). */
export async function endpointsWithWork(db: Db, now: Date): Promise<string[]> {
  const res = await db.execute<{ endpoint_id: string }>(sql`
    select distinct endpoint_id from agent_jobs
    where state in ('queued', 'leased')
      and (state = 'queued' or lease_expires_at < ${now.toISOString()}::timestamptz)
      and (not_before is null or not_before <= ${now.toISOString()}::timestamptz)`);
  return res.rows.map((r) => r.endpoint_id);
}

/**
 * Leases up to `limit` jobs of one endpoint: queued ones, and leased ones whose lease expired (offered again).
 * Claims with FOR UPDATE SKIP LOCKED so two polls never hand out the same job. Jobs past their deadline
 * are not handed out but failed.
 */
export async function leaseJobs(db: Db, endpointId: string, opts: { now: Date; leaseSeconds: number; limit?: number }): Promise<AgentJob[]> {
  const now = opts.now.toISOString();
  const leaseUntil = new Date(opts.now.getTime() + opts.leaseSeconds * 1000).toISOString();
  await db.execute(sql`
    update agent_jobs set state = 'failed', error = case when state = 'queued' then ${DEADLINE_MESSAGE} else 'deadline passed; the lease expired without a result' end,
      finished_at = ${now}::timestamptz, lease_expires_at = null
    where endpoint_id = ${endpointId} and deadline < ${now}::timestamptz
      and (state = 'queued' or (state = 'leased' and lease_expires_at < ${now}::timestamptz))`);
  const res = await db.execute<{ id: string; kind: string; payload: Record<string, unknown>; deadline: Date | string | null; lease_expires_at: Date | string }>(sql`
    with c as (
      select id from agent_jobs
      where endpoint_id = ${endpointId}
        and state in ('queued', 'leased')
        and (state = 'queued' or lease_expires_at < ${now}::timestamptz)
        and (not_before is null or not_before <= ${now}::timestamptz)
        and (deadline is null or deadline >= ${now}::timestamptz)
      order by created_at, id
      limit ${opts.limit ?? 10}
      for update skip locked
    )
    update agent_jobs j set state = 'leased', attempts = j.attempts + 1, lease_expires_at = ${leaseUntil}::timestamptz,
      started_at = coalesce(j.started_at, ${now}::timestamptz)
    from c where j.id = c.id
    returning j.id, j.kind, j.payload, j.deadline, j.lease_expires_at`);
  const iso = (v: Date | string | null) => (v === null ? null : new Date(v).toISOString());
  return res.rows.map((r) => ({
    id: r.id,
    kind: r.kind as AgentJob['kind'],
    payload: r.payload ?? {},
    deadline: iso(r.deadline),
    leaseExpiresAt: iso(r.lease_expires_at)!,
  }));
}

/** How far past a job's deadline a renewed lease may reach: work may not start after the deadline, but may end after it. */
export const LEASE_DEADLINE_GRACE_SECONDS = 3600;

/**
 * Extends the lease of a job the endpoint holds: to now + leaseSeconds, never shortening it, and never past the
 * job's deadline plus `deadlineGraceSeconds` (default LEASE_DEADLINE_GRACE_SECONDS). Also records the endpoint as
 * seen, so the unreachable sweep (DrizzleAgentJobs.expireUnreachable) neither finds an expired lease nor a silent
 * endpoint. Errors: NotFound (no such job), Forbidden (another endpoint's job), Conflict (the job is not leased to
 * it any more: finished, cancelled, unreachable, never handed out, its lease expired (it is up to be offered again),
 * or its deadline plus the grace has passed).
 */
export async function renewJobLease(
  db: Db,
  endpointId: string,
  jobId: string,
  opts: { now: Date; leaseSeconds: number; deadlineGraceSeconds?: number },
): Promise<{ leaseExpiresAt: Date }> {
  return db.transaction(async (tx) => {
    const [job] = await tx
      .select({ endpointId: agentJobs.endpointId, state: agentJobs.state, leaseExpiresAt: agentJobs.leaseExpiresAt, deadline: agentJobs.deadline })
      .from(agentJobs)
      .where(eq(agentJobs.id, jobId))
      .for('update');
    if (!job) throw new CodedError(ErrorCode.NotFound, `no job "${jobId}"`);
    if (job.endpointId !== endpointId) throw new CodedError(ErrorCode.Forbidden, `job "${jobId}" belongs to another agent`);
    const now = opts.now.getTime();
    if (job.state !== 'leased') throw new CodedError(ErrorCode.Conflict, `job "${jobId}" is ${job.state}, not leased: its lease cannot be renewed`);
    if (!job.leaseExpiresAt || job.leaseExpiresAt.getTime() < now) {
      throw new CodedError(ErrorCode.Conflict, `the lease of job "${jobId}" expired at ${job.leaseExpiresAt?.toISOString() ?? '?'}: the job is up to be offered again`);
    }
    let until = now + opts.leaseSeconds * 1000;
    if (job.deadline) until = Math.min(until, job.deadline.getTime() + (opts.deadlineGraceSeconds ?? LEASE_DEADLINE_GRACE_SECONDS) * 1000);
    if (until <= now) throw new CodedError(ErrorCode.Conflict, `job "${jobId}" is past its deadline (${job.deadline!.toISOString()}) and the grace after it: its lease is not extended`);
    const leaseExpiresAt = new Date(Math.max(until, job.leaseExpiresAt.getTime()));
    await tx.update(agentJobs).set({ leaseExpiresAt }).where(eq(agentJobs.id, jobId));
    await tx
      .update(endpoints)
      .set({ lastSeenAt: opts.now, status: sql`case when ${endpoints.status} = 'unreachable' then 'active' else ${endpoints.status} end` })
      .where(eq(endpoints.id, endpointId));
    return { leaseExpiresAt };
  });
}

export type RecordOutcome = 'recorded' | 'duplicate';

/**
 * Records a job's result and applies it (scan → the endpoint's own reports, the catalog and its missing set;
 * install/rollback/verify → endpoint_patches states). The result is screened first (screenJobResult): refused entries
 * are named in the job's error and the audit log, and are neither stored nor taken as installed. Idempotent: the same
 * result again is 'duplicate'. Errors: NotFound (no such job), Forbidden (another endpoint's job), Conflict (a
 * different result for a finished job, a cancelled job, a job never handed out).
 */
export async function recordJobResult(db: Db, endpointId: string, jobId: string, reported: JobResult, now = new Date()): Promise<{ outcome: RecordOutcome; refused: RefusedEntry[] }> {
  const { result, refused } = screenJobResult(reported);
  const refusedIds = refused.map((r) => r.patchId);
  return db.transaction(async (tx) => {
    const [job] = await tx.select().from(agentJobs).where(eq(agentJobs.id, jobId)).for('update');
    if (!job) throw new CodedError(ErrorCode.NotFound, `no job "${jobId}"`);
    if (job.endpointId !== endpointId) throw new CodedError(ErrorCode.Forbidden, `job "${jobId}" belongs to another agent`);
    const stored = canonicalJson(result as unknown as Record<string, unknown>);
    if (job.state === 'succeeded' || job.state === 'failed') {
      if (job.result && canonicalJson(job.result) === stored) return { outcome: 'duplicate' as const, refused };
      throw new CodedError(ErrorCode.Conflict, `job "${jobId}" already finished (${job.state}) with a different result`);
    }
    if (job.state === 'cancelled') throw new CodedError(ErrorCode.Conflict, `job "${jobId}" was cancelled; its result is not recorded`);
    if (job.state === 'queued') throw new CodedError(ErrorCode.Conflict, `job "${jobId}" was never handed out; poll for it first`);
    // leased, or unreachable (a late result still counts).
    await tx
      .update(agentJobs)
      .set({ state: result.status, result: JSON.parse(stored) as Record<string, unknown>, error: result.error ?? null, finishedAt: now, leaseExpiresAt: null })
      .where(eq(agentJobs.id, jobId));
    const txDb = tx as unknown as Db;
    if (refused.length > 0) {
      await appendAudit(txDb, {
        actor: `agent:${endpointId}`,
        action: 'agent.result.entries_refused',
        subjectType: 'job',
        subjectId: jobId,
        details: { endpointId, refused: refused.map((r) => ({ patchId: r.patchId.slice(0, 256), problem: r.problem.slice(0, 2000) })) },
      });
    }
    const epSet: Partial<typeof endpoints.$inferInsert> = { lastSeenAt: now, pendingReboot: result.rebootPending, status: 'active' };
    if (job.kind === 'scan' && result.missing) {
      await applyScan(txDb, endpointId, jobId, result.missing, (job.payload as { patchIds?: string[] }).patchIds ?? [], refusedIds, now);
      epSet.lastScanAt = now;
    }
    if (job.kind !== 'scan' && result.patches.length > 0) await applyPatchStates(txDb, endpointId, jobId, result, now);
    if (job.kind === 'reboot' && result.status === 'succeeded') {
      await txDb
        .update(endpointPatches)
        .set({ state: 'installed', installedAt: now, updatedAt: now, lastJobId: jobId })
        .where(and(eq(endpointPatches.endpointId, endpointId), eq(endpointPatches.state, 'pending_reboot')));
    }
    await txDb.update(endpoints).set(epSet).where(eq(endpoints.id, endpointId));
    return { outcome: 'recorded' as const, refused };
  });
}

/**
 * The patch states an install / verify / rollback / reboot job reported, written in one statement: one multi-row
 * upsert over the reported patches the catalog knows (a patch the catalog never saw has nothing to attach to).
 * The last report of a patch wins when an agent names it twice.
 */
async function applyPatchStates(db: Db, endpointId: string, jobId: string, result: JobResult, now: Date): Promise<void> {
  const byPatch = new Map(result.patches.map((p) => [p.patchId, p]));
  // One lock order for every writer (as applyScan): concurrent writers of an endpoint's rows never deadlock.
  const ids = [...byPatch.keys()].sort();
  const rows = ids.map((id) => {
    const p = byPatch.get(id)!;
    const state = p.state === 'rolled_back' ? 'missing' : p.state;
    return { state, error: p.error ?? null };
  });
  if (ids.length === 0) return;
  await db.execute(sql`
    insert into endpoint_patches (endpoint_id, patch_id, state, last_job_id, last_error, installed_at, updated_at)
    select ${endpointId}, r.patch_id, r.state, ${jobId}, r.error,
      case when r.state = 'installed' then ${now.toISOString()}::timestamptz end, ${now.toISOString()}::timestamptz
    from unnest(${sql.param(ids)}::text[], ${sql.param(rows.map((r) => r.state))}::text[], ${sql.param(rows.map((r) => r.error))}::text[])
      with ordinality as r(patch_id, state, error, n)
    where exists (select 1 from patches k where k.id = r.patch_id)
    order by r.n
    on conflict (endpoint_id, patch_id) do update set
      state = excluded.state,
      last_job_id = excluded.last_job_id,
      last_error = excluded.last_error,
      updated_at = excluded.updated_at,
      installed_at = case when excluded.state = 'installed' then excluded.updated_at
                          when excluded.state = 'missing' then null
                          else endpoint_patches.installed_at end`);
}

// ---------------------------------------------------------------- inventory

/** Replaces the endpoint's software inventory and updates its facts. */
export async function putInventory(db: Db, endpointId: string, inv: Inventory, now = new Date()): Promise<{ software: number }> {
  const software = inv.software ?? [];
  await db.transaction(async (tx) => {
    const t = tx as unknown as Db;
    const set: Partial<typeof endpoints.$inferInsert> = { lastSeenAt: now, pendingReboot: inv.pendingReboot ?? false, status: 'active' };
    if (inv.hostname) set.hostname = inv.hostname;
    if (inv.osName !== undefined) set.osName = inv.osName;
    if (inv.osVersion !== undefined) set.osVersion = inv.osVersion;
    if (inv.arch !== undefined) set.arch = inv.arch;
    if (inv.agentVersion !== undefined) set.agentVersion = inv.agentVersion;
    await t.update(endpoints).set(set).where(eq(endpoints.id, endpointId));
    await t.delete(softwareInventory).where(eq(softwareInventory.endpointId, endpointId));
    const unique = new Map(software.map((s) => [`${s.source}\u0000${s.name}`, s]));
    const rows = [...unique.values()];
    for (let i = 0; i < rows.length; i += 1000) {
      await t.insert(softwareInventory).values(
        rows.slice(i, i + 1000).map((s) => ({ endpointId, source: s.source, name: s.name, version: s.version, vendor: s.vendor ?? null, updatedAt: now })),
      );
    }
  });
  return { software: software.length };
}

// ---------------------------------------------------------------- manifests and distribution points

/**
 * The active manifest-signing key, created on first use. The private key is stored sealed by `box` (a key kept
 * outside the database, see secret-box.ts); a row from before sealing is sealed in place the first time it is read.
 */
export async function activeSigningKey(db: Db, box: SecretBox): Promise<{ id: number; publicKey: string; privateKey: string }> {
  const open = async (row: typeof manifestSigningKeys.$inferSelect) => {
    if (SecretBox.isSealed(row.privateKey)) return { id: row.id, publicKey: row.publicKey, privateKey: box.open(row.privateKey) };
    await db.update(manifestSigningKeys).set({ privateKey: box.seal(row.privateKey) }).where(and(eq(manifestSigningKeys.id, row.id), eq(manifestSigningKeys.privateKey, row.privateKey)));
    return { id: row.id, publicKey: row.publicKey, privateKey: row.privateKey };
  };
  const [row] = await db.select().from(manifestSigningKeys).where(eq(manifestSigningKeys.active, true)).orderBy(desc(manifestSigningKeys.id)).limit(1);
  if (row) return open(row);
  const created = await db.transaction(async (tx) => {
    await tx.execute(sql`select pg_advisory_xact_lock(74201)`);
    const [again] = await tx.select().from(manifestSigningKeys).where(eq(manifestSigningKeys.active, true)).orderBy(desc(manifestSigningKeys.id)).limit(1);
    if (again) return again;
    const { publicKey, privateKey } = generateKeyPairSync('ed25519', {
      publicKeyEncoding: { type: 'spki', format: 'pem' },
      privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
    });
    const [inserted] = await tx.insert(manifestSigningKeys).values({ publicKey, privateKey: box.seal(privateKey) }).returning();
    return inserted!;
  });
  return open(created);
}

export async function publishManifest(
  db: Db,
  box: SecretBox,
  files: ManifestBody['files'],
  opts: { ttlHours?: number; now?: Date } = {},
): Promise<SignedManifest & { version: number }> {
  const m = await updateManifest(db, box, () => files, opts);
  return m!;
}

type ManifestRow = typeof repositoryManifests.$inferSelect;

/**
 * Every change of the repository's file list goes through here: under one lock it reads the latest manifest,
 * asks `change` for the new list (null: nothing to publish; a thrown error publishes nothing) and signs it as the
 * next version. So concurrent publishers (two `repo add`s, a `repo remove`, the server re-signing) never build on
 * a stale list. `ttlHours` may depend on the latest row, hence a function is accepted.
 */
export async function updateManifest(
  db: Db,
  box: SecretBox,
  change: (latest: ManifestRow | null) => ManifestBody['files'] | null,
  opts: { ttlHours?: number | ((latest: ManifestRow | null) => number); now?: Date } = {},
): Promise<(SignedManifest & { version: number; previous: ManifestRow | null; files: ManifestBody['files']; expiresAt: string }) | null> {
  const key = await activeSigningKey(db, box);
  const now = opts.now ?? new Date();
  return db.transaction(async (tx) => {
    await tx.execute(sql`select pg_advisory_xact_lock(74202)`);
    const [last] = await tx.select().from(repositoryManifests).orderBy(desc(repositoryManifests.version)).limit(1);
    const latest = last ?? null;
    const files = change(latest);
    if (!files) return null;
    const version = (latest?.version ?? 0) + 1;
    const ttlHours = typeof opts.ttlHours === 'function' ? opts.ttlHours(latest) : (opts.ttlHours ?? 24 * 7);
    const expiresAt = new Date(now.getTime() + ttlHours * 3600_000);
    const body = JSON.stringify({ version, expiresAt: expiresAt.toISOString(), files } satisfies ManifestBody);
    const signature = sign(null, Buffer.from(body, 'utf8'), key.privateKey).toString('base64');
    await tx.insert(repositoryManifests).values({ version, body, signature, keyId: key.id, files, expiresAt, createdAt: now });
    return { version, body, signature, keyId: key.id, previous: latest, files, expiresAt: expiresAt.toISOString() };
  });
}

const lifetimeMs = (row: ManifestRow) => row.expiresAt.getTime() - row.createdAt.getTime();

/**
 * Keeps the repository's manifest from expiring: when the latest one has used half its lifetime, the same files
 * are published again under a new version with the same lifetime (agents refuse expired manifests, and nobody
 * should have to run `repo add` weekly just to keep third-party installs working). Several server processes may
 * call this: the check is made under the publish lock, so only one re-signs. Returns the new version, or null
 * when nothing was due.
 */
export async function refreshManifestIfDue(db: Db, box: SecretBox, now: Date): Promise<{ version: number; expiresAt: string } | null> {
  const due = (row: ManifestRow | null): row is ManifestRow => row !== null && lifetimeMs(row) > 0 && row.expiresAt.getTime() - now.getTime() <= lifetimeMs(row) / 2;
  // Cheap check first (every server does it every few minutes); the real one is under the lock.
  const [row] = await db.select().from(repositoryManifests).orderBy(desc(repositoryManifests.version)).limit(1);
  if (!due(row ?? null)) return null;
  const m = await updateManifest(db, box, (latest) => (due(latest) ? latest.files : null), { ttlHours: (latest) => lifetimeMs(latest!) / 3600_000, now });
  if (!m) return null;
  await appendAudit(db, { actor: 'system:server', action: 'repository.manifest.refreshed', subjectType: 'manifest', subjectId: String(m.version), details: { previous: m.previous!.version, expiresAt: m.expiresAt, files: m.files.length } });
  return { version: m.version, expiresAt: m.expiresAt };
}

export async function latestManifest(db: Db): Promise<SignedManifest | null> {
  const [row] = await db.select().from(repositoryManifests).orderBy(desc(repositoryManifests.version)).limit(1);
  return row ? { body: row.body, signature: row.signature, keyId: row.keyId } : null;
}

/**
 * Registers a distribution point (or updates the one with that name) and issues it a new token: 256 random bits,
 * returned only now, stored as its sha256. Registering a name again replaces its token (rotation: the old one stops
 * working). InvalidInput when the site is not a site name or the URL is not http(s).
 */
export async function addDistributionPoint(db: Db, dp: { name: string; url: string; site: string }, by = 'system'): Promise<{ name: string; site: string; token: string }> {
  const site = siteSchema.safeParse(dp.site);
  if (!site.success) throw new CodedError(ErrorCode.InvalidInput, `"${dp.site}" is not a site name: ${site.error.issues[0]?.message ?? 'invalid'}`);
  if (!/^https?:\/\/[^/\s]+/i.test(dp.url)) throw new CodedError(ErrorCode.InvalidInput, `"${dp.url}" is not an http(s) URL agents can reach, e.g. http://dp1.branch.example:8081`);
  const token = randomSecret();
  const values = { name: dp.name, url: dp.url.replace(/\/+$/, ''), site: site.data, tokenHash: sha256Hex(token) };
  await db.insert(distributionPoints).values(values).onConflictDoUpdate({ target: distributionPoints.name, set: { url: values.url, site: values.site, tokenHash: values.tokenHash } });
  await appendAudit(db, { actor: by, action: 'distribution_point.registered', subjectType: 'distribution_point', subjectId: dp.name, details: { url: values.url, site: values.site } });
  return { name: dp.name, site: site.data, token };
}

/** The distribution point a token belongs to, or null when no registered point has it. */
export async function distributionPointForToken(db: Db, token: string): Promise<{ name: string; site: string } | null> {
  const [row] = await db.select({ name: distributionPoints.name, site: distributionPoints.site }).from(distributionPoints).where(eq(distributionPoints.tokenHash, sha256Hex(token)));
  return row ?? null;
}

/** Distribution point URLs per site (endpoints tagged `site:<site>` use them). */
export async function distributionPointsBySite(db: Db): Promise<Map<string, string[]>> {
  const rows = await db.select().from(distributionPoints).orderBy(distributionPoints.id);
  const out = new Map<string, string[]>();
  for (const r of rows) out.set(r.site, [...(out.get(r.site) ?? []), r.url]);
  return out;
}

export interface DistributionPointSummary {
  name: string;
  site: string;
  url: string;
  /** When the point was first registered under this name (re-registering keeps it). */
  registeredAt: string;
  /** Who registered it, from the audit log; null when the log has no entry for it. */
  registeredBy: string | null;
  /** The last time its token was replaced by registering the name again, and by whom; null when never. */
  tokenReissued: { at: string; by: string } | null;
  /** False for a point registered before points had tokens: it cannot authenticate until registered again. */
  hasToken: boolean;
}

/** Every registered distribution point, by site then name, with who registered it (read from the audit log). */
export async function listDistributionPoints(db: Db): Promise<DistributionPointSummary[]> {
  const rows = await db.select().from(distributionPoints).orderBy(distributionPoints.site, distributionPoints.name);
  if (rows.length === 0) return [];
  const entries = await db
    .select({ action: auditLog.action, subjectId: auditLog.subjectId, actor: auditLog.actor, at: auditLog.at })
    .from(auditLog)
    .where(and(eq(auditLog.subjectType, 'distribution_point'), inArray(auditLog.subjectId, rows.map((r) => r.name))))
    .orderBy(auditLog.id);
  return rows.map((r) => {
    // The registrations since the name was last removed: the first made the point, later ones replaced its token.
    let registrations: typeof entries = [];
    for (const e of entries) {
      if (e.subjectId !== r.name) continue;
      if (e.action === 'distribution_point.removed') registrations = [];
      else if (e.action === 'distribution_point.registered') registrations.push(e);
    }
    const last = registrations.length > 1 ? registrations.at(-1)! : null;
    return {
      name: r.name,
      site: r.site,
      url: r.url,
      registeredAt: r.createdAt.toISOString(),
      registeredBy: registrations[0]?.actor ?? null,
      tokenReissued: last ? { at: last.at.toISOString(), by: last.actor } : null,
      hasToken: r.tokenHash !== null,
    };
  });
}

/**
 * Removes a distribution point: its token is refused from then on (gateways re-read a cached token within their
 * token cache time) and agents of its site are no longer offered it (from the gateways' next reload of the list).
 * NotFound when no point has that name.
 */
export async function removeDistributionPoint(db: Db, name: string, by = 'system'): Promise<{ name: string; site: string; url: string }> {
  return db.transaction(async (tx) => {
    const t = tx as unknown as Db;
    const [row] = await t.delete(distributionPoints).where(eq(distributionPoints.name, name)).returning({ name: distributionPoints.name, site: distributionPoints.site, url: distributionPoints.url });
    if (!row) throw new CodedError(ErrorCode.NotFound, `no distribution point named "${name}"; see \`patchops distribution-points list\``);
    await appendAudit(t, { actor: by, action: 'distribution_point.removed', subjectType: 'distribution_point', subjectId: row.name, details: { url: row.url, site: row.site } });
    return row;
  });
}

/**
 * Publishes a new signed manifest without the files named by `refs` (a file name, or a full sha256) and returns it
 * with the removed entries and the remaining ones. All or nothing: NotFound when a ref is not in the latest manifest
 * (or none was published), Conflict when a name stands for several files (give the sha256); then nothing is published.
 * Holds the manifest publishing lock from reading the latest manifest to publishing, so no concurrent publish is lost.
 */
export async function removeManifestFiles(
  db: Db,
  box: SecretBox,
  refs: string[],
  opts: { ttlHours?: number; now?: Date; by?: string } = {},
): Promise<{ version: number; previousVersion: number; removed: ManifestBody['files']; files: ManifestBody['files'] }> {
  let removed: ManifestBody['files'] = [];
  const m = await updateManifest(
    db,
    box,
    (latest) => {
      if (!latest) throw new CodedError(ErrorCode.NotFound, 'no repository manifest has been published yet: there are no files to remove');
      const drop = new Set<string>();
      const unknown: string[] = [];
      for (const ref of refs) {
        const bySha = /^[0-9a-f]{64}$/i.test(ref) ? latest.files.filter((f) => f.sha256 === ref.toLowerCase()) : [];
        const matches = bySha.length > 0 ? bySha : latest.files.filter((f) => f.name === ref);
        if (matches.length === 0) unknown.push(ref);
        else if (matches.length > 1) {
          throw new CodedError(ErrorCode.Conflict, `${matches.length} files are named "${ref}" (${matches.map((f) => f.sha256).join(', ')}): give the sha256 of the one to remove. Nothing was removed.`);
        } else drop.add(matches[0]!.sha256);
      }
      if (unknown.length > 0) {
        throw new CodedError(ErrorCode.NotFound, `not in manifest version ${latest.version}: ${unknown.map((r) => `"${r}"`).join(', ')}; see \`patchops repo list\`. Nothing was removed and no manifest published.`);
      }
      removed = latest.files.filter((f) => drop.has(f.sha256));
      return latest.files.filter((f) => !drop.has(f.sha256));
    },
    { ttlHours: opts.ttlHours, now: opts.now },
  );
  const previousVersion = m!.previous!.version;
  await appendAudit(db, {
    actor: opts.by ?? 'system',
    action: 'repository.files_removed',
    subjectType: 'manifest',
    subjectId: String(m!.version),
    details: { previous: previousVersion, removed: removed.map((f) => ({ name: f.name, sha256: f.sha256 })) },
  });
  return { version: m!.version, previousVersion, removed, files: m!.files };
}
