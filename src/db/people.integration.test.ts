import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../test/helpers/db';
import { createLogger } from '../logging';
import { linkPersonByEmail } from '../chat/core/person-link';
import { linkByEmail, linkIdentity, listPeople, personOf, personWithIdentities, unlinkIdentity } from './people';

describe('people and their identities', () => {
  let t: TestDatabase;
  beforeAll(async () => {
    t = await createTestDatabase();
  });
  afterAll(async () => {
    await t.close();
  });

  const audits = async (action: string) =>
    Number(
      (await t.db.execute<{ n: number }>(sql`select count(*)::int as n from audit_log where action = ${action}`))
        .rows[0]!.n,
    );

  it('an identity linked to nobody is its own person; linked identities share one person', async () => {
    expect(await personOf(t.db, 'slack:UA')).toBe('slack:UA');
    expect(
      await linkIdentity(t.db, { person: 'alice', identity: 'slack:UA', email: 'alice@example.com', by: 'cli:admin' }),
    ).toEqual({ changed: true });
    expect(await linkIdentity(t.db, { person: 'alice', identity: 'teams:29:a', by: 'cli:admin' })).toEqual({
      changed: true,
    });
    expect(await linkIdentity(t.db, { person: 'alice', identity: 'teams:29:a', by: 'cli:admin' })).toEqual({
      changed: false,
    });
    expect(await personOf(t.db, 'slack:UA')).toBe('person:alice');
    expect(await personOf(t.db, 'teams:29:a')).toBe('person:alice');
    expect(await personWithIdentities(t.db, 'teams:29:a')).toEqual({
      person: 'person:alice',
      identities: ['slack:UA', 'teams:29:a'],
    });
    expect(await personWithIdentities(t.db, 'web:nobody')).toEqual({
      person: 'web:nobody',
      identities: ['web:nobody'],
    });
    expect(await listPeople(t.db)).toEqual([
      { name: 'alice', email: 'alice@example.com', identities: ['slack:UA', 'teams:29:a'] },
    ]);
    expect(await audits('person.linked')).toBe(2);
  });

  it('refuses an identity linked to someone else, an address another person has, and bad names', async () => {
    await expect(linkIdentity(t.db, { person: 'bob', identity: 'slack:UA', by: 'cli:admin' })).rejects.toMatchObject({
      code: 'CONFLICT',
      message: 'slack:UA is linked to alice; unlink it first (people unlink slack:UA)',
    });
    await expect(
      linkIdentity(t.db, { person: 'bob', identity: 'slack:UB', email: 'ALICE@example.com', by: 'cli:admin' }),
    ).rejects.toMatchObject({ code: 'CONFLICT' });
    await expect(linkIdentity(t.db, { person: 'b:ob', identity: 'slack:UB', by: 'cli:admin' })).rejects.toMatchObject({
      code: 'INVALID_INPUT',
    });
    await expect(
      linkIdentity(t.db, { person: 'bob', identity: 'person:alice', by: 'cli:admin' }),
    ).rejects.toMatchObject({ code: 'INVALID_INPUT' });
    expect(await personOf(t.db, 'slack:UB')).toBe('slack:UB');
  });

  it('unlinks: the identity is its own person again; unlinking nobody says so', async () => {
    expect(await unlinkIdentity(t.db, 'teams:29:a', 'cli:admin')).toBe('alice');
    expect(await personOf(t.db, 'teams:29:a')).toBe('teams:29:a');
    expect(await unlinkIdentity(t.db, 'teams:29:a', 'cli:admin')).toBeNull();
    expect(await audits('person.unlinked')).toBe(1);
  });

  it('links by e-mail only an unlinked identity, only to a person with that address (any case)', async () => {
    expect(await linkByEmail(t.db, 'teams:29:a', 'Alice@Example.COM', 'system:chat-directory')).toBe('alice');
    expect(await personOf(t.db, 'teams:29:a')).toBe('person:alice');
    expect(await linkByEmail(t.db, 'slack:UZ', 'nobody@example.com', 'system:chat-directory')).toBeNull();
    await linkIdentity(t.db, { person: 'carol', identity: 'web:carol', email: 'carol@example.com', by: 'cli:admin' });
    expect(await linkByEmail(t.db, 'slack:UA', 'carol@example.com', 'system:chat-directory')).toBeNull(); // alice's already
    expect(await personOf(t.db, 'slack:UA')).toBe('person:alice');
  });

  it('a failing or hanging platform lookup never throws and leaves the identity its own person', async () => {
    const deps = { db: t.db, logger: createLogger('silent'), timeoutMs: 100 };
    expect(await linkPersonByEmail(deps, 'slack:UX', () => Promise.reject(new Error('missing_scope')))).toBeNull();
    expect(await linkPersonByEmail(deps, 'slack:UX', () => new Promise(() => undefined))).toBeNull();
    expect(await personOf(t.db, 'slack:UX')).toBe('slack:UX');
    let asked = 0;
    expect(await linkPersonByEmail(deps, 'slack:UA', async () => (asked++, 'x@example.com'))).toBeNull();
    expect(asked).toBe(0); // a linked identity is not looked up
  });
});
