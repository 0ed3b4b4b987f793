import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listAudit } from '../../db/dashboard';
import { hasRole } from '../../db/identities';
import { createTestDatabase, type TestDatabase } from '../../../test/helpers/db';
import {
  addWebUser,
  ensureFirstAdmin,
  hashPassword,
  listWebUsers,
  login,
  removeWebUser,
  sessionFor,
  verifyPassword,
} from './auth';

describe('web accounts and sessions', () => {
  let t: TestDatabase;
  beforeAll(async () => {
    t = await createTestDatabase();
  });
  afterAll(async () => {
    await t?.close();
  });

  it('hashes with a fresh salt and verifies only the right password', async () => {
    const a = await hashPassword('correct horse');
    const b = await hashPassword('correct horse');
    expect(a).not.toBe(b);
    expect(a).toMatch(/^scrypt\$131072\$8\$1\$/);
    expect(await verifyPassword('correct horse', a)).toBe(true);
    expect(await verifyPassword('correct horsE', a)).toBe(false);
    expect(await verifyPassword('x', 'md5$abc')).toBe(false);
  });

  it('creates the first admin once, with a generated password that works', async () => {
    const first = await ensureFirstAdmin(t.db, undefined);
    expect(first?.username).toBe('admin');
    expect(first?.generatedPassword).toMatch(/^[A-Za-z0-9_-]{16}$/);
    expect(await ensureFirstAdmin(t.db, undefined)).toBeNull();
    expect(await hasRole(t.db, 'web:admin', 'admin')).toBe(true);
    const s = await login(t.db, { username: 'admin', password: first!.generatedPassword!, ttlMs: 60_000 });
    expect(s?.session.role).toBe('admin');
  });

  it('refuses bad names, short passwords and duplicates with coded errors', async () => {
    await expect(
      addWebUser(t.db, { username: 'Bad Name', password: 'long-enough-pw', role: 'viewer', by: 'test' }),
    ).rejects.toThrow(/not valid/);
    await expect(
      addWebUser(t.db, { username: 'shorty', password: 'short', role: 'viewer', by: 'test' }),
    ).rejects.toThrow(/too short/);
    await addWebUser(t.db, { username: 'vera', password: 'vera-password', role: 'viewer', by: 'test' });
    await expect(
      addWebUser(t.db, { username: 'vera', password: 'vera-password', role: 'viewer', by: 'test' }),
    ).rejects.toMatchObject({ code: 'CONFLICT' });
  });

  it('expires sessions and ends them when the user is removed', async () => {
    const t0 = new Date('2030-01-01T00:00:00Z');
    const s = await login(t.db, { username: 'vera', password: 'vera-password', ttlMs: 60_000, now: t0 });
    expect(await sessionFor(t.db, s!.token, new Date(t0.getTime() + 30_000))).toMatchObject({
      username: 'vera',
      role: 'viewer',
    });
    expect(await sessionFor(t.db, s!.token, new Date(t0.getTime() + 61_000))).toBeNull();
    expect(await sessionFor(t.db, 'not-a-token')).toBeNull();
    const live = await login(t.db, { username: 'vera', password: 'vera-password', ttlMs: 3_600_000 });
    expect(await removeWebUser(t.db, 'vera', 'cli:test')).toBe(true);
    expect(await removeWebUser(t.db, 'vera', 'cli:test')).toBe(false);
    expect(await sessionFor(t.db, live!.token)).toBeNull();
    expect(await hasRole(t.db, 'web:vera', 'viewer')).toBe(false);
    expect((await listWebUsers(t.db)).map((u) => u.username)).toEqual(['admin']);
    const actions = (await listAudit(t.db, { subjectId: 'vera' })).map((a) => a.action);
    expect(actions).toEqual(expect.arrayContaining(['user.added', 'login', 'user.removed']));
  });
});
