import { describe, expect, it } from 'vitest';
import { endpointWants, webhookEventTypeOf, webhookPayload } from './webhook-events';

describe('webhook events from audit actions', () => {
  it.each([
    ['cycle.started', 'cycle.started'],
    ['cycle.stage.assess', 'cycle.stage_changed'],
    ['cycle.stage.await_approval', 'cycle.stage_changed'],
    ['cycle.stage.completed', 'cycle.completed'],
    ['cycle.stage.failed', 'cycle.failed'],
    ['cycle.stage.cancelled', 'cycle.cancelled'],
    ['cycle.stage.rolled_back', 'cycle.rolled_back'],
    ['cycle.approved', 'cycle.vote'],
    ['cycle.rejected', 'cycle.vote'],
    ['cycle.paused', 'cycle.paused'],
    ['sla.breached', 'sla.breached'],
    ['login', null],
    ['cycle.jobs.install', null],
    ['webhook.endpoint.created', null],
  ])('%s → %s', (action, type) => {
    expect(webhookEventTypeOf(action)).toBe(type);
  });

  it('builds the payload: stable id from the audit entry, the stage or decision in data, the cycle when there is one', () => {
    const at = new Date('2026-12-05T06:00:00Z');
    const p = webhookPayload(
      'cycle.vote',
      {
        auditId: 42,
        at,
        actor: 'slack:U1',
        action: 'cycle.rejected',
        subjectType: 'cycle',
        subjectId: 'c1',
        details: { reason: 'no' },
      },
      null,
    );
    expect(p).toEqual({
      id: 'evt_42',
      type: 'cycle.vote',
      occurredAt: at.toISOString(),
      actor: 'slack:U1',
      cycle: { id: 'c1' },
      data: { reason: 'no', decision: 'reject' },
    });
    const s = webhookPayload(
      'cycle.stage_changed',
      {
        auditId: 43,
        at,
        actor: 'system:workflow',
        action: 'cycle.stage.deploying',
        subjectType: 'cycle',
        subjectId: 'c1',
        details: {},
      },
      null,
    );
    expect(s.data).toEqual({ stage: 'DEPLOYING' });
  });

  it('an empty filter wants everything; otherwise only what it names', () => {
    expect(endpointWants([], 'sla.breached')).toBe(true);
    expect(endpointWants(['cycle.completed'], 'sla.breached')).toBe(false);
    expect(endpointWants(['cycle.completed'], 'cycle.completed')).toBe(true);
  });
});
