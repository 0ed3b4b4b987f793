/**
 * Issue #11 item 5, the attacks over real HTTP against the whole server: password guessing is slowed per
 * address and per user name (a spoofed X-Forwarded-For does not make a new address unless TRUST_PROXY names
 * the proxy), impossible user names are refused before anything is stored, an old scrypt hash is upgraded
 * at the next sign-in, and `next=` cannot send a signed-in user to another site.
 */
import { randomBytes, scryptSync } from 'node:crypto';
import { eq } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFullServer, type FullServer } from '../../../test/fuzz/full-server';
import { webUsers } from '../../db/schema/index';
import { addWebUser } from './auth';
import { MemoryLoginThrottle as LoginThrottle } from './login-throttle';

const PASSWORD = 'right-password-123';

/** One sign-in as a browser does it: GET /login for the form's CSRF cookie, then POST the form. */
async function signIn(s: FullServer, o: { username: string; password: string; next?: string; xff?: string }) {
  const headers: Record<string, string> = o.xff ? { 'x-forwarded-for': o.xff } : {};
  const form = await fetch(`${s.url}/login`, { headers, redirect: 'manual' });
  const csrf = /patchops_login_csrf=([^;]+)/.exec(form.headers.get('set-cookie') ?? '')![1]!;
  const body = new URLSearchParams({
    _csrf: decodeURIComponent(csrf),
    username: o.username,
    password: o.password,
    ...(o.next !== undefined ? { next: o.next } : {}),
  });
  const res = await fetch(`${s.url}/login`, {
    method: 'POST',
    redirect: 'manual',
    headers: {
      ...headers,
      'content-type': 'application/x-www-form-urlencoded',
      origin: s.url,
      cookie: `patchops_login_csrf=${csrf}`,
    },
    body: body.toString(),
  });
  const session = /patchops_session=([^;]*)/.exec(res.headers.get('set-cookie') ?? '')?.[1];
  return {
    status: res.status,
    location: res.headers.get('location'),
    retryAfter: res.headers.get('retry-after'),
    signedIn: Boolean(session),
    text: await res.text(),
  };
}

describe('sign-in throttling, without a proxy configured', () => {
  let s: FullServer;
  beforeAll(async () => {
    s = await startFullServer({ loginThrottle: new LoginThrottle({ freeFailures: 3, baseDelayMs: 60_000 }) });
    await addWebUser(s.db.db, { username: 'carol', password: PASSWORD, role: 'viewer', by: 'test' });
  }, 120_000);
  afterAll(async () => s?.close());

  it('locks the address after repeated failures even when each attempt claims another X-Forwarded-For and user name', async () => {
    for (let i = 0; i < 4; i++) {
      const r = await signIn(s, { username: `guess${i}`, password: 'wrong', xff: `198.51.100.${i + 1}` });
      expect(r.status).toBe(303);
      expect(r.signedIn).toBe(false);
    }
    const before = await s.rowCounts();
    const r = await signIn(s, { username: 'carol', password: PASSWORD, xff: '198.51.100.99' });
    expect(r.status).toBe(429);
    expect(Number(r.retryAfter)).toBeGreaterThan(0);
    expect(r.text).toContain('Too many failed sign-ins');
    expect(r.signedIn).toBe(false);
    expect(await s.rowCounts()).toEqual(before);
  });
});

describe('sign-in with a proxy configured (TRUST_PROXY=127.0.0.1)', () => {
  let s: FullServer;
  beforeAll(async () => {
    s = await startFullServer({
      env: { TRUST_PROXY: '127.0.0.1' },
      loginThrottle: new LoginThrottle({ freeFailures: 3, baseDelayMs: 60_000 }),
    });
    await addWebUser(s.db.db, { username: 'alice', password: PASSWORD, role: 'admin', by: 'test' });
  }, 120_000);
  afterAll(async () => s?.close());

  it('locks a user name guessed at from many addresses, also for the right password', async () => {
    for (let i = 0; i < 4; i++) {
      const r = await signIn(s, { username: 'alice', password: `wrong-${i}`, xff: `203.0.113.${i + 1}` });
      expect(r.signedIn).toBe(false);
    }
    const before = await s.rowCounts();
    const r = await signIn(s, { username: 'alice', password: PASSWORD, xff: '192.0.2.200' });
    expect(r.status).toBe(429);
    expect(r.signedIn).toBe(false);
    expect(await s.rowCounts()).toEqual(before);
    // Another user from another address is not held up by alice's lock.
    await addWebUser(s.db.db, { username: 'bob', password: PASSWORD, role: 'viewer', by: 'test' });
    expect((await signIn(s, { username: 'bob', password: PASSWORD, xff: '192.0.2.201' })).signedIn).toBe(true);
  });

  it.each([
    ['upper case', 'Alice'],
    ['too long', `a${'b'.repeat(100)}`],
    ['markup', '<script>alert(1)</script>'],
    ['spaces', 'alice smith'],
    ['unicode look-alike', 'аlice'],
  ])('refuses a user name with %s before anything is stored', async (_what, username) => {
    const before = await s.rowCounts();
    const r = await signIn(s, {
      username,
      password: 'whatever',
      xff: `192.0.2.${Math.floor(Math.random() * 200) + 1}`,
    });
    expect(r.status).toBe(303);
    expect(r.signedIn).toBe(false);
    expect(new URL(r.location!, s.url).searchParams.get('error')).toContain('That is not a user name');
    expect(await s.rowCounts()).toEqual(before);
  });

  it('upgrades a hash made with the old scrypt cost (N=2^14) at the next sign-in', async () => {
    const salt = randomBytes(16);
    const key = scryptSync(PASSWORD, salt, 32, { N: 16384, r: 8, p: 1 });
    await addWebUser(s.db.db, { username: 'olduser', password: 'placeholder-password', role: 'viewer', by: 'test' });
    await s.db.db
      .update(webUsers)
      .set({ passwordHash: `scrypt$16384$8$1$${salt.toString('base64')}$${key.toString('base64')}` })
      .where(eq(webUsers.username, 'olduser'));
    const r = await signIn(s, { username: 'olduser', password: PASSWORD, xff: '192.0.2.150' });
    expect(r.signedIn).toBe(true);
    const [row] = await s.db.db.select().from(webUsers).where(eq(webUsers.username, 'olduser'));
    expect(row!.passwordHash).toMatch(/^scrypt\$131072\$8\$1\$/);
    expect((await signIn(s, { username: 'olduser', password: PASSWORD, xff: '192.0.2.151' })).signedIn).toBe(true);
  });

  it.each([
    ['/\\evil.example'],
    ['//evil.example'],
    ['/\t/evil.example'],
    ['https://evil.example/'],
    ['/\\/evil.example/x'],
    ['/login?next=//evil.example'],
  ])('signing in with next=%j stays on this server', async (next) => {
    const page = await fetch(`${s.url}/login?next=${encodeURIComponent(next)}`, {
      headers: { 'x-forwarded-for': '192.0.2.160' },
    });
    expect(await page.text()).toContain('name="next" value="/"');
    const r = await signIn(s, { username: 'bob', password: PASSWORD, next, xff: '192.0.2.160' });
    expect(r.signedIn).toBe(true);
    expect(r.location).toBe('/');
  });

  it('keeps a next= path on this server', async () => {
    const r = await signIn(s, {
      username: 'bob',
      password: PASSWORD,
      next: '/cycles/c1?tab=waves',
      xff: '192.0.2.161',
    });
    expect(r.location).toBe('/cycles/c1?tab=waves');
  });
});
