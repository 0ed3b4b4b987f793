/**
 * Outbound webhooks (area: webhooks): endpoints with sealed secrets, the delivery outbox fed from the audit log,
 * claiming due deliveries (FOR UPDATE SKIP LOCKED, so several servers never send one delivery at once) and
 * recording their outcome. Returns plain objects, never ORM rows. The HTTP side lives in src/webhooks/.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { and, asc, desc, eq, inArray, sql } from 'drizzle-orm';
import {
  endpointWants,
  STAGE_ACTION_PREFIX,
  WEBHOOK_SOURCE_ACTIONS,
  webhookEventTypeOf,
  webhookPayload,
  type WebhookCycleFacts,
} from '../domain/webhook-events';
import { appendAudit } from './audit';
import type { Db } from './client';
import { patchCycles, webhookDeliveries, webhookEndpoints, webhookOutboxCursor } from './schema/index';
import type { SecretBox } from './secret-box';

export type DeliveryStatus = 'pending' | 'delivered' | 'failed';

export interface WebhookEndpointSummary {
  id: string;
  url: string;
  eventTypes: string[];
  description: string;
  enabled: boolean;
  createdBy: string;
  createdAt: string;
}

export interface WebhookDeliverySummary {
  id: string;
  endpointId: string;
  eventId: string;
  eventType: string;
  status: DeliveryStatus;
  attempts: number;
  nextAttemptAt: string;
  lastHttpStatus: number | null;
  lastError: string | null;
  deliveredAt: string | null;
  createdAt: string;
  payload: Record<string, unknown>;
}

/** A delivery one deliverer holds until `attempts` changes: what to send, where, and the sealed secret to sign with. */
export interface ClaimedDelivery {
  id: string;
  endpointId: string;
  eventType: string;
  payload: Record<string, unknown>;
  /** This attempt's number (1 = first). */
  attempts: number;
  /** This claim's token: the outcome is recorded only while the row still carries it (not replayed or re-claimed since). */
  claimToken: string;
  url: string;
  secretSealed: string;
}

function endpointSummary(r: typeof webhookEndpoints.$inferSelect): WebhookEndpointSummary {
  return {
    id: r.id,
    url: r.url,
    eventTypes: r.eventTypes,
    description: r.description,
    enabled: r.enabled,
    createdBy: r.createdBy,
    createdAt: r.createdAt.toISOString(),
  };
}

function deliverySummary(r: typeof webhookDeliveries.$inferSelect): WebhookDeliverySummary {
  return {
    id: r.id,
    endpointId: r.endpointId,
    eventId: r.eventId,
    eventType: r.eventType,
    status: r.status as DeliveryStatus,
    attempts: r.attempts,
    nextAttemptAt: r.nextAttemptAt.toISOString(),
    lastHttpStatus: r.lastHttpStatus,
    lastError: r.lastError,
    deliveredAt: r.deliveredAt ? r.deliveredAt.toISOString() : null,
    createdAt: r.createdAt.toISOString(),
    payload: r.payload,
  };
}

// ---------------------------------------------------------------- endpoints

/** A new signing secret: `whsec_` and 32 random bytes (base64url). The whole string is the HMAC key. */
export function newWebhookSecret(): string {
  return `whsec_${randomBytes(32).toString('base64url')}`;
}

/** Registers an endpoint and audits it. The secret is returned in clear this once; the table keeps it sealed. */
export async function createWebhookEndpoint(
  db: Db,
  box: SecretBox,
  input: { url: string; eventTypes: string[]; description?: string; createdBy: string },
): Promise<{ endpoint: WebhookEndpointSummary; secret: string }> {
  const secret = newWebhookSecret();
  const id = `whe_${randomUUID()}`;
  return db.transaction(async (tx) => {
    const [row] = await tx
      .insert(webhookEndpoints)
      .values({
        id,
        url: input.url,
        secretSealed: box.seal(secret),
        eventTypes: [...new Set(input.eventTypes)].sort(),
        description: input.description ?? '',
        createdBy: input.createdBy,
      })
      .returning();
    await appendAudit(tx, {
      actor: input.createdBy,
      action: 'webhook.endpoint.created',
      subjectType: 'webhook_endpoint',
      subjectId: id,
      details: { host: new URL(input.url).host, eventTypes: row!.eventTypes },
    });
    return { endpoint: endpointSummary(row!), secret };
  });
}

export async function listWebhookEndpoints(db: Db): Promise<WebhookEndpointSummary[]> {
  const rows = await db
    .select()
    .from(webhookEndpoints)
    .orderBy(asc(webhookEndpoints.createdAt), asc(webhookEndpoints.id));
  return rows.map(endpointSummary);
}

/** Turns an endpoint on or off and/or changes its event types, audited. Null when there is no such endpoint. */
export async function updateWebhookEndpoint(
  db: Db,
  id: string,
  change: { enabled?: boolean; eventTypes?: string[] },
  by: string,
): Promise<WebhookEndpointSummary | null> {
  return db.transaction(async (tx) => {
    const [row] = await tx
      .update(webhookEndpoints)
      .set({
        ...(change.enabled !== undefined ? { enabled: change.enabled } : {}),
        ...(change.eventTypes !== undefined ? { eventTypes: [...new Set(change.eventTypes)].sort() } : {}),
      })
      .where(eq(webhookEndpoints.id, id))
      .returning();
    if (!row) return null;
    await appendAudit(tx, {
      actor: by,
      action: 'webhook.endpoint.updated',
      subjectType: 'webhook_endpoint',
      subjectId: id,
      details: { enabled: row.enabled, eventTypes: row.eventTypes },
    });
    return endpointSummary(row);
  });
}

/** Deletes an endpoint and its deliveries, audited. Returns false when there is no such endpoint. */
export async function deleteWebhookEndpoint(db: Db, id: string, by: string): Promise<boolean> {
  return db.transaction(async (tx) => {
    const [gone] = await tx
      .delete(webhookEndpoints)
      .where(eq(webhookEndpoints.id, id))
      .returning({ url: webhookEndpoints.url });
    // The host only: a receiver's URL may carry a token of its own in the path, and the audit log is widely readable.
    if (!gone) return false;
    await appendAudit(tx, {
      actor: by,
      action: 'webhook.endpoint.deleted',
      subjectType: 'webhook_endpoint',
      subjectId: id,
      details: { host: new URL(gone.url).host },
    });
    return true;
  });
}

// ---------------------------------------------------------------- the outbox, fed from the audit log

const OUTBOX_CURSOR = 'audit';

/**
 * Reads the audit log past the stored cursor and enqueues one delivery per (enabled endpoint that wants the
 * event, event), then moves the cursor — all in one transaction holding the cursor row, so feeders on several
 * servers take turns and a crash part-way leaves the cursor where it was (enqueueing again is a no-op by the
 * unique (endpoint, event)). An endpoint gets only events that happened after it was registered.
 *
 * Only entries that announce an event are read. The head of the log is read in the same statement (one
 * snapshot), so when fewer than `batch` entries match the cursor moves to the head and the next read starts
 * there. Audit ids rise in commit order (appendAudit takes the id under a lock held to commit), so no entry at
 * or below the head can still appear.
 */
export async function feedWebhookOutbox(
  db: Db,
  options: { batch?: number } = {},
): Promise<{ read: number; enqueued: number; more: boolean }> {
  const batch = options.batch ?? 500;
  return db.transaction(async (tx) => {
    const [cursor] = await tx
      .select()
      .from(webhookOutboxCursor)
      .where(eq(webhookOutboxCursor.name, OUTBOX_CURSOR))
      .for('update');
    const after = cursor?.lastAuditId ?? 0;
    const actions = sql.join(
      WEBHOOK_SOURCE_ACTIONS.map((a) => sql`${a}`),
      sql`, `,
    );
    const result = await tx.execute<{
      head: string;
      id: string | null;
      at: Date;
      actor: string;
      action: string;
      subject_type: string;
      subject_id: string;
      details: Record<string, unknown>;
    }>(sql`
      with head as (select coalesce(max(id), 0)::bigint as m from audit_log)
      select head.m::text as head, a.id::text as id, a.at, a.actor, a.action, a.subject_type, a.subject_id, a.details
      from head left join lateral (
        select * from audit_log
        where id > ${after} and id <= head.m and (action in (${actions}) or action like ${`${STAGE_ACTION_PREFIX}%`})
        order by id limit ${batch}
      ) a on true
      order by a.id`);
    const head = Number(result.rows[0]!.head);
    const rows = result.rows
      .filter((r) => r.id !== null)
      .map((r) => ({
        auditId: Number(r.id),
        at: new Date(r.at),
        actor: r.actor,
        action: r.action,
        subjectType: r.subject_type,
        subjectId: r.subject_id,
        details: r.details,
      }));
    const more = rows.length === batch;
    const next = more ? rows[rows.length - 1]!.auditId : head;
    if (next === after) return { read: 0, enqueued: 0, more: false };
    const targets = rows.length
      ? await tx.select().from(webhookEndpoints).where(eq(webhookEndpoints.enabled, true))
      : [];
    const values: Array<typeof webhookDeliveries.$inferInsert> = [];
    if (targets.length) {
      const facts = await cycleFacts(tx, [
        ...new Set(rows.filter((r) => r.subjectType === 'cycle').map((r) => r.subjectId)),
      ]);
      for (const row of rows) {
        const type = webhookEventTypeOf(row.action);
        if (!type) continue;
        const payload = webhookPayload(
          type,
          row,
          row.subjectType === 'cycle' ? (facts.get(row.subjectId) ?? null) : null,
        );
        for (const ep of targets) {
          if (!endpointWants(ep.eventTypes, type) || ep.createdAt > row.at) continue;
          values.push({
            id: `whd_${randomUUID()}`,
            endpointId: ep.id,
            eventId: payload.id as string,
            eventType: type,
            payload,
          });
        }
      }
    }
    const enqueued = values.length
      ? (
          await tx
            .insert(webhookDeliveries)
            .values(values)
            .onConflictDoNothing()
            .returning({ id: webhookDeliveries.id })
        ).length
      : 0;
    await tx
      .insert(webhookOutboxCursor)
      .values({ name: OUTBOX_CURSOR, lastAuditId: next })
      .onConflictDoUpdate({ target: webhookOutboxCursor.name, set: { lastAuditId: next } });
    return { read: rows.length, enqueued, more };
  });
}

async function cycleFacts(db: Db, ids: string[]): Promise<Map<string, WebhookCycleFacts>> {
  if (ids.length === 0) return new Map();
  const rows = await db
    .select({
      id: patchCycles.id,
      policyName: patchCycles.policyName,
      requestedBy: patchCycles.requestedBy,
      emergency: patchCycles.emergency,
      changeNumber: patchCycles.changeNumber,
    })
    .from(patchCycles)
    .where(inArray(patchCycles.id, ids));
  return new Map(rows.map(({ id, ...facts }) => [id, facts]));
}

// ---------------------------------------------------------------- claiming and recording attempts

/**
 * Claims up to `limit` due deliveries of enabled endpoints: each claimed row's attempt count goes up and its next
 * attempt moves to the end of the lease, in one statement whose rows were locked with FOR UPDATE SKIP LOCKED. So
 * another deliverer neither waits for nor sees them until the lease ends (a deliverer that died mid-send leaves
 * its delivery to be retried then).
 */
export async function claimDueDeliveries(
  db: Db,
  options: { limit: number; leaseSeconds: number },
): Promise<ClaimedDelivery[]> {
  const rows = await db.execute<{
    id: string;
    endpoint_id: string;
    event_type: string;
    payload: Record<string, unknown>;
    attempts: number;
    claim_token: string;
    url: string;
    secret_sealed: string;
  }>(sql`
    with due as (
      select d.id from webhook_deliveries d join webhook_endpoints e on e.id = d.endpoint_id and e.enabled
      where d.status = 'pending' and d.next_attempt_at <= now()
      order by d.next_attempt_at, d.id
      limit ${options.limit}
      for update of d skip locked
    )
    update webhook_deliveries w
    set attempts = w.attempts + 1, claim_token = gen_random_uuid()::text, next_attempt_at = now() + make_interval(secs => ${options.leaseSeconds})
    from due, webhook_endpoints e
    where w.id = due.id and e.id = w.endpoint_id
    returning w.id, w.endpoint_id, w.event_type, w.payload, w.attempts, w.claim_token, e.url, e.secret_sealed`);
  return rows.rows.map((r) => ({
    id: r.id,
    endpointId: r.endpoint_id,
    eventType: r.event_type,
    payload: r.payload,
    attempts: Number(r.attempts),
    claimToken: r.claim_token,
    url: r.url,
    secretSealed: r.secret_sealed,
  }));
}

/** The row is still pending under this claim (not replayed or re-claimed since): the only row an outcome may touch. */
function stillClaimed(claim: Pick<ClaimedDelivery, 'id' | 'claimToken'>) {
  return and(
    eq(webhookDeliveries.id, claim.id),
    eq(webhookDeliveries.claimToken, claim.claimToken),
    eq(webhookDeliveries.status, 'pending'),
  );
}

/** Records a 2xx answer. False when the claim is stale (the delivery was replayed or re-claimed meanwhile). */
export async function recordDelivered(
  db: Db,
  claim: Pick<ClaimedDelivery, 'id' | 'claimToken'>,
  httpStatus: number,
): Promise<boolean> {
  const r = await db
    .update(webhookDeliveries)
    .set({ status: 'delivered', deliveredAt: sql`now()`, lastHttpStatus: httpStatus, lastError: null })
    .where(stillClaimed(claim))
    .returning({ id: webhookDeliveries.id });
  return r.length > 0;
}

/**
 * Records a failed attempt: due again in `retryInSeconds`, or `failed` for good when that is null (attempts used
 * up). False when the claim is stale.
 */
export async function recordFailedAttempt(
  db: Db,
  claim: Pick<ClaimedDelivery, 'id' | 'claimToken'>,
  outcome: { httpStatus: number | null; error: string; retryInSeconds: number | null },
): Promise<boolean> {
  const r = await db
    .update(webhookDeliveries)
    .set({
      lastHttpStatus: outcome.httpStatus,
      lastError: outcome.error.slice(0, 1000),
      ...(outcome.retryInSeconds === null
        ? { status: 'failed' }
        : { nextAttemptAt: sql`now() + make_interval(secs => ${outcome.retryInSeconds})` }),
    })
    .where(stillClaimed(claim))
    .returning({ id: webhookDeliveries.id });
  return r.length > 0;
}

// ---------------------------------------------------------------- reading and replaying

export async function listWebhookDeliveries(
  db: Db,
  filter: { endpointId?: string; status?: DeliveryStatus; limit?: number } = {},
): Promise<WebhookDeliverySummary[]> {
  const conds = [];
  if (filter.endpointId) conds.push(eq(webhookDeliveries.endpointId, filter.endpointId));
  if (filter.status) conds.push(eq(webhookDeliveries.status, filter.status));
  const rows = await db
    .select()
    .from(webhookDeliveries)
    .where(conds.length ? and(...conds) : undefined)
    .orderBy(desc(webhookDeliveries.createdAt), desc(webhookDeliveries.id))
    .limit(filter.limit ?? 100);
  return rows.map(deliverySummary);
}

export async function getWebhookDelivery(db: Db, id: string): Promise<WebhookDeliverySummary | null> {
  const [r] = await db.select().from(webhookDeliveries).where(eq(webhookDeliveries.id, id)).limit(1);
  return r ? deliverySummary(r) : null;
}

/**
 * Sends a delivery again, whatever its state: it is pending and due now with a fresh set of attempts, the same
 * id and the same payload (receivers de-duplicate by the event id). Audited. Null when there is no such delivery.
 */
export async function replayWebhookDelivery(db: Db, id: string, by: string): Promise<WebhookDeliverySummary | null> {
  return db.transaction(async (tx) => {
    const [r] = await tx
      .update(webhookDeliveries)
      .set({ status: 'pending', attempts: 0, claimToken: null, nextAttemptAt: sql`now()`, lastError: null })
      .where(eq(webhookDeliveries.id, id))
      .returning();
    if (!r) return null;
    await appendAudit(tx, {
      actor: by,
      action: 'webhook.delivery.replayed',
      subjectType: 'webhook_delivery',
      subjectId: id,
      details: { endpointId: r.endpointId, eventId: r.eventId },
    });
    return deliverySummary(r);
  });
}
