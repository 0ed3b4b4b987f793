import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../test/helpers/db';
import { verifyAuditChain } from './audit';
import { bootstrapIdentities, grantRole, hasRole, identitiesWithRole, revokeRole, rolesOf } from './identities';

describe('identity roles', () => {
  let t: TestDatabase;
  beforeAll(async () => {
    t = await createTestDatabase();
  });
  afterAll(async () => {
    await t.close();
  });

  it('bootstraps admins and approvers idempotently, grants and revokes by group', async () => {
    await bootstrapIdentities(t.db, ['cli:ops-admin'], ['slack:U1', 'teams:29:abc']);
    await bootstrapIdentities(t.db, ['cli:ops-admin'], ['slack:U1', 'teams:29:abc']);
    expect(await identitiesWithRole(t.db, 'approver')).toEqual(['cli:ops-admin', 'slack:U1', 'teams:29:abc']);
    expect(await hasRole(t.db, 'cli:ops-admin', 'admin')).toBe(true);
    expect(await hasRole(t.db, 'slack:U1', 'admin')).toBe(false);

    await grantRole(t.db, { identity: 'slack:U9', role: 'approver', groupName: 'dba', by: 'cli:ops-admin' });
    expect(await identitiesWithRole(t.db, 'approver', ['dba'])).toEqual(['slack:U9']);
    expect(await rolesOf(t.db, 'slack:U9')).toEqual([{ identity: 'slack:U9', role: 'approver', groupName: 'dba' }]);
    expect(
      await revokeRole(t.db, { identity: 'slack:U9', role: 'approver', groupName: 'dba', by: 'cli:ops-admin' }),
    ).toBe(true);
    expect(
      await revokeRole(t.db, { identity: 'slack:U9', role: 'approver', groupName: 'dba', by: 'cli:ops-admin' }),
    ).toBe(false);
    // 4 bootstrap grants (admin: admin+approver, two approvers) + 1 grant + 1 revoke, once each.
    await expect(verifyAuditChain(t.db)).resolves.toEqual({ ok: true, rows: 6 });
  });
});
