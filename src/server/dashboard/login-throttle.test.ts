import { describe, expect, it } from 'vitest';
import { MemoryLoginThrottle as LoginThrottle } from './login-throttle';

describe('LoginThrottle', async () => {
  it('lets the free failures through, then locks for 1 s, 2 s, 4 s … up to the cap', async () => {
    const t = new LoginThrottle({ freeFailures: 5, baseDelayMs: 1000, maxDelayMs: 8000 });
    const keys = ['ip:192.0.2.1', 'user:alice'];
    let now = 0;
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

  it('holds a request when any one of its keys is locked', async () => {
    const t = new LoginThrottle({ freeFailures: 0, baseDelayMs: 5000 });
    await t.failure(['user:alice'], 0);
    expect(await t.retryAfterMs(['ip:192.0.2.9', 'user:alice'], 1000)).toBe(4000);
    expect(await t.retryAfterMs(['ip:192.0.2.9', 'user:bob'], 1000)).toBe(0);
  });

  it('a success clears the user name, not the address', async () => {
    const t = new LoginThrottle({ freeFailures: 0, baseDelayMs: 5000 });
    await t.failure(['ip:192.0.2.1', 'user:alice'], 0);
    await t.success('user:alice');
    expect(await t.retryAfterMs(['user:alice'], 0)).toBe(0);
    expect(await t.retryAfterMs(['ip:192.0.2.1'], 0)).toBe(5000);
  });

  it('forgets a key after a quiet day, and keeps at most maxKeys', async () => {
    const t = new LoginThrottle({ freeFailures: 1, baseDelayMs: 1000, forgetAfterMs: 86_400_000, maxKeys: 3 });
    await t.failure(['ip:a'], 0);
    await t.failure(['ip:a'], 0);
    expect(await t.retryAfterMs(['ip:a'], 0)).toBe(1000);
    await t.failure(['ip:a'], 86_400_001 + 1000);
    expect(await t.retryAfterMs(['ip:a'], 86_400_001 + 1000)).toBe(0);
    for (const k of ['ip:b', 'ip:c', 'ip:d']) await t.failure([k], 90_000_000);
    await t.failure(['ip:b'], 90_000_000);
    expect(await t.retryAfterMs(['ip:b'], 90_000_000)).toBe(1000);
  });
});
