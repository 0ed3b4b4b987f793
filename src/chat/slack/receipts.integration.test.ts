/**
 * Slack retries across servers: two servers (each its own receiver, as two `patchops server` processes behind a
 * load balancer) share the delivery receipts in PostgreSQL, so Slack's retry of an event taken by one server is
 * acknowledged by the other without being processed again.
 */
import Fastify, { type FastifyInstance } from 'fastify';
import type { App, ReceiverEvent } from '@slack/bolt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../../test/helpers/db';
import { PgDeliveryReceipts } from '../../db/delivery-receipts';
import { createLogger } from '../../logging';
import { FastifySlackReceiver } from './receiver';
import { signedSlackHeaders } from './signing';

const SECRET = 'receipts-test-secret';
let db: TestDatabase;
const servers: FastifyInstance[] = [];
const processed: string[] = [];

async function server(name: string): Promise<FastifyInstance> {
  const receiver = new FastifySlackReceiver({
    signingSecret: SECRET,
    logger: createLogger('silent'),
    receipts: new PgDeliveryReceipts(db.db),
  });
  receiver.init({
    processEvent: async (e: ReceiverEvent) => {
      processed.push(`${name}:${String((e.body as { event_id?: string }).event_id)}`);
      await e.ack();
    },
  } as unknown as App);
  const app = Fastify();
  await app.register(receiver.routes());
  await app.ready();
  servers.push(app);
  return app;
}

const event = (id: string) =>
  JSON.stringify({
    type: 'event_callback',
    team_id: 'T1',
    api_app_id: 'A1',
    event_id: id,
    event_time: 1,
    event: { type: 'app_mention', user: 'U1', text: '<@B1> status', channel: 'C1', ts: '1.1' },
  });

beforeAll(async () => {
  db = await createTestDatabase();
}, 60_000);
afterAll(async () => {
  await Promise.all(servers.map((s) => s.close()));
  await db?.close();
});

describe('Slack delivery receipts shared by servers', () => {
  it('a retry of an event taken by server A, arriving at server B, is acknowledged and not processed again; another event is', async () => {
    const [a, b] = [await server('a'), await server('b')];
    const post = (s: FastifyInstance, body: string, retry?: number) =>
      s.inject({
        method: 'POST',
        url: '/slack/events',
        payload: body,
        headers: {
          ...signedSlackHeaders(SECRET, body, { contentType: 'application/json' }),
          ...(retry ? { 'x-slack-retry-num': String(retry), 'x-slack-retry-reason': 'http_timeout' } : {}),
        },
      });

    expect((await post(a, event('Ev1'))).statusCode).toBe(200);
    expect((await post(b, event('Ev1'), 1)).statusCode).toBe(200);
    expect((await post(a, event('Ev1'), 2)).statusCode).toBe(200);
    expect((await post(b, event('Ev2'))).statusCode).toBe(200);
    expect(processed).toEqual(['a:Ev1', 'b:Ev2']);
  });

  it('a receipt is claimable again once its TTL has passed, and at once when released', async () => {
    const receipts = new PgDeliveryReceipts(db.db);
    expect(await receipts.claim('k-ttl', 50)).toBe(true);
    expect(await receipts.claim('k-ttl', 50)).toBe(false);
    await new Promise((r) => setTimeout(r, 80));
    expect(await receipts.claim('k-ttl', 60_000)).toBe(true);
    expect(await receipts.claim('k-ttl', 60_000)).toBe(false);
    await receipts.release('k-ttl');
    expect(await receipts.claim('k-ttl', 60_000)).toBe(true);
  });

  it('two servers claiming one key at once: exactly one wins', async () => {
    const [x, y] = [new PgDeliveryReceipts(db.db), new PgDeliveryReceipts(db.db)];
    const wins = await Promise.all(Array.from({ length: 20 }, (_, i) => (i % 2 ? x : y).claim('k-race', 60_000)));
    expect(wins.filter(Boolean)).toHaveLength(1);
  });
});
