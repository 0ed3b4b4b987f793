import { describe, expect, it } from 'vitest';
import { effectiveGrants, type TokenScope } from './api-tokens';
import type { Role } from './identities';

const grants = (...roles: Role[]) => roles.map((role) => ({ identity: 'web:x', role, groupName: 'default' }));
const rolesOf = (held: Role[], scope: TokenScope) =>
  [...new Set(effectiveGrants(grants(...held), scope).map((g) => g.role))].sort();

describe("effectiveGrants: the lower of the owner's role and the token's scope", () => {
  it.each([
    [['admin', 'approver'], 'read', ['viewer']],
    [['admin', 'approver'], 'approve', ['approver']],
    [['admin', 'approver'], 'admin', ['admin', 'approver']],
    [['viewer'], 'admin', ['viewer']],
    [['approver'], 'approve', ['approver']],
    [[], 'admin', []],
  ] as Array<[Role[], TokenScope, Role[]]>)('%j with a %s token → %j', (held, scope, expected) => {
    expect(rolesOf(held, scope)).toEqual(expected);
  });
});
