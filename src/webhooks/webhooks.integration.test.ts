/**
 * Outbound webhooks through real HTTP: /api/v1/webhooks on the real server (a test `authorize`), the real
 * database and migrations, events from the real audit log, and a test receiver — a real HTTP server on
 * 127.0.0.1 — that checks every delivery with the scheme docs/webhooks.md documents (its own code below, not
 * the product's signing module).
 */
import { createHmac, randomUUID, timingSafeEqual } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { desc, eq, like } from 'drizzle-orm';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../test/helpers/db';
import { APP_ROLE, connectDatabase, type Database } from '../db/client';
import { createCycleRow, recordStageChange, recordVoteRow } from '../db/cycles';
import { appendAudit } from '../db/audit';
import {
  auditLog,
  endpointPatches,
  endpoints,
  patches,
  webhookEndpoints,
  webhookOutboxCursor,
} from '../db/schema/index';
import { SecretBox } from '../db/secret-box';
import { recordNewSlaBreaches } from '../db/sla-breaches';
import {
  claimDueDeliveries,
  createWebhookEndpoint,
  feedWebhookOutbox,
  listWebhookDeliveries,
  recordFailedAttempt,
  type WebhookDeliverySummary,
} from '../db/webhooks';
import { CodedError, ErrorCode } from '../domain/errors';
import { createLogger } from '../logging';
import { buildServer } from '../server/app';
import { createWebhookDeliverer, type DeliveryOutcome, type WebhookDelivererOptions } from './deliverer';
import { webhookRoutes, type WebhookScope } from './routes';

// ---------------------------------------------------------------- the receiver's side, from docs/webhooks.md

/** What a receiver does (docs/webhooks.md, "Verifying a delivery"). */
function verifyPatchopsSignature(
  secret: string,
  header: string | undefined,
  rawBody: string,
  toleranceSeconds = 300,
): boolean {
  const fields = Object.fromEntries((header ?? '').split(',').map((kv) => kv.split('=', 2) as [string, string]));
  const t = Number(fields.t);
  if (!Number.isInteger(t) || Math.abs(Date.now() / 1000 - t) > toleranceSeconds || !fields.v1) return false;
  const expected = createHmac('sha256', secret).update(`${t}.${rawBody}`).digest();
  const given = Buffer.from(fields.v1, 'hex');
  return given.length === expected.length && timingSafeEqual(given, expected);
}

interface Received {
  headers: http.IncomingHttpHeaders;
  body: string;
  verified: boolean;
}

/** A webhook receiver on 127.0.0.1: answers 401 to a bad signature, else `answer` (after `delayMs`). */
class TestReceiver {
  secret = '';
  answer = 204;
  delayMs = 0;
  readonly received: Received[] = [];
  private server: http.Server | undefined;
  port = 0;

  async listen(port = 0): Promise<string> {
    this.server = http.createServer((req, res) => {
      let body = '';
      req.setEncoding('utf8');
      req.on('data', (c: string) => (body += c));
      req.on('end', () => {
        const verified = verifyPatchopsSignature(
          this.secret,
          req.headers['patchops-signature'] as string | undefined,
          body,
        );
        this.received.push({ headers: req.headers, body, verified });
        setTimeout(
          () =>
            res
              .writeHead(verified ? this.answer : 401, { 'content-type': 'text/plain' })
              .end(verified ? 'ok' : 'bad signature'),
          this.delayMs,
        );
      });
    });
    await new Promise<void>((resolve) => this.server!.listen(port, '127.0.0.1', resolve));
    this.port = (this.server.address() as AddressInfo).port;
    return this.url;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}/hooks/patchops`;
  }

  async close(): Promise<void> {
    const s = this.server;
    this.server = undefined;
    if (s) await new Promise<void>((resolve) => s.close(() => resolve()));
  }

  /** Deliveries that verified, parsed. */
  events(): Array<{ delivery: string; type: string; payload: Record<string, unknown> }> {
    return this.received
      .filter((r) => r.verified)
      .map((r) => ({
        delivery: String(r.headers['patchops-delivery']),
        type: String(r.headers['patchops-event']),
        payload: JSON.parse(r.body) as Record<string, unknown>,
      }));
  }
}

// ---------------------------------------------------------------- the product under test

const silent = createLogger('silent');
let db: TestDatabase;
let box: SecretBox;
let api: FastifyInstance;
let apiUrl: string;
let strictApi: FastifyInstance;
let strictApiUrl: string;
const receivers: TestReceiver[] = [];

/** The API helper provides the real one; this one believes two headers. */
async function testAuthorize(req: FastifyRequest, scope: WebhookScope): Promise<string> {
  const who = req.headers['x-test-identity'];
  if (typeof who !== 'string') throw new CodedError(ErrorCode.Unauthorized, 'no identity');
  if (scope === 'admin' && req.headers['x-test-scope'] !== 'admin')
    throw new CodedError(ErrorCode.Forbidden, 'this needs the admin scope');
  return who;
}

const ADMIN = { 'x-test-identity': 'web:alice', 'x-test-scope': 'admin' };
const READER = { 'x-test-identity': 'web:bob', 'x-test-scope': 'read' };

async function call(base: string, method: string, path: string, headers: Record<string, string>, body?: unknown) {
  const res = await fetch(`${base}${path}`, {
    method,
    headers: { ...headers, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, json: (text ? JSON.parse(text) : null) as Record<string, unknown> };
}

function deliverer(o: Partial<WebhookDelivererOptions> = {}) {
  return createWebhookDeliverer({
    db: db.db,
    box,
    logger: silent,
    allowPrivate: true,
    retryDelaysSeconds: [0.2, 0.2, 0.2],
    slaSweepMs: 0,
    ...o,
  });
}

async function newReceiver(): Promise<TestReceiver> {
  const r = new TestReceiver();
  receivers.push(r);
  await r.listen();
  return r;
}

/** Registers `receiver` over HTTP as an admin and hands it the secret shown once. */
async function register(receiver: TestReceiver, eventTypes?: string[]): Promise<string> {
  const res = await call(apiUrl, 'POST', '/api/v1/webhooks', ADMIN, {
    url: receiver.url,
    ...(eventTypes ? { eventTypes } : {}),
  });
  expect(res.status).toBe(201);
  receiver.secret = res.json.secret as string;
  return (res.json.endpoint as { id: string }).id;
}

async function newCycle(): Promise<string> {
  const cycleId = `c-${randomUUID().slice(0, 8)}`;
  await createCycleRow(db.db, {
    cycleId,
    workflowId: `patch-cycle:${cycleId}`,
    policyName: 'default',
    policyVersion: 1,
    scope: {},
    emergency: false,
    requestedBy: 'cli:requester',
  });
  return cycleId;
}

async function deliveriesOf(endpointId: string): Promise<WebhookDeliverySummary[]> {
  return listWebhookDeliveries(db.db, { endpointId });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

beforeAll(async () => {
  db = await createTestDatabase();
  box = SecretBox.ephemeral();
  api = await buildServer({
    logger: silent,
    health: [],
    routes: [webhookRoutes({ db: db.db, box, authorize: testAuthorize, allowPrivate: true })],
  });
  apiUrl = await api.listen({ host: '127.0.0.1', port: 0 });
  strictApi = await buildServer({
    logger: silent,
    health: [],
    routes: [webhookRoutes({ db: db.db, box, authorize: testAuthorize })],
  });
  strictApiUrl = await strictApi.listen({ host: '127.0.0.1', port: 0 });
});
afterEach(async () => {
  // Each test's endpoints go, so the next test's events reach only its own.
  await db.db.delete(webhookEndpoints);
  await feedWebhookOutbox(db.db);
});
afterAll(async () => {
  for (const r of receivers) await r.close();
  await api?.close();
  await strictApi?.close();
  await db?.close();
});

describe('outbound webhooks', () => {
  it('delivers a stage change signed so that the receiver verifies it, and the receiver refuses a tampered body', async () => {
    const receiver = await newReceiver();
    const endpointId = await register(receiver);
    const cycleId = await newCycle();
    await recordStageChange(db.db, { cycleId, stage: 'ASSESS', actor: 'system:workflow', detail: { inScope: 3 } });
    const d = deliverer();
    await d.tick();

    // Deliveries go out concurrently and may arrive in any order (docs/webhooks.md): order by event id.
    const got = receiver
      .events()
      .sort((x, y) => Number(String(x.payload.id).slice(4)) - Number(String(y.payload.id).slice(4)));
    expect(receiver.received.every((r) => r.verified)).toBe(true);
    expect(got.map((e) => e.type)).toEqual(['cycle.started', 'cycle.stage_changed']);
    const stage = got[1]!;
    expect(stage.payload).toMatchObject({
      type: 'cycle.stage_changed',
      actor: 'system:workflow',
      cycle: { id: cycleId, policyName: 'default', requestedBy: 'cli:requester' },
      data: { stage: 'ASSESS', inScope: 3 },
    });
    expect(stage.payload.id).toMatch(/^evt_\d+$/);
    const rows = await deliveriesOf(endpointId);
    expect(rows.map((r) => [r.status, r.attempts, r.lastHttpStatus])).toEqual([
      ['delivered', 1, 204],
      ['delivered', 1, 204],
    ]);
    expect(rows.map((r) => r.id).sort()).toEqual(got.map((e) => e.delivery).sort());

    // The same signature over a changed body, sent over HTTP: refused.
    const original = receiver.received.find((r) => r.body.includes('"ASSESS"'))!;
    const tampered = original.body.replace('"ASSESS"', '"COMPLETED"');
    const res = await fetch(receiver.url, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'patchops-signature': String(original.headers['patchops-signature']),
      },
      body: tampered,
    });
    expect(res.status).toBe(401);
    expect(receiver.received.at(-1)!.verified).toBe(false);
  });

  it('delivers again after the receiver was down: connection refused, then HTTP 500, then delivered', async () => {
    const receiver = await newReceiver();
    const endpointId = await register(receiver, ['cycle.vote']);
    const port = receiver.port;
    await receiver.close(); // nothing listens: connection refused
    const cycleId = await newCycle();
    await recordVoteRow(db.db, {
      cycleId,
      identity: 'slack:U1',
      channel: 'slack',
      decision: 'approve',
      at: new Date(),
    });
    const d = deliverer();

    expect(await d.tick()).toBe(1);
    let [row] = await deliveriesOf(endpointId);
    expect(row).toMatchObject({ status: 'pending', attempts: 1, lastHttpStatus: null });
    expect(row!.lastError).toMatch(/ECONNREFUSED/);
    expect(await d.tick()).toBe(0); // not due before its backoff

    await receiver.listen(port);
    receiver.answer = 500;
    await sleep(300);
    expect(await d.tick()).toBe(1);
    [row] = await deliveriesOf(endpointId);
    expect(row).toMatchObject({ status: 'pending', attempts: 2, lastHttpStatus: 500 });

    receiver.answer = 200;
    await sleep(300);
    expect(await d.tick()).toBe(1);
    [row] = await deliveriesOf(endpointId);
    expect(row).toMatchObject({ status: 'delivered', attempts: 3, lastHttpStatus: 200, lastError: null });
    const got = receiver.events();
    expect(got.map((e) => e.payload.type)).toEqual(['cycle.vote', 'cycle.vote']); // the 500 and the success, one delivery
    expect(new Set(got.map((e) => e.delivery))).toEqual(new Set([row!.id]));
    expect(got[1]!.payload).toMatchObject({ data: { decision: 'approve', channel: 'slack' }, actor: 'slack:U1' });
  });

  it('fails a delivery for good when its attempts run out, and a replay over HTTP delivers it again', async () => {
    const receiver = await newReceiver();
    receiver.answer = 503;
    const endpointId = await register(receiver, ['cycle.completed']);
    const cycleId = await newCycle();
    await recordStageChange(db.db, { cycleId, stage: 'COMPLETED', actor: 'system:workflow' });
    const outcomes: DeliveryOutcome[] = [];
    const d = deliverer({ retryDelaysSeconds: [0.1], onOutcome: (o) => outcomes.push(o) });
    await d.tick();
    await sleep(200);
    await d.tick();
    let [row] = await deliveriesOf(endpointId);
    expect(row).toMatchObject({ status: 'failed', attempts: 2, lastHttpStatus: 503 });
    expect(outcomes).toEqual(['retrying', 'failed']);

    // Read scope may list but not replay.
    const listed = await call(
      apiUrl,
      'GET',
      `/api/v1/webhooks/deliveries?endpoint=${endpointId}&status=failed`,
      READER,
    );
    expect(listed.status).toBe(200);
    expect((listed.json.deliveries as WebhookDeliverySummary[]).map((x) => x.id)).toEqual([row!.id]);
    expect((await call(apiUrl, 'POST', `/api/v1/webhooks/deliveries/${row!.id}/replay`, READER)).status).toBe(403);
    expect((await call(apiUrl, 'POST', '/api/v1/webhooks/deliveries/whd_nope/replay', ADMIN)).status).toBe(404);

    receiver.answer = 200;
    const replay = await call(apiUrl, 'POST', `/api/v1/webhooks/deliveries/${row!.id}/replay`, ADMIN);
    expect(replay.status).toBe(202);
    await d.tick();
    [row] = await deliveriesOf(endpointId);
    expect(row).toMatchObject({ status: 'delivered', attempts: 1, lastHttpStatus: 200 });
    const got = receiver.events();
    expect(got).toHaveLength(3);
    expect(new Set(got.map((e) => e.payload.id)).size).toBe(1); // the same event each time
    expect(got.every((e) => e.delivery === row!.id && e.type === 'cycle.completed')).toBe(true);

    // Replay of a delivered one sends it once more.
    expect((await call(apiUrl, 'POST', `/api/v1/webhooks/deliveries/${row!.id}/replay`, ADMIN)).status).toBe(202);
    await d.tick();
    expect(receiver.events()).toHaveLength(4);
    const audited = await db.db.select().from(auditLog).where(eq(auditLog.action, 'webhook.delivery.replayed'));
    expect(audited.filter((a) => a.subjectId === row!.id).map((a) => a.actor)).toEqual(['web:alice', 'web:alice']);
  });

  it('a delivery claimed by a deliverer that died is sent when its lease ends, and the late outcome of the dead claim is ignored', async () => {
    const receiver = await newReceiver();
    const endpointId = await register(receiver, ['cycle.paused']);
    const cycleId = await newCycle();
    await appendAudit(db.db, {
      actor: 'cli:ops',
      action: 'cycle.paused',
      subjectType: 'cycle',
      subjectId: cycleId,
      details: { installsHeld: 4 },
    });
    await feedWebhookOutbox(db.db);
    // A deliverer claims it and dies before sending (its lease: 1 s).
    const [dead] = await claimDueDeliveries(db.db, { limit: 10, leaseSeconds: 1 });
    expect(dead).toMatchObject({ endpointId, attempts: 1 });
    const d = deliverer();
    expect(await d.tick()).toBe(0); // still leased
    await sleep(1100);
    // Another deliverer claims it again (and dies too); the first one's late answer no longer counts.
    const [second] = await claimDueDeliveries(db.db, { limit: 10, leaseSeconds: 1 });
    expect(second).toMatchObject({ id: dead!.id, attempts: 2 });
    expect(await recordFailedAttempt(db.db, dead!, { httpStatus: 500, error: 'late', retryInSeconds: 0 })).toBe(false);
    expect((await deliveriesOf(endpointId))[0]).toMatchObject({
      status: 'pending',
      lastError: null,
      lastHttpStatus: null,
    });
    await sleep(1100);
    expect(await d.tick()).toBe(1);
    const [row] = await deliveriesOf(endpointId);
    expect(row).toMatchObject({ status: 'delivered', attempts: 3, lastHttpStatus: 204, lastError: null });
    expect(receiver.events().map((e) => [e.type, e.payload.data])).toEqual([['cycle.paused', { installsHeld: 4 }]]);
  });

  it('two deliverers running at once never deliver one delivery twice', async () => {
    const receiver = await newReceiver();
    receiver.delayMs = 20;
    const endpointId = await register(receiver, ['cycle.stage_changed']);
    const cycleId = await newCycle();
    const stages = [
      'IDENTIFY',
      'ASSESS',
      'TEST',
      'AWAIT_APPROVAL',
      'SCHEDULED',
      'DEPLOYING',
      'VERIFYING',
      'REPORTING',
    ] as const;
    for (let i = 0; i < 40; i++)
      await recordStageChange(db.db, {
        cycleId,
        stage: stages[i % stages.length]!,
        actor: 'system:workflow',
        detail: { n: i },
      });
    // Two servers: two pools on the one database, each acting as the application's role as servers do.
    const pools: Database[] = [
      connectDatabase(db.url, { max: 3, role: APP_ROLE }),
      connectDatabase(db.url, { max: 3, role: APP_ROLE }),
    ];
    try {
      const attempted = [0, 0];
      const ds = pools.map((p, i) =>
        createWebhookDeliverer({
          db: p.db,
          box,
          logger: silent,
          allowPrivate: true,
          batch: 3,
          slaSweepMs: 0,
          onOutcome: () => attempted[i]!++,
        }),
      );
      const until = Date.now() + 30_000;
      await Promise.all(
        ds.map(async (d) => {
          while (Date.now() < until) {
            if (
              (await d.tick()) === 0 &&
              (await deliveriesOf(endpointId)).every((r) => r.status === 'delivered') &&
              (await deliveriesOf(endpointId)).length === 40
            )
              return;
          }
        }),
      );
      const rows = await deliveriesOf(endpointId);
      expect(rows).toHaveLength(40);
      expect(rows.every((r) => r.status === 'delivered' && r.attempts === 1)).toBe(true);
      const perDelivery = new Map<string, number>();
      for (const e of receiver.events()) perDelivery.set(e.delivery, (perDelivery.get(e.delivery) ?? 0) + 1);
      expect(perDelivery.size).toBe(40);
      expect([...perDelivery.values()].every((n) => n === 1)).toBe(true);
      // Both took part, so they really ran at the same time.
      expect(attempted[0]).toBeGreaterThan(0);
      expect(attempted[1]).toBeGreaterThan(0);
      expect(attempted[0]! + attempted[1]!).toBe(40);
    } finally {
      for (const p of pools) await p.close();
    }
  });

  it('refuses a private address without WEBHOOK_ALLOW_PRIVATE, at registration and at delivery', async () => {
    const receiver = await newReceiver();
    const refused = await call(strictApiUrl, 'POST', '/api/v1/webhooks', ADMIN, { url: receiver.url });
    expect(refused.status).toBe(403);
    expect(refused.json.message).toMatch(/127\.0\.0\.1.*WEBHOOK_ALLOW_PRIVATE/s);
    // A hostname is resolved and each address checked: localhost is loopback too.
    const byName = await call(strictApiUrl, 'POST', '/api/v1/webhooks', ADMIN, {
      url: `http://localhost:${receiver.port}/x`,
    });
    expect(byName.status).toBe(403);

    // An endpoint registered while private targets were allowed is still refused by a deliverer that does not allow them.
    const { endpoint, secret } = await createWebhookEndpoint(db.db, box, {
      url: receiver.url,
      eventTypes: [],
      createdBy: 'web:alice',
    });
    receiver.secret = secret;
    const cycleId = await newCycle();
    await recordStageChange(db.db, { cycleId, stage: 'CANCELLED', actor: 'cli:ops' });
    await deliverer({ allowPrivate: false }).tick();
    expect(receiver.received).toHaveLength(0);
    const rows = await deliveriesOf(endpoint.id);
    expect(rows).toHaveLength(2);
    for (const r of rows) {
      expect(r).toMatchObject({ status: 'pending', attempts: 1, lastHttpStatus: null });
      expect(r.lastError).toMatch(/loopback, private, link-local/);
    }
  });

  it('connects to the addresses it checked (the resolver answer), never asking DNS a second time', async () => {
    const receiver = await newReceiver();
    // `.invalid` never resolves in DNS (RFC 6761): only the checked answer can have led the request to the receiver.
    const { endpoint, secret } = await createWebhookEndpoint(db.db, box, {
      url: `http://hooks.invalid:${receiver.port}/x`,
      eventTypes: ['cycle.cancelled'],
      createdBy: 'web:alice',
    });
    receiver.secret = secret;
    const asked: string[] = [];
    const resolve = async (host: string) => {
      asked.push(host);
      return [{ address: '127.0.0.1', family: 4 as const }];
    };
    await recordStageChange(db.db, { cycleId: await newCycle(), stage: 'CANCELLED', actor: 'cli:ops' });
    await deliverer({ resolve }).tick();
    expect(asked).toEqual(['hooks.invalid']);
    expect(receiver.events().map((e) => e.type)).toEqual(['cycle.cancelled']);
    expect((await deliveriesOf(endpoint.id))[0]).toMatchObject({ status: 'delivered' });
    // Without the setting, the same answer is refused before any connection.
    await recordStageChange(db.db, { cycleId: await newCycle(), stage: 'CANCELLED', actor: 'cli:ops' });
    await deliverer({ resolve, allowPrivate: false }).tick();
    expect(receiver.received).toHaveLength(1);
  });

  it('registers, lists, pauses and deletes endpoints over HTTP: secret shown once, sealed at rest, scopes enforced, audited', async () => {
    const receiver = await newReceiver();
    expect((await call(apiUrl, 'POST', '/api/v1/webhooks', READER, { url: receiver.url })).status).toBe(403);
    expect((await call(apiUrl, 'GET', '/api/v1/webhooks', {})).status).toBe(401);
    expect((await call(apiUrl, 'POST', '/api/v1/webhooks', ADMIN, { url: 'ftp://example.com/x' })).status).toBe(400);
    expect(
      (await call(apiUrl, 'POST', '/api/v1/webhooks', ADMIN, { url: receiver.url, eventTypes: ['cycle.exploded'] }))
        .status,
    ).toBe(400);

    const created = await call(apiUrl, 'POST', '/api/v1/webhooks', ADMIN, {
      url: receiver.url,
      eventTypes: ['cycle.failed', 'cycle.completed'],
      description: 'SOAR',
    });
    expect(created.status).toBe(201);
    const secret = created.json.secret as string;
    expect(secret).toMatch(/^whsec_/);
    const id = (created.json.endpoint as { id: string }).id;
    const [stored] = await db.db.select().from(webhookEndpoints).where(eq(webhookEndpoints.id, id));
    expect(stored!.secretSealed).not.toContain(secret);
    expect(box.open(stored!.secretSealed)).toBe(secret);

    const listed = await call(apiUrl, 'GET', '/api/v1/webhooks', READER);
    expect(listed.status).toBe(200);
    expect(JSON.stringify(listed.json)).not.toContain(secret);
    expect(listed.json.endpoints).toEqual([
      expect.objectContaining({
        id,
        url: receiver.url,
        eventTypes: ['cycle.completed', 'cycle.failed'],
        description: 'SOAR',
        enabled: true,
        createdBy: 'web:alice',
      }),
    ]);

    // Off: events meanwhile are not enqueued for it; on again with other types.
    expect((await call(apiUrl, 'PATCH', `/api/v1/webhooks/${id}`, READER, { enabled: false })).status).toBe(403);
    expect((await call(apiUrl, 'PATCH', `/api/v1/webhooks/${id}`, ADMIN, {})).status).toBe(400);
    expect((await call(apiUrl, 'PATCH', '/api/v1/webhooks/whe_nope', ADMIN, { enabled: false })).status).toBe(404);
    const off = await call(apiUrl, 'PATCH', `/api/v1/webhooks/${id}`, ADMIN, { enabled: false });
    expect(off.json.endpoint).toMatchObject({ enabled: false });
    await recordStageChange(db.db, { cycleId: await newCycle(), stage: 'FAILED', actor: 'system:workflow' });
    await feedWebhookOutbox(db.db);
    expect(await deliveriesOf(id)).toHaveLength(0);
    const on = await call(apiUrl, 'PATCH', `/api/v1/webhooks/${id}`, ADMIN, {
      enabled: true,
      eventTypes: ['sla.breached'],
    });
    expect(on.json.endpoint).toMatchObject({ enabled: true, eventTypes: ['sla.breached'] });

    expect((await call(apiUrl, 'DELETE', `/api/v1/webhooks/${id}`, READER)).status).toBe(403);
    expect((await call(apiUrl, 'DELETE', `/api/v1/webhooks/${id}`, ADMIN)).status).toBe(204);
    expect((await call(apiUrl, 'DELETE', `/api/v1/webhooks/${id}`, ADMIN)).status).toBe(404);
    const audit = await db.db.select().from(auditLog).where(like(auditLog.action, 'webhook.endpoint.%'));
    expect(audit.filter((a) => a.subjectId === id).map((a) => [a.action, a.actor])).toEqual([
      ['webhook.endpoint.created', 'web:alice'],
      ['webhook.endpoint.updated', 'web:alice'],
      ['webhook.endpoint.updated', 'web:alice'],
      ['webhook.endpoint.deleted', 'web:alice'],
    ]);
  });

  it('sends an endpoint only the types it asked for, and nothing from before it was registered', async () => {
    const earlier = await newCycle();
    await recordStageChange(db.db, { cycleId: earlier, stage: 'FAILED', actor: 'system:workflow', reason: 'before' });
    const receiver = await newReceiver();
    const endpointId = await register(receiver, ['cycle.failed']);
    const cycleId = await newCycle();
    await recordStageChange(db.db, { cycleId, stage: 'DEPLOYING', actor: 'system:workflow' });
    await recordStageChange(db.db, {
      cycleId,
      stage: 'FAILED',
      actor: 'system:workflow',
      detail: { why: 'wave 1 tripped' },
    });
    await deliverer().tick();
    const got = receiver.events();
    expect(got.map((e) => [e.type, (e.payload.cycle as { id: string }).id])).toEqual([['cycle.failed', cycleId]]);
    expect(got[0]!.payload.data).toEqual({ stage: 'FAILED', why: 'wave 1 tripped' });
    expect(await deliveriesOf(endpointId)).toHaveLength(1);
  });

  it('reads a backlog in batches, skipping entries that announce nothing, and leaves the cursor at the head', async () => {
    const receiver = await newReceiver();
    const endpointId = await register(receiver, ['cycle.stage_changed']);
    const cycleId = await newCycle();
    for (const stage of ['ASSESS', 'TEST', 'SCHEDULED', 'DEPLOYING', 'VERIFYING'] as const) {
      await recordStageChange(db.db, { cycleId, stage, actor: 'system:workflow' });
      await appendAudit(db.db, { actor: 'web:alice', action: 'login', subjectType: 'web_user', subjectId: 'alice' });
    }
    const feeds = [];
    for (let more = true; more;) {
      const r = await feedWebhookOutbox(db.db, { batch: 2 });
      feeds.push([r.read, r.enqueued]);
      more = r.more;
    }
    // cycle.started + 5 stage changes match; the 5 logins are skipped; 5 stage changes are enqueued for this endpoint.
    expect(feeds).toEqual([
      [2, 1],
      [2, 2],
      [2, 2],
      [0, 0],
    ]);
    expect(await deliveriesOf(endpointId)).toHaveLength(5);
    const [cursor] = await db.db.select().from(webhookOutboxCursor);
    const [head] = await db.db.select({ id: auditLog.id }).from(auditLog).orderBy(desc(auditLog.id)).limit(1);
    expect(cursor!.lastAuditId).toBe(head!.id);
    expect(await feedWebhookOutbox(db.db)).toEqual({ read: 0, enqueued: 0, more: false });
  });

  it('records each SLA breach once (two sweeps at once included) and announces it as sla.breached', async () => {
    const receiver = await newReceiver();
    await register(receiver, ['sla.breached']);
    const host = `sla-${randomUUID().slice(0, 6)}`;
    await db.db
      .insert(endpoints)
      .values({ id: host, machineId: `m-${host}`, hostname: `${host}.example.test`, osFamily: 'windows' });
    await db.db.insert(patches).values({
      id: `KB-${host}`,
      title: 'Critical update',
      vendor: 'Microsoft',
      type: 'security',
      severity: 'critical',
      osFamily: 'windows',
    });
    await db.db.insert(endpointPatches).values({
      endpointId: host,
      patchId: `KB-${host}`,
      state: 'missing',
      detectedAt: new Date(Date.now() - 40 * 86_400_000),
    });

    const [a, b] = await Promise.all([recordNewSlaBreaches(db.db), recordNewSlaBreaches(db.db)]);
    expect(a! + b!).toBe(1);
    expect(await recordNewSlaBreaches(db.db)).toBe(0);
    await deliverer().tick();
    const got = receiver.events();
    expect(got).toHaveLength(1);
    expect(got[0]!.payload).toMatchObject({
      type: 'sla.breached',
      actor: 'system:sla',
      data: { breaches: [{ endpointId: host, patchId: `KB-${host}`, severity: 'critical', daysOverdue: 26 }] },
    });
  });
});
