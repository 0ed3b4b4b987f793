import type { FastifyInstance } from 'fastify';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ServiceNowFake } from '../../test/fakes/servicenow';
import type { ChangeRequestStateEvent } from '../domain/cycle';
import { CodedError, ErrorCode } from '../domain/errors';
import { createLogger } from '../logging';
import type { CycleService } from '../services/cycle-service';
import { buildServer } from './app';
import { serviceNowWebhookRoute } from './servicenow-webhook';

const SECRET = 'webhook-secret-0123456789';

/** A CycleService that knows some cycles by id and change number and records what it was told. */
function recordingCycles(known: Record<string, string>) {
  const calls: Array<{ key: string; event: ChangeRequestStateEvent }> = [];
  const notUsed = () => {
    throw new Error('not used by the webhook');
  };
  const service: CycleService = {
    start: notUsed, status: notUsed, list: notUsed, approve: notUsed, reject: notUsed, pause: notUsed, resume: notUsed,
    cancel: notUsed, rollback: notUsed, scan: notUsed,
    async changeRequestState(key, event) {
      if (!(key in known)) throw new CodedError(ErrorCode.NotFound, `no cycle ${key}`);
      calls.push({ key, event });
    },
  };
  return { service, calls };
}

let app: FastifyInstance;
let cycles: ReturnType<typeof recordingCycles>;
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
  cycles = recordingCycles({ 'cycle-42': 'x', CHG0010077: 'y' });
  app = await buildServer({
    logger: createLogger('silent'),
    health: [],
    routes: [serviceNowWebhookRoute({ cycles: () => cycles.service, secret: SECRET })],
  });
});
afterEach(() => app.close());

describe('POST /webhooks/servicenow', () => {
  it('forwards the change state to the owning cycle, mapped to the signal payload', async () => {
    const res = await post(body());
    expect(res.statusCode).toBe(200);
    expect(cycles.calls).toEqual([
      {
        key: 'cycle-42',
        event: {
          changeNumber: 'CHG0010042',
          state: 'scheduled',
          approval: 'approved',
          plannedStart: '2026-12-01T22:00:00.000Z',
          plannedEnd: '2026-12-02T02:00:00.000Z',
          by: 'servicenow:cab.chair',
        },
      },
    ]);
  });

  it.each([
    ['no credentials', {}],
    ['a wrong secret', { 'x-patchops-secret': 'nope' }],
    ['basic auth with a wrong password', { authorization: `Basic ${Buffer.from(`servicenow:nope`).toString('base64')}` }],
  ])('answers 401 to %s and forwards nothing', async (_what, headers) => {
    const res = await post(body(), headers as Record<string, string>);
    expect(res.statusCode).toBe(401);
    expect(cycles.calls).toEqual([]);
  });

  it('accepts basic auth whose password is the secret', async () => {
    const res = await post(body(), { authorization: `Basic ${Buffer.from(`servicenow:${SECRET}`).toString('base64')}` });
    expect(res.statusCode).toBe(200);
    expect(cycles.calls).toHaveLength(1);
  });

  it('refuses everything when no secret is configured, saying what to set', async () => {
    const open = await buildServer({ logger: createLogger('silent'), health: [], routes: [serviceNowWebhookRoute({ cycles: cycles.service, secret: undefined })] });
    const res = await open.inject({ method: 'POST', url: '/webhooks/servicenow', payload: body(), headers: { 'x-patchops-secret': '' } });
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
    const res = await app.inject({ method: 'POST', url: '/webhooks/servicenow', payload: 'state=-2', headers: { 'x-patchops-secret': SECRET, 'content-type': 'text/plain' } });
    expect(res.statusCode).toBe(400);
  });

  it('falls back to the change number, and answers 404 when no cycle owns the change', async () => {
    expect((await post(body({ number: 'CHG0010077', correlation_id: 'other' }))).statusCode).toBe(200);
    expect(cycles.calls.map((c) => c.key)).toEqual(['CHG0010077']);
    const res = await post(body({ number: 'CHG0010099', correlation_id: 'nobody' }));
    expect(res.statusCode).toBe(404);
    expect(res.json().error).toContain('CHG0010099');
  });

  it('forwards a redelivered notification once', async () => {
    expect((await post(body())).statusCode).toBe(200);
    const again = await post(body());
    expect(again.statusCode).toBe(200);
    expect(again.json()).toMatchObject({ duplicate: true });
    expect(cycles.calls).toHaveLength(1);
    expect((await post(body({ sys_mod_count: '5', state: '4', reason: 'no longer needed' }))).statusCode).toBe(200);
    expect(cycles.calls.map((c) => [c.event.state, c.event.reason])).toEqual([['scheduled', undefined], ['canceled', 'no longer needed']]);
  });

  it('takes the call the fake’s business rule makes over real HTTP', async () => {
    const listening = await buildServer({ logger: createLogger('silent'), health: [], routes: [serviceNowWebhookRoute({ cycles: () => cycles.service, secret: SECRET })] });
    const url = await listening.listen({ host: '127.0.0.1', port: 0 });
    const fake = new ServiceNowFake({ webhook: { url: `${url}/webhooks/servicenow`, secret: SECRET } });
    await fake.start();
    try {
      const c = fake.insert('change_request', { type: 'normal', state: '-3', approval: 'requested', correlation_id: 'cycle-42' });
      expect(await fake.cancel(c.number!, 'Out of freeze window', 'cab.chair')).toBe(200);
      expect(cycles.calls.at(-1)).toEqual({ key: 'cycle-42', event: { changeNumber: c.number, state: 'canceled', approval: 'requested', by: 'servicenow:cab.chair', reason: 'Out of freeze window' } });
    } finally {
      await fake.stop();
      await listening.close();
    }
  });
});
