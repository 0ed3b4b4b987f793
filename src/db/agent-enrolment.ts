/**
 * Enrolment: the agent_enrollment_requests table and the first node key of an endpoint. A machine enrols with an
 * enrol secret; a machine that is known already either proves its current key or waits for an admin's approval.
 * The rules (how many may wait, what counts as a live duplicate) are in domain/enrolment.ts.
 */
import { and, eq, isNull, sql } from 'drizzle-orm';
import { isLiveDuplicate, MAX_PENDING_ENROLLMENTS } from '../domain/enrolment';
import { CodedError, ErrorCode } from '../domain/errors';
import { siteSchema, type EnrollRequest, type ScanJobPayload } from '../shared/agent-protocol';
import { jobId } from './agent-jobs';
import { appendAudit, lockAuditChain } from './audit';
import type { Db } from './client';
import { logSiteChange, withSiteTag } from './endpoint-sites';
import { endpointByIdOrHostname } from './endpoints';
import { randomSecret, sha256Hex } from './hashed-secrets';
import { agentEnrollmentRequests, agentEnrollSecrets, agentJobs, agentNodeKeys, endpoints } from './schema/index';

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
  if (!secret)
    throw new CodedError(
      ErrorCode.Unauthorized,
      'the enrol secret is unknown or revoked: ask an admin for the current one (`patchops enroll-secret list`)',
    );
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
    const [existing] = await t
      .select({ id: endpoints.id, lastSeenAt: endpoints.lastSeenAt })
      .from(endpoints)
      .where(eq(endpoints.machineId, req.machineId))
      .for('update');
    const keys = existing
      ? await t
          .select({ keyHash: agentNodeKeys.keyHash, revokedAt: agentNodeKeys.revokedAt })
          .from(agentNodeKeys)
          .where(eq(agentNodeKeys.endpointId, existing.id))
      : [];
    const active = keys.filter((k) => k.revokedAt === null);
    const proven =
      opts.currentNodeKey !== undefined && active.some((k) => k.keyHash === sha256Hex(opts.currentNodeKey!));

    if (existing && keys.length > 0 && !proven) {
      const waiting = await t.$count(
        agentEnrollmentRequests,
        and(eq(agentEnrollmentRequests.endpointId, existing.id), eq(agentEnrollmentRequests.state, 'pending')),
      );
      if (waiting >= MAX_PENDING_ENROLLMENTS) {
        throw new CodedError(
          ErrorCode.Conflict,
          `${waiting} enrolments of this machine already wait for an admin's approval: an admin must approve or reject them first (\`patchops agents list\`, \`patchops agents approve ${existing.id}\`)`,
        );
      }
      const seen = active.length > 0 ? existing.lastSeenAt : null;
      const duplicateSuspected = isLiveDuplicate(seen, now);
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
      return {
        endpointId: existing.id,
        nodeKey,
        reenrolled: true,
        pending: true,
        duplicateSuspected,
        scanQueued: false,
      };
    }

    const candidateId = `ep-${sha256Hex(req.machineId).slice(0, 20)}`;
    // The new endpoint's row locks shared counters (its OS's and groups' compliance rollup) and the transaction
    // appends to the audit chain after: the chain's lock first, as scans take it (lockAuditChain).
    await lockAuditChain(t);
    const inserted = await t
      .insert(endpoints)
      .values({
        id: candidateId,
        machineId: req.machineId,
        ...fields,
        lastSeenAt: now,
        status: 'active',
        ...(site ? { tags: [`site:${site}`] } : {}),
      })
      .onConflictDoUpdate({
        target: endpoints.machineId,
        set: { ...fields, lastSeenAt: now, status: 'active', ...(site ? { tags: withSiteTag(site) } : {}) },
      })
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
    const scanQueued =
      first && (opts.scanOnFirstEnrolment ?? true) && (await queueEnrolmentScan(t, endpointId, keyHash, now));
    await appendAudit(t, {
      actor: `agent:${endpointId}`,
      action: first ? 'agent.enrolled' : 'agent.reenrolled',
      subjectType: 'endpoint',
      subjectId: endpointId,
      details: {
        hostname: req.hostname,
        osFamily: req.osFamily,
        previousKeysRevoked: revoked.length,
        ...(first ? { scanQueued } : { proof: 'current node key' }),
        ...(site ? { site } : {}),
      },
    });
    return { endpointId, nodeKey, reenrolled: !first, pending: false, duplicateSuspected: false, scanQueued };
  });
}

/** Queues a full scan for a newly enrolled (or newly approved) agent; false when the job existed already. */
async function queueEnrolmentScan(db: Db, endpointId: string, keyHash: string, now: Date): Promise<boolean> {
  const id = enrolmentScanJob(endpointId, keyHash.slice(0, 16));
  const rows = await db
    .insert(agentJobs)
    .values({
      id,
      cycleId: null,
      wave: null,
      endpointId,
      kind: 'scan',
      payload: { patchIds: [] } satisfies ScanJobPayload,
      state: 'queued',
      createdAt: now,
    })
    .onConflictDoNothing({ target: agentJobs.id })
    .returning({ id: agentJobs.id });
  return rows.length > 0;
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
    .where(
      and(
        eq(agentEnrollmentRequests.state, 'pending'),
        endpointId ? eq(agentEnrollmentRequests.endpointId, endpointId) : undefined,
      ),
    )
    .orderBy(agentEnrollmentRequests.id);
  return rows.map(({ r, currentHostname, lastSeenAt, activeKeys }) => {
    const seen = Number(activeKeys) > 0 ? lastSeenAt : null;
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
      duplicateMachineId: isLiveDuplicate(seen, r.createdAt),
      currentAgentSeenAt: seen?.toISOString() ?? null,
    };
  });
}

/** The pending enrolment request a node key belongs to, or null (an active key, an unknown one, a decided request). */
export async function pendingEnrollmentForKey(
  db: Db,
  nodeKey: string,
): Promise<{ endpointId: string; requestId: number } | null> {
  const [row] = await db
    .select({ endpointId: agentEnrollmentRequests.endpointId, requestId: agentEnrollmentRequests.id })
    .from(agentEnrollmentRequests)
    .where(and(eq(agentEnrollmentRequests.keyHash, sha256Hex(nodeKey)), eq(agentEnrollmentRequests.state, 'pending')));
  return row ?? null;
}

/** Picks the one pending request of an endpoint (or the one named). NotFound / Conflict with what to do. */
async function pickPending(
  db: Db,
  endpoint: string,
  requestId: number | undefined,
  verb: string,
): Promise<typeof agentEnrollmentRequests.$inferSelect> {
  const ep = await endpointByIdOrHostname(db, endpoint);
  const pending = await db
    .select()
    .from(agentEnrollmentRequests)
    .where(and(eq(agentEnrollmentRequests.endpointId, ep.id), eq(agentEnrollmentRequests.state, 'pending')))
    .orderBy(agentEnrollmentRequests.id)
    .for('update');
  if (pending.length === 0)
    throw new CodedError(
      ErrorCode.NotFound,
      `no enrolment of ${ep.id} (${ep.hostname}) waits for approval; see \`patchops agents list\``,
    );
  if (requestId !== undefined) {
    const r = pending.find((p) => p.id === requestId);
    if (!r)
      throw new CodedError(
        ErrorCode.NotFound,
        `enrolment request ${requestId} is not one waiting for ${ep.id}; waiting: ${pending.map((p) => p.id).join(', ')}`,
      );
    return r;
  }
  if (pending.length > 1) {
    const list = pending
      .map((p) => `#${p.id} from ${p.remoteAddress ?? '?'} as "${p.hostname}" at ${p.createdAt.toISOString()}`)
      .join('; ');
    throw new CodedError(
      ErrorCode.Conflict,
      `${pending.length} enrolments of ${ep.id} wait (${list}): name the one to ${verb} with --request <id>`,
    );
  }
  return pending[0]!;
}

/**
 * Approves a waiting enrolment: its key becomes the endpoint's only active key (the previous agent's keys are
 * revoked, other waiting requests superseded), the facts it carried are applied, and a scan is queued. The endpoint
 * is named by id or hostname; with several waiting requests `requestId` picks one. Errors: NotFound (no such
 * endpoint, or nothing waits), Conflict (several wait and none was named; the hostname names several endpoints).
 */
export async function approveEnrollment(
  db: Db,
  endpoint: string,
  opts: { requestId?: number; by?: string; now?: Date } = {},
): Promise<{ endpointId: string; requestId: number; hostname: string; revokedKeys: number; scanQueued: boolean }> {
  const now = opts.now ?? new Date();
  const by = opts.by ?? 'system';
  return db.transaction(async (tx) => {
    const t = tx as unknown as Db;
    const r = await pickPending(t, endpoint, opts.requestId, 'approve');
    // The endpoint's row (its status and OS: the compliance rollup's counters) before the audit entry: the chain's
    // lock first (lockAuditChain).
    await lockAuditChain(t);
    const revoked = await t
      .update(agentNodeKeys)
      .set({ revokedAt: now })
      .where(and(eq(agentNodeKeys.endpointId, r.endpointId), isNull(agentNodeKeys.revokedAt)))
      .returning({ id: agentNodeKeys.id });
    await t
      .insert(agentNodeKeys)
      .values({ keyHash: r.keyHash, endpointId: r.endpointId, enrollSecretId: r.enrollSecretId, createdAt: now });
    await t
      .update(agentEnrollmentRequests)
      .set({ state: 'approved', decidedAt: now, decidedBy: by })
      .where(eq(agentEnrollmentRequests.id, r.id));
    await t
      .update(agentEnrollmentRequests)
      .set({ state: 'superseded', decidedAt: now, decidedBy: by })
      .where(and(eq(agentEnrollmentRequests.endpointId, r.endpointId), eq(agentEnrollmentRequests.state, 'pending')));
    const set = {
      hostname: r.hostname,
      osFamily: r.osFamily,
      osName: r.osName,
      osVersion: r.osVersion,
      arch: r.arch,
      agentVersion: r.agentVersion,
      status: 'active',
    };
    await t
      .update(endpoints)
      .set(r.site ? { ...set, tags: withSiteTag(r.site) } : set)
      .where(eq(endpoints.id, r.endpointId));
    if (r.site) await logSiteChange(t, r.endpointId, r.site);
    const scanQueued = await queueEnrolmentScan(t, r.endpointId, r.keyHash, now);
    await appendAudit(t, {
      actor: by,
      action: 'agent.enrollment.approved',
      subjectType: 'endpoint',
      subjectId: r.endpointId,
      details: {
        requestId: r.id,
        hostname: r.hostname,
        remoteAddress: r.remoteAddress,
        previousKeysRevoked: revoked.length,
        scanQueued,
      },
    });
    return { endpointId: r.endpointId, requestId: r.id, hostname: r.hostname, revokedKeys: revoked.length, scanQueued };
  });
}

/** Rejects a waiting enrolment: its key stays refused for good; the endpoint and its agent are untouched. Errors as approveEnrollment. */
export async function rejectEnrollment(
  db: Db,
  endpoint: string,
  opts: { requestId?: number; by?: string; now?: Date } = {},
): Promise<{ endpointId: string; requestId: number; hostname: string }> {
  const now = opts.now ?? new Date();
  const by = opts.by ?? 'system';
  return db.transaction(async (tx) => {
    const t = tx as unknown as Db;
    const r = await pickPending(t, endpoint, opts.requestId, 'reject');
    await t
      .update(agentEnrollmentRequests)
      .set({ state: 'rejected', decidedAt: now, decidedBy: by })
      .where(eq(agentEnrollmentRequests.id, r.id));
    await appendAudit(t, {
      actor: by,
      action: 'agent.enrollment.rejected',
      subjectType: 'endpoint',
      subjectId: r.endpointId,
      details: { requestId: r.id, hostname: r.hostname, remoteAddress: r.remoteAddress },
    });
    return { endpointId: r.endpointId, requestId: r.id, hostname: r.hostname };
  });
}
