/**
 * The shared sign-in throttle: the same backoff as the in-memory one (the domain's rule), counted across server
 * processes (two throttles on one database are one count), and no failure lost when two servers count at once.
 */
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../test/helpers/db';
import { PgLoginThrottle } from './login-failures';

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
}, 60_000);
afterAll(async () => {
  await db?.close();
});

describe('PgLoginThrottle', () => {
  it('lets the free failures through, then locks for 1 s, 2 s, 4 s … up to the cap', async () => {
    const t = new PgLoginThrottle(db.db, { freeFailures: 5, baseDelayMs: 1000, maxDelayMs: 8000 });
    const keys = ['ip:192.0.2.1', 'user:alice'];
    let now = Date.parse('2026-12-05T00:00:00Z');
    for (let i = 0; i < 5; i++) {
      await t.failure(keys, now);
      expect(await t.retryAfterMs(keys, now)).toBe(0);
    }
    const waits: number[] = [];
    for (let i = 0; i < 6; i++) {
      await t.failure(keys, now);
      waits.push(await t.retryAfterMs(keys, now));
      now += waits[waits.length - 1]!;
      expect(await t.retryAfterMs(keys, now)).toBe(0);
    }
    expect(waits).toEqual([1000, 2000, 4000, 8000, 8000, 8000]);
  });

  it('two servers count one key together: failures on one lock the key on the other; a success clears the user name only', async () => {
    const [a, b] = [
      new PgLoginThrottle(db.db, { freeFailures: 2, baseDelayMs: 5000 }),
      new PgLoginThrottle(db.db, { freeFailures: 2, baseDelayMs: 5000 }),
    ];
    const now = Date.parse('2026-12-05T01:00:00Z');
    const keys = ['ip:198.51.100.7', 'user:bob'];
    await a.failure(keys, now);
    await b.failure(keys, now);
    expect(await a.retryAfterMs(keys, now)).toBe(0);
    await a.failure(keys, now);
    expect(await b.retryAfterMs(keys, now)).toBe(5000);
    await b.success('user:bob');
    expect(await a.retryAfterMs(['user:bob'], now)).toBe(0);
    expect(await a.retryAfterMs(['ip:198.51.100.7'], now)).toBe(5000);
  });

  it('failures counted at once by two servers are all counted', async () => {
    const [a, b] = [
      new PgLoginThrottle(db.db, { freeFailures: 10, baseDelayMs: 1000 }),
      new PgLoginThrottle(db.db, { freeFailures: 10, baseDelayMs: 1000 }),
    ];
    const now = Date.parse('2026-12-05T02:00:00Z');
    await Promise.all(
      Array.from({ length: 11 }, (_, i) => (i % 2 ? a : b).failure(['ip:203.0.113.5', 'user:carol'], now)),
    );
    expect(await a.retryAfterMs(['user:carol'], now)).toBe(1000);
    expect(await b.retryAfterMs(['ip:203.0.113.5'], now)).toBe(1000);
  });

  it('forgets a key after a quiet day, and keeps at most maxKeys', async () => {
    const t = new PgLoginThrottle(
      db.db,
      { freeFailures: 1, baseDelayMs: 1000, forgetAfterMs: 86_400_000, maxKeys: 3 },
      1,
    );
    const t0 = Date.parse('2026-12-06T00:00:00Z');
    await t.failure(['ip:q'], t0);
    await t.failure(['ip:q'], t0);
    expect(await t.retryAfterMs(['ip:q'], t0)).toBe(1000);
    await t.failure(['ip:q'], t0 + 86_400_001 + 1000);
    expect(await t.retryAfterMs(['ip:q'], t0 + 86_400_001 + 1000)).toBe(0);
    const later = t0 + 90_000_000;
    for (const k of ['ip:r', 'ip:s', 'ip:t', 'ip:u']) await t.failure([k], later);
    const n = (await db.db.execute<{ n: number }>(sql`select count(*)::int as n from login_failures`)).rows[0]!.n;
    expect(n).toBeLessThanOrEqual(3);
  });
});
