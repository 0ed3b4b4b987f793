/**
 * POST /webhooks/servicenow — ServiceNow tells patchops that a change request moved (state, approval,
 * planned window). Sent by the business rule and outbound REST message in docs/servicenow/.
 *
 * Authentication: the header `X-PatchOps-Secret: <SERVICENOW_WEBHOOK_SECRET>`, or basic auth whose
 * password is that secret (any user name), compared in constant time. 401 when neither matches (or no
 * secret is configured), 400 for a body that is not a change notification.
 *
 * The notification is only a hint (DESIGN: ServiceNow is trusted for change state, confirmed with the
 * instance): its state is confirmed by reading the change from ServiceNow itself, and what is forwarded to
 * the cycle is ServiceNow's answer, never the body. 404 when ServiceNow does not know the change or no
 * cycle owns it; 409 when ServiceNow's state or approval differs from the notification's (nothing is
 * forwarded: the cycle keeps following the change by polling) or the cycle has already finished; 502 when ServiceNow cannot be asked (the business rule may retry); 200 otherwise. Only the
 * cycle whose recorded change is this change can be moved (the cycle service checks): correlation_id,
 * which anyone who can edit a change can set, only picks among cycles, it never lends one its change. Idempotent: a notification already forwarded (same change, sys_mod_count,
 * state and approval) is acknowledged without forwarding again; forwarding twice would be harmless too.
 */
import { timingSafeEqual, createHash } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { ChangeRequestStateEvent } from '../domain/cycle';
import { CodedError, ErrorCode, isCodedError } from '../domain/errors';
import type { ChangeDesk } from '../domain/ports';
import { fromSnDateTime } from '../integrations/servicenow/client';
import { mapServiceNowApproval, mapServiceNowState } from '../integrations/servicenow/change-desk';
import type { Logger } from '../logging';
import type { CycleService } from '../services/cycle-service';
import type { DeliveryReceipts, RouteModule } from '../shared/contracts';
import { MemoryReceipts } from '../shared/memory-receipts';

export const SERVICENOW_WEBHOOK_PATH = '/webhooks/servicenow';
export const SERVICENOW_SECRET_HEADER = 'x-patchops-secret';

const optionalText = z
  .union([z.string(), z.number()])
  .transform((v) => String(v).trim())
  .optional()
  .nullable()
  .transform((v) => (v === '' || v === null ? undefined : v));

export const serviceNowNotificationSchema = z.object({
  number: z
    .string()
    .trim()
    .regex(/^[A-Z]{2,10}\d{3,}$/, 'expected a change number such as CHG0030001'),
  sys_id: optionalText,
  correlation_id: optionalText,
  state: z.union([z.string(), z.number()]).transform((v) => String(v).trim()),
  state_label: optionalText,
  approval: optionalText,
  start_date: optionalText,
  end_date: optionalText,
  sys_updated_by: optionalText,
  sys_mod_count: optionalText,
  reason: optionalText,
});
export type ServiceNowNotification = z.infer<typeof serviceNowNotificationSchema>;

export interface ServiceNowWebhookOptions {
  /** The cycle service; a function so the route can be mounted before the service exists. */
  cycles: CycleService | (() => CycleService | undefined);
  secret: string | undefined;
  /**
   * ServiceNow itself (the change desk), asked for the change's state before anything is forwarded.
   * Without it every notification is refused (503): an unconfirmed state never reaches a cycle.
   */
  changes?: Pick<ChangeDesk, 'get'> | null;
  logger?: Logger;
  /** Where forwarded notifications are remembered (by number, sys_id, sys_mod_count and state): shared by every server in production. */
  receipts?: DeliveryReceipts;
}

/** Turns a notification into the workflow's event; throws INVALID_INPUT when the state is unknown. */
export function toChangeRequestStateEvent(n: ServiceNowNotification): ChangeRequestStateEvent {
  const state = mapServiceNowState(n.state) ?? mapServiceNowState(n.state_label);
  if (!state)
    throw new CodedError(
      ErrorCode.InvalidInput,
      `state "${n.state}" is not a ServiceNow change state (-5, -4, -3, -2, -1, 0, 3, 4 or their names)`,
    );
  const event: ChangeRequestStateEvent = { changeNumber: n.number, state };
  const approval = mapServiceNowApproval(n.approval);
  if (approval) event.approval = approval;
  const start = parseTime(n.start_date);
  const end = parseTime(n.end_date);
  if (start) event.plannedStart = start;
  if (end) event.plannedEnd = end;
  if (n.sys_updated_by) event.by = `servicenow:${n.sys_updated_by}`;
  if (n.reason) event.reason = n.reason;
  return event;
}

export function serviceNowWebhookRoute(o: ServiceNowWebhookOptions): RouteModule {
  const receipts = o.receipts ?? new MemoryReceipts();
  const cycles = () => (typeof o.cycles === 'function' ? o.cycles() : o.cycles);

  return (app: FastifyInstance) => {
    app.post(SERVICENOW_WEBHOOK_PATH, async (req: FastifyRequest, reply: FastifyReply) => {
      if (!o.secret) {
        return reply.code(401).send({
          error:
            'SERVICENOW_WEBHOOK_SECRET is not set: ServiceNow notifications cannot be authenticated. Set it here and in the ServiceNow outbound REST message (docs/servicenow/).',
        });
      }
      if (!authenticated(req, o.secret)) {
        return reply.code(401).send({
          error: `not authenticated: send the shared secret in the ${SERVICENOW_SECRET_HEADER} header, or as the basic-auth password`,
        });
      }
      const parsed = serviceNowNotificationSchema.safeParse(req.body);
      if (!parsed.success) {
        const problems = parsed.error.issues.map((i) => `${i.path.join('.') || 'body'}: ${i.message}`);
        return reply.code(400).send({ error: `not a change notification: ${problems.join('; ')}` });
      }
      const n = parsed.data;
      let event: ChangeRequestStateEvent;
      try {
        event = toChangeRequestStateEvent(n);
      } catch (e) {
        return reply.code(400).send({ error: (e as Error).message });
      }
      const key = [
        'servicenow',
        n.number,
        n.sys_id ?? '',
        n.sys_mod_count ?? '',
        event.state,
        event.approval ?? '',
        event.plannedStart ?? '',
        event.plannedEnd ?? '',
      ].join('|');
      // Only a notification that names its sys_mod_count can be told apart from a later one with the same state.
      const remembered = n.sys_mod_count !== undefined;
      if (remembered && !(await claimReceipt(receipts, key, o.logger))) {
        return reply.code(200).send({ ok: true, duplicate: true, changeNumber: n.number, state: event.state });
      }
      let forwarded = false;
      try {
        const service = cycles();
        if (!service)
          return reply.code(503).send({ error: 'the cycle service is not running in this process; retry shortly' });
        if (!o.changes) {
          return reply.code(503).send({
            error:
              'ServiceNow is not configured in this process (SERVICENOW_INSTANCE_URL), so the notification cannot be confirmed with it: nothing was forwarded.',
          });
        }
        let confirmed: ChangeRequestStateEvent | null;
        try {
          confirmed = await o.changes.get(n.number);
        } catch (e) {
          o.logger?.warn(
            { err: e, changeNumber: n.number },
            'could not confirm a ServiceNow notification with ServiceNow',
          );
          return reply
            .code(502)
            .send({ error: `could not confirm change ${n.number} with ServiceNow: ${(e as Error).message}` });
        }
        if (!confirmed)
          return reply.code(404).send({ error: `ServiceNow has no change ${n.number}: the notification was ignored` });
        const disagreement = disagreementOf(event, confirmed);
        if (disagreement) {
          o.logger?.warn(
            { changeNumber: n.number, notified: event.state, confirmed: confirmed.state },
            'ServiceNow notification disagrees with ServiceNow; ignored',
          );
          return reply.code(409).send({
            error: `the notification says change ${n.number} is ${disagreement.notified}, but ServiceNow says ${disagreement.confirmed}: ignored (patchops follows ServiceNow's own state)`,
          });
        }
        try {
          await forward(service, n, confirmed);
        } catch (e) {
          if (isCodedError(e) && e.code === ErrorCode.NotFound) {
            return reply.code(404).send({
              error: `no patch cycle owns change ${n.number}${n.correlation_id ? ` (the notification names correlation_id ${n.correlation_id})` : ''}`,
            });
          }
          if (isCodedError(e) && e.code === ErrorCode.Conflict) return reply.code(409).send({ error: e.message });
          if (isCodedError(e) && e.code === ErrorCode.InvalidInput) return reply.code(400).send({ error: e.message });
          o.logger?.error({ err: e, changeNumber: n.number }, 'could not forward the ServiceNow notification');
          return reply.code(500).send({ error: `could not forward the notification: ${(e as Error).message}` });
        }
        forwarded = true;
        o.logger?.info(
          { changeNumber: n.number, state: confirmed.state, approval: confirmed.approval },
          'ServiceNow change state confirmed and forwarded',
        );
        return reply.code(200).send({ ok: true, changeNumber: n.number, state: confirmed.state });
      } finally {
        // Not forwarded: ServiceNow's retry (or the next notification) must be taken.
        if (remembered && !forwarded)
          await receipts
            .release(key)
            .catch((err: unknown) => o.logger?.warn({ err, key }, 'could not release a ServiceNow receipt'));
      }
    });
  };
}

/**
 * To the cycle named by correlation_id when that cycle's own change is this one (the cycle service refuses
 * any other: CONFLICT), else to the cycle that owns the change number.
 */
async function forward(
  service: CycleService,
  n: ServiceNowNotification,
  confirmed: ChangeRequestStateEvent,
): Promise<void> {
  if (n.correlation_id) {
    try {
      await service.changeRequestState(n.correlation_id, confirmed);
      return;
    } catch (e) {
      if (!(isCodedError(e) && (e.code === ErrorCode.NotFound || e.code === ErrorCode.Conflict))) throw e;
    }
  }
  await service.changeRequestState(n.number, confirmed);
}

/** How the notification's state or approval differs from ServiceNow's own answer, if it does. */
function disagreementOf(
  notified: ChangeRequestStateEvent,
  confirmed: ChangeRequestStateEvent,
): { notified: string; confirmed: string } | undefined {
  const show = (e: ChangeRequestStateEvent) => `${e.state}${e.approval ? ` (approval ${e.approval})` : ''}`;
  if (notified.state !== confirmed.state) return { notified: show(notified), confirmed: show(confirmed) };
  if (notified.approval !== undefined && notified.approval !== confirmed.approval)
    return { notified: show(notified), confirmed: show(confirmed) };
  return undefined;
}

function authenticated(req: FastifyRequest, secret: string): boolean {
  const header = req.headers[SERVICENOW_SECRET_HEADER];
  if (typeof header === 'string' && safeEqual(header, secret)) return true;
  const auth = req.headers.authorization;
  if (auth?.toLowerCase().startsWith('basic ')) {
    const decoded = Buffer.from(auth.slice(6).trim(), 'base64').toString('utf8');
    const idx = decoded.indexOf(':');
    if (idx >= 0 && safeEqual(decoded.slice(idx + 1), secret)) return true;
  }
  return false;
}

function safeEqual(a: string, b: string): boolean {
  const ha = createHash('sha256').update(a).digest();
  const hb = createHash('sha256').update(b).digest();
  return timingSafeEqual(ha, hb);
}

function parseTime(v: string | undefined): string | undefined {
  if (!v) return undefined;
  const sn = fromSnDateTime(v);
  if (sn && !/[zZ]|[+-]\d{2}:?\d{2}$/.test(v)) return sn;
  const d = new Date(v);
  return Number.isNaN(d.getTime()) ? undefined : d.toISOString();
}

const NOTIFICATION_TTL_MS = 24 * 60 * 60_000;

/** Claims a notification's receipt; when the receipts cannot be reached it is taken (forwarding twice is harmless: the workflow ignores a state it already has). */
async function claimReceipt(receipts: DeliveryReceipts, key: string, logger?: Logger): Promise<boolean> {
  try {
    return await receipts.claim(key, NOTIFICATION_TTL_MS);
  } catch (err) {
    logger?.warn(
      { err, key },
      'delivery receipts unavailable: forwarding the ServiceNow notification without the duplicate check',
    );
    return true;
  }
}
