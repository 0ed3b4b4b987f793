/** The shared message ledger against the real schema: reserve → post → record, release on failure, post once. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../../test/helpers/db';
import { findChatMessage, type ChatMessageKey } from '../../db/chat';
import { MessageLedger } from './ledger';

let db: TestDatabase;
let ledger: MessageLedger;

beforeAll(async () => {
  db = await createTestDatabase();
  ledger = new MessageLedger(db.db);
}, 60_000);
afterAll(async () => {
  await db?.close();
});

const key = (k: string): ChatMessageKey => ({ cycleId: 'cyc-ledger', platform: 'slack', conversationId: 'C1', key: k });

describe('MessageLedger', () => {
  it('posts once under a key, records the reference and what was stored with it; a second post returns the stored message', async () => {
    const sends: string[] = [];
    const delivery = { what: 'Slack chat.postMessage to C1', send: async () => (sends.push('x'), 'C1:1.1') };
    const first = await ledger.postOnce(key('approval'), delivery, { model: { a: 1 }, threadRef: 'C1:0.1' });
    expect(first).toEqual({ posted: true, ref: 'C1:1.1' });
    const again = await ledger.postOnce(key('approval'), delivery, { model: { a: 2 } });
    expect(again).toEqual({
      posted: false,
      existing: { ...key('approval'), messageRef: 'C1:1.1', threadRef: 'C1:0.1', model: { a: 1 } },
    });
    expect(sends).toHaveLength(1);
  });

  it('releases the reservation when the post fails, with a retryable INTEGRATION_FAILED naming what failed; the retry posts', async () => {
    const failing = {
      what: 'Teams post to conversation C1',
      send: async (): Promise<string> => Promise.reject(new Error('connector said 502')),
    };
    await expect(ledger.postOnce(key('summary'), failing)).rejects.toMatchObject({
      code: 'INTEGRATION_FAILED',
      retryable: true,
      message: 'Teams post to conversation C1 failed: connector said 502',
    });
    expect(await findChatMessage(db.db, key('summary'))).toBeNull();
    const retry = await ledger.postOnce(key('summary'), { what: 'x', send: async () => 'act-1' });
    expect(retry).toEqual({ posted: true, ref: 'act-1' });
  });

  it('gives concurrent posts of one key a single send; the others see the message in flight or stored', async () => {
    let sends = 0;
    const slow = {
      what: 'x',
      send: async () => {
        sends++;
        await new Promise((r) => setTimeout(r, 50));
        return 'C1:2.2';
      },
    };
    const results = await Promise.all([1, 2, 3, 4].map(() => ledger.postOnce(key('stage:DEPLOYING'), slow)));
    expect(sends).toBe(1);
    expect(results.filter((r) => r.posted)).toHaveLength(1);
  });
});
