/**
 * The events outbound webhooks announce, and which audit-log entry each comes from. Every event is one audit
 * entry, so the audit log is the one durable source and an event's id is its entry's id. Pure.
 */

export const WEBHOOK_EVENT_TYPES = [
  'cycle.started',
  'cycle.stage_changed',
  'cycle.vote',
  'cycle.paused',
  'cycle.resumed',
  'cycle.completed',
  'cycle.failed',
  'cycle.cancelled',
  'cycle.rolled_back',
  'sla.breached',
] as const;
export type WebhookEventType = (typeof WEBHOOK_EVENT_TYPES)[number];

/** Terminal stages have an event of their own instead of `cycle.stage_changed`. */
const TERMINAL_STAGE_EVENTS: Record<string, WebhookEventType> = {
  completed: 'cycle.completed',
  failed: 'cycle.failed',
  cancelled: 'cycle.cancelled',
  rolled_back: 'cycle.rolled_back',
};

/** Audit actions that announce an event, besides the stage changes (`cycle.stage.<stage>`). */
const ACTION_EVENTS: Record<string, WebhookEventType> = {
  'cycle.started': 'cycle.started',
  'cycle.approved': 'cycle.vote',
  'cycle.rejected': 'cycle.vote',
  'cycle.paused': 'cycle.paused',
  'cycle.resumed': 'cycle.resumed',
  'sla.breached': 'sla.breached',
};

/** What the outbox reads from the audit log: these actions, and every action starting with STAGE_ACTION_PREFIX. */
export const WEBHOOK_SOURCE_ACTIONS: readonly string[] = Object.keys(ACTION_EVENTS);
export const STAGE_ACTION_PREFIX = 'cycle.stage.';

/** The event an audit action announces, or null when it announces none (most actions). */
export function webhookEventTypeOf(action: string): WebhookEventType | null {
  if (action.startsWith(STAGE_ACTION_PREFIX)) {
    const stage = action.slice(STAGE_ACTION_PREFIX.length);
    return TERMINAL_STAGE_EVENTS[stage] ?? 'cycle.stage_changed';
  }
  return ACTION_EVENTS[action] ?? null;
}

/** Whether an endpoint with this filter (empty = everything) receives `type`. */
export function endpointWants(eventTypes: readonly string[], type: WebhookEventType): boolean {
  return eventTypes.length === 0 || eventTypes.includes(type);
}

export interface WebhookEventSource {
  auditId: number;
  at: Date;
  actor: string;
  action: string;
  subjectType: string;
  subjectId: string;
  details: Record<string, unknown>;
}

export interface WebhookCycleFacts {
  policyName: string;
  requestedBy: string;
  emergency: boolean;
  changeNumber: string | null;
}

/**
 * The JSON body an event is delivered with (docs/webhooks.md shows one): `id` is stable across retries and
 * replays, so receivers de-duplicate by it.
 */
export function webhookPayload(
  type: WebhookEventType,
  e: WebhookEventSource,
  cycle: WebhookCycleFacts | null,
): Record<string, unknown> {
  const data: Record<string, unknown> = { ...e.details };
  if (e.action.startsWith(STAGE_ACTION_PREFIX)) data.stage = e.action.slice(STAGE_ACTION_PREFIX.length).toUpperCase();
  if (type === 'cycle.vote') data.decision = e.action === 'cycle.approved' ? 'approve' : 'reject';
  return {
    id: webhookEventId(e.auditId),
    type,
    occurredAt: e.at.toISOString(),
    actor: e.actor,
    ...(e.subjectType === 'cycle' ? { cycle: { id: e.subjectId, ...(cycle ?? {}) } } : {}),
    data,
  };
}

export function webhookEventId(auditId: number): string {
  return `evt_${auditId}`;
}
