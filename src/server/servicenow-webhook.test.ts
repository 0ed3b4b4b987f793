import type { FastifyInstance } from 'fastify';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ServiceNowFake } from '../../test/fakes/servicenow';
import type { ChangeRequestStateEvent } from '../domain/cycle';
import { CodedError, ErrorCode } from '../domain/errors';
import type { ChangeDesk } from '../domain/ports';
import { ServiceNowChangeDesk } from '../integrations/servicenow/change-desk';
import { ServiceNowClient } from '../integrations/servicenow/client';
import { createLogger } from '../logging';
import type { CycleService } from '../services/cycle-service';
import { buildServer } from './app';
import { serviceNowNotificationSchema, serviceNowWebhookRoute, toChangeRequestStateEvent } from './servicenow-webhook';

const SECRET = 'webhook-secret-0123456789';

/**
 * A CycleService that knows some cycles, by id and by change number, each with its change (as the real one:
 * NOT_FOUND for an unknown key, CONFLICT for a change that is not the cycle's own), and records what it was told.
 */
function recordingCycles(known: Record<string, string>) {
  const calls: Array<{ key: string; event: ChangeRequestStateEvent }> = [];
  const notUsed = () => {
    throw new Error('not used by the webhook');
  };
  const service: CycleService = {
    start: notUsed,
    status: notUsed,
    list: notUsed,
    approve: notUsed,
    reject: notUsed,
    pause: notUsed,
    resume: notUsed,
    cancel: notUsed,
    rollback: notUsed,
    scan: notUsed,
    async changeRequestState(key, event) {
      if (!(key in known)) throw new CodedError(ErrorCode.NotFound, `no cycle ${key}`);
      if (known[key] !== event.changeNumber)
        throw new CodedError(ErrorCode.Conflict, `change ${event.changeNumber} is not the change of ${key}`);
      calls.push({ key, event });
    },
  };
  return { service, calls };
}

/** ServiceNow's own answers, by change number (what the change desk's get() would return). */
function serviceNowSays(changes: Record<string, ChangeRequestStateEvent>) {
  const sn = {
    changes,
    asked: [] as string[],
    down: false,
    async get(n: string): Promise<ChangeRequestStateEvent | null> {
      sn.asked.push(n);
      if (sn.down)
        throw new CodedError(
          ErrorCode.IntegrationFailed,
          'ServiceNow GET /api/now/table/change_request failed: connect ECONNREFUSED',
        );
      return sn.changes[n] ?? null;
    },
  } satisfies Pick<ChangeDesk, 'get'> & Record<string, unknown>;
  return sn;
}

const SCHEDULED: ChangeRequestStateEvent = {
  changeNumber: 'CHG0010042',
  state: 'scheduled',
  approval: 'approved',
  plannedStart: '2026-12-01T22:00:00.000Z',
  plannedEnd: '2026-12-02T02:00:00.000Z',
  by: 'servicenow:cab.chair',
};

let app: FastifyInstance;
let cycles: ReturnType<typeof recordingCycles>;
let sn: ReturnType<typeof serviceNowSays>;
const body = (over: Record<string, unknown> = {}) => ({
  number: 'CHG0010042',
  sys_id: 'a'.repeat(32),
  correlation_id: 'cycle-42',
  state: '-2',
  state_label: 'Scheduled',
  approval: 'approved',
  start_date: '2026-12-01 22:00:00',
  end_date: '2026-12-02 02:00:00',
  sys_updated_by: 'cab.chair',
  sys_mod_count: '4',
  reason: '',
  ...over,
});
const post = (payload: unknown, headers: Record<string, string> = { 'x-patchops-secret': SECRET }) =>
  app.inject({ method: 'POST', url: '/webhooks/servicenow', payload: payload as object, headers });

// A fresh route (and de-duplication memory) per test.
beforeEach(async () => {
  cycles = recordingCycles({ 'cycle-42': 'CHG0010042', CHG0010042: 'CHG0010042', CHG0010077: 'CHG0010077' });
  sn = serviceNowSays({
    CHG0010042: SCHEDULED,
    CHG0010077: { changeNumber: 'CHG0010077', state: 'scheduled', approval: 'approved' },
    CHG0010099: { changeNumber: 'CHG0010099', state: 'scheduled', approval: 'approved' },
  });
  app = await buildServer({
    logger: createLogger('silent'),
    health: [],
    routes: [serviceNowWebhookRoute({ cycles: () => cycles.service, secret: SECRET, changes: sn })],
  });
});
afterEach(() => app.close());

describe('POST /webhooks/servicenow', () => {
  it('confirms the state with ServiceNow and forwards ServiceNow’s answer to the cycle owning the change', async () => {
    const res = await post(body({ start_date: '2030-01-01 00:00:00' }));
    expect(res.statusCode).toBe(200);
    expect(sn.asked).toEqual(['CHG0010042']);
    expect(cycles.calls).toEqual([{ key: 'cycle-42', event: SCHEDULED }]); // ServiceNow's window, not the body's
  });

  it('maps a notification to the signal payload (the state it claims, checked against ServiceNow)', () => {
    expect(toChangeRequestStateEvent(serviceNowNotificationSchema.parse(body()))).toEqual(SCHEDULED);
  });

  it('refuses a notification whose state ServiceNow does not confirm, forwarding nothing', async () => {
    sn.changes.CHG0010042 = { changeNumber: 'CHG0010042', state: 'authorize', approval: 'requested' };
    const res = await post(body());
    expect(res.statusCode).toBe(409);
    expect(res.json().error).toBe(
      "the notification says change CHG0010042 is scheduled (approval approved), but ServiceNow says authorize (approval requested): ignored (patchops follows ServiceNow's own state)",
    );
    expect(cycles.calls).toEqual([]);
  });

  it('moves only the cycle whose change this is: a correlation_id naming another cycle moves nothing', async () => {
    // CHG0010099 is approved in ServiceNow, but no cycle owns it; its correlation_id names cycle-42's cycle.
    const res = await post(body({ number: 'CHG0010099', correlation_id: 'cycle-42' }));
    expect(res.statusCode).toBe(404);
    expect(res.json().error).toBe(
      'no patch cycle owns change CHG0010099 (the notification names correlation_id cycle-42)',
    );
    expect(cycles.calls).toEqual([]);
  });

  it('falls back to the change number when the correlation_id names no cycle', async () => {
    expect((await post(body({ number: 'CHG0010077', correlation_id: 'other' }))).statusCode).toBe(200);
    expect(cycles.calls.map((c) => c.key)).toEqual(['CHG0010077']);
  });

  it('answers 404 for a change ServiceNow does not know, 502 when ServiceNow cannot be asked, 503 without ServiceNow', async () => {
    const unknown = await post(body({ number: 'CHG0010123' }));
    expect(unknown.statusCode).toBe(404);
    expect(unknown.json().error).toBe('ServiceNow has no change CHG0010123: the notification was ignored');
    sn.down = true;
    const down = await post(body());
    expect(down.statusCode).toBe(502);
    expect(down.json().error).toMatch(/could not confirm change CHG0010042 with ServiceNow: .*ECONNREFUSED/);
    const blind = await buildServer({
      logger: createLogger('silent'),
      health: [],
      routes: [serviceNowWebhookRoute({ cycles: cycles.service, secret: SECRET })],
    });
    const res = await blind.inject({
      method: 'POST',
      url: '/webhooks/servicenow',
      payload: body(),
      headers: { 'x-patchops-secret': SECRET },
    });
    await blind.close();
    expect(res.statusCode).toBe(503);
    expect(res.json().error).toMatch(/cannot be confirmed/);
    expect(cycles.calls).toEqual([]);
  });

  it.each([
    ['no credentials', {}],
    ['a wrong secret', { 'x-patchops-secret': 'nope' }],
    [
      'basic auth with a wrong password',
      { authorization: `Basic ${Buffer.from(`servicenow:nope`).toString('base64')}` },
    ],
  ])('answers 401 to %s and forwards nothing', async (_what, headers) => {
    const res = await post(body(), headers as Record<string, string>);
    expect(res.statusCode).toBe(401);
    expect(cycles.calls).toEqual([]);
  });

  it('accepts basic auth whose password is the secret', async () => {
    const res = await post(body(), {
      authorization: `Basic ${Buffer.from(`servicenow:${SECRET}`).toString('base64')}`,
    });
    expect(res.statusCode).toBe(200);
    expect(cycles.calls).toHaveLength(1);
  });

  it('refuses everything when no secret is configured, saying what to set', async () => {
    const open = await buildServer({
      logger: createLogger('silent'),
      health: [],
      routes: [serviceNowWebhookRoute({ cycles: cycles.service, secret: undefined })],
    });
    const res = await open.inject({
      method: 'POST',
      url: '/webhooks/servicenow',
      payload: body(),
      headers: { 'x-patchops-secret': '' },
    });
    await open.close();
    expect(res.statusCode).toBe(401);
    expect(res.json().error).toMatch(/SERVICENOW_WEBHOOK_SECRET is not set/);
  });

  it.each([
    ['a missing number', { number: undefined }, /number/],
    ['a malformed number', { number: 'hello' }, /change number/],
    ['an unknown state', { state: '42', state_label: 'Weird' }, /not a ServiceNow change state/],
  ])('answers 400 to %s', async (_what, over, message) => {
    const res = await post(body(over));
    expect(res.statusCode).toBe(400);
    expect(res.json().error).toMatch(message);
    expect(cycles.calls).toEqual([]);
  });

  it('answers 400 to a body that is not JSON', async () => {
    const res = await app.inject({
      method: 'POST',
      url: '/webhooks/servicenow',
      payload: 'state=-2',
      headers: { 'x-patchops-secret': SECRET, 'content-type': 'text/plain' },
    });
    expect(res.statusCode).toBe(400);
  });

  it('forwards a redelivered notification once', async () => {
    expect((await post(body())).statusCode).toBe(200);
    const again = await post(body());
    expect(again.statusCode).toBe(200);
    expect(again.json()).toMatchObject({ duplicate: true });
    expect(cycles.calls).toHaveLength(1);
    sn.changes.CHG0010042 = {
      changeNumber: 'CHG0010042',
      state: 'canceled',
      approval: 'approved',
      reason: 'no longer needed',
    };
    expect((await post(body({ sys_mod_count: '5', state: '4', reason: 'no longer needed' }))).statusCode).toBe(200);
    expect(cycles.calls.map((c) => [c.event.state, c.event.reason])).toEqual([
      ['scheduled', undefined],
      ['canceled', 'no longer needed'],
    ]);
  });

  it('takes the call the fake’s business rule makes over real HTTP, confirmed through the real change desk', async () => {
    const fake = new ServiceNowFake();
    const instanceUrl = await fake.start();
    const desk = new ServiceNowChangeDesk({
      client: new ServiceNowClient({ instanceUrl, auth: { kind: 'basic', username: 'admin', password: 'admin' } }),
    });
    const listening = await buildServer({
      logger: createLogger('silent'),
      health: [],
      routes: [serviceNowWebhookRoute({ cycles: () => cycles.service, secret: SECRET, changes: desk })],
    });
    const url = await listening.listen({ host: '127.0.0.1', port: 0 });
    fake.webhook = { url: `${url}/webhooks/servicenow`, secret: SECRET };
    try {
      const c = fake.insert('change_request', {
        type: 'normal',
        state: '-3',
        approval: 'requested',
        correlation_id: 'cycle-42',
        number: 'CHG0010042',
      });
      expect(await fake.cancel(c.number!, 'Out of freeze window', 'cab.chair')).toBe(200);
      expect(cycles.calls.at(-1)).toEqual({
        key: 'cycle-42',
        event: {
          changeNumber: c.number,
          state: 'canceled',
          approval: 'requested',
          by: 'servicenow:cab.chair',
          reason: 'Out of freeze window',
        },
      });
    } finally {
      await fake.stop();
      await listening.close();
    }
  });
});
