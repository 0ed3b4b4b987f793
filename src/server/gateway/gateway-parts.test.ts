import { generateKeyPairSync } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { verifyDownloadToken } from '../../shared/download-token';
import { DOWNLOAD_TOKEN_TTL_SECONDS, DownloadTokenIssuer } from './download-tokens';
import { NodeKeyCache } from './node-key-cache';
import { PollSlots } from './poll-slots';
import { ReloadedValue } from './reloaded-value';
import { RetryingLazy } from './retrying-lazy';
import { SeenBatch } from './seen-batch';
import { TtlCache } from './ttl-cache';
import { HINT_STALE_MS, WorkHint } from './work-hint';
import { WorkWaiters } from './work-waiters';

/** A clock the test moves by hand. */
function fakeClock(start = 1_800_000_000_000) {
  let t = start;
  const clock = () => t;
  return { clock, advance: (ms: number) => void (t += ms) };
}

describe('TtlCache', () => {
  it('answers an entry until its time is up, then forgets it', () => {
    const { clock, advance } = fakeClock();
    const c = new TtlCache<string, number>({ ttlMs: 2000, maxEntries: 10, clock });
    c.set('a', 1);
    advance(1999);
    expect(c.get('a')).toBe(1);
    expect(c.has('a')).toBe(true);
    advance(1);
    expect(c.get('a')).toBeUndefined();
    expect(c.has('a')).toBe(false);
  });

  it('starts over once it holds more than maxEntries, and deletes on request', () => {
    const { clock } = fakeClock();
    const c = new TtlCache<number, true>({ ttlMs: 1000, maxEntries: 2, clock });
    for (const k of [1, 2, 3]) c.set(k, true);
    expect(c.size).toBe(3);
    c.set(4, true);
    expect(c.size).toBe(1);
    expect(c.has(1)).toBe(false);
    c.delete(4);
    expect(c.has(4)).toBe(false);
  });
});

describe('NodeKeyCache', () => {
  it('forgets one key, or every key of an endpoint', () => {
    const keys = new NodeKeyCache();
    keys.remember('h1', { endpointId: 'ep-1', site: 'berlin' });
    keys.remember('h2', { endpointId: 'ep-1', site: 'berlin' });
    keys.remember('h3', { endpointId: 'ep-2', site: null });
    keys.forget('h1');
    expect(keys.get('h1')).toBeUndefined();
    expect(keys.get('h2')).toEqual({ endpointId: 'ep-1', site: 'berlin' });
    keys.forgetEndpoint('ep-1');
    expect(keys.get('h2')).toBeUndefined();
    expect(keys.get('h3')).toEqual({ endpointId: 'ep-2', site: null });
    expect(keys.size).toBe(1);
    keys.forget('unknown');
    expect(keys.size).toBe(1);
  });
});

describe('DownloadTokenIssuer', () => {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  const pem = publicKey.export({ type: 'spki', format: 'pem' }).toString();

  it('reuses a token while more than half its lifetime is left, then signs a new one; a new site gets a new one', async () => {
    const { clock, advance } = fakeClock();
    const issuer = new DownloadTokenIssuer(async () => ({ privateKey }), clock);
    const first = await issuer.tokenFor('ep-1', 'berlin');
    expect(verifyDownloadToken(first, pem, { now: new Date(clock()) })).toMatchObject({
      sub: 'ep-1',
      site: 'berlin',
      exp: Math.floor(clock() / 1000) + DOWNLOAD_TOKEN_TTL_SECONDS,
    });
    advance((DOWNLOAD_TOKEN_TTL_SECONDS / 2 - 1) * 1000);
    expect(await issuer.tokenFor('ep-1', 'berlin')).toBe(first);
    expect(issuer.signed).toBe(1);
    advance(1000);
    const second = await issuer.tokenFor('ep-1', 'berlin');
    expect(second).not.toBe(first);
    expect(await issuer.tokenFor('ep-1', 'paris')).not.toBe(second);
    expect(issuer.signed).toBe(3);
  });
});

describe('RetryingLazy', () => {
  it('loads once, and again after a failed load', async () => {
    let calls = 0;
    const lazy = new RetryingLazy(async () => {
      calls += 1;
      if (calls === 1) throw new Error('database away');
      return calls;
    });
    await expect(lazy.get()).rejects.toThrow('database away');
    expect(await lazy.get()).toBe(2);
    expect(await lazy.get()).toBe(2);
    expect(calls).toBe(2);
  });
});

describe('WorkHint', () => {
  it('asks the database for everyone until the first refresh, then only for endpoints with work', () => {
    const hint = new WorkHint(fakeClock().clock);
    expect(hint.mayHaveWork('ep-1')).toBe(true);
    hint.refreshed(['ep-2']);
    expect(hint.mayHaveWork('ep-1')).toBe(false);
    expect(hint.mayHaveWork('ep-2')).toBe(true);
    hint.noWork('ep-2');
    expect(hint.mayHaveWork('ep-2')).toBe(false);
    hint.add('ep-1');
    expect(hint.mayHaveWork('ep-1')).toBe(true);
    expect(hint.size).toBe(1);
  });

  it('keeps a hint through failed refreshes until it is stale', () => {
    const { clock, advance } = fakeClock();
    const hint = new WorkHint(clock);
    hint.refreshed([]);
    advance(HINT_STALE_MS);
    hint.refreshFailed();
    expect(hint.mayHaveWork('ep-1')).toBe(false);
    advance(1);
    hint.refreshFailed();
    expect(hint.mayHaveWork('ep-1')).toBe(true);
  });
});

describe('WorkWaiters', () => {
  beforeEach(() => void vi.useFakeTimers());
  afterEach(() => void vi.useRealTimers());

  it('answers a wait when woken, or when its time is up', async () => {
    const waiters = new WorkWaiters();
    let woken = 0;
    void waiters.wait('ep-1', 60_000).then(() => (woken += 1));
    void waiters.wait('ep-1', 60_000).then(() => (woken += 1));
    void waiters.wait('ep-2', 1000).then(() => (woken += 1));
    expect(waiters.size).toBe(2);
    waiters.wakeAny(['ep-1', 'ep-3']);
    await vi.advanceTimersByTimeAsync(0);
    expect(woken).toBe(2);
    await vi.advanceTimersByTimeAsync(999);
    expect(woken).toBe(2);
    await vi.advanceTimersByTimeAsync(1);
    expect(woken).toBe(3);
    expect(waiters.size).toBe(0);
  });

  it('wakeAll answers every wait', async () => {
    const waiters = new WorkWaiters();
    const done = Promise.all([waiters.wait('a', 60_000), waiters.wait('b', 60_000)]);
    waiters.wakeAll();
    await done;
    expect(waiters.size).toBe(0);
  });
});

describe('PollSlots', () => {
  it('holds polls up to the process cap, counts the ones it cannot hold, and frees slots on leave', () => {
    const slots = new PollSlots(2, 1);
    const a = slots.enter('ep-1', true);
    expect(a.hold).toBe(true);
    const b = slots.enter('ep-1', true);
    expect(b.hold).toBe(false);
    expect(slots.notHeld).toBe(1);
    expect(slots.openOf('ep-1')).toBe(2);
    expect(slots.enter('ep-2', false).hold).toBe(false);
    expect(slots.notHeld).toBe(1);
    a.leave();
    b.leave();
    expect(slots.openOf('ep-1')).toBe(0);
    expect(slots.held).toBe(0);
  });
});

describe('SeenBatch', () => {
  it('hands out each endpoint once per batch, and takes a failed batch back', () => {
    const seen = new SeenBatch();
    seen.add('a');
    seen.add('b');
    seen.add('a');
    const batch = seen.take();
    expect(batch.sort()).toEqual(['a', 'b']);
    expect(seen.take()).toEqual([]);
    seen.putBack(batch);
    seen.add('c');
    expect(seen.size).toBe(3);
  });
});

describe('ReloadedValue', () => {
  it('reloads at once, then only every everyMs; a failed load keeps the old value and is retried', async () => {
    const { clock, advance } = fakeClock();
    const v = new ReloadedValue(0, 1000, clock);
    let n = 0;
    const load = async () => ++n;
    await v.reloadIfDue(load);
    expect(v.value).toBe(1);
    advance(999);
    await v.reloadIfDue(load);
    expect(v.value).toBe(1);
    advance(1);
    await expect(v.reloadIfDue(() => Promise.reject(new Error('away')))).rejects.toThrow('away');
    expect(v.value).toBe(1);
    await v.reloadIfDue(load);
    expect(v.value).toBe(2);
  });
});
