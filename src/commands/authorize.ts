/**
 * The one role check of the command core: may someone holding `roles` use `verb`? The verb's role comes from
 * VERB_TABLE (grammar.ts); the roles rank viewer < approver < admin, so an approver may read and an admin
 * may do everything (votes still go through the workflow's validator, which checks the approver groups).
 * `help` needs no role. The executor calls this for every verb before anything is read or changed.
 */
import type { Role } from '../db/identities';
import { ErrorCode } from '../domain/errors';
import { requiredRole, type Verb } from './grammar';

const RANK: Record<Role, number> = { viewer: 1, approver: 2, admin: 3 };

/** The highest rank among the roles held (0: none). */
function rankOf(roles: Iterable<Role>): number {
  let best = 0;
  for (const r of roles) best = Math.max(best, RANK[r] ?? 0);
  return best;
}

export type Authorization = { ok: true } | { ok: false; code: typeof ErrorCode.Forbidden; message: string };

/** Says what is missing and who can fix it, in the words the person reads. */
function refusal(verb: Verb, role: Role, identity: string, action?: string): string {
  switch (role) {
    case 'admin':
      return `only admins may use "${verb}${action ? ` ${action}` : ''}"; ask an admin to run it, or to grant you the role (roles grant ${identity} admin)`;
    case 'approver':
      return `only approvers may ${verb}; ask an admin to grant you the role (roles grant ${identity} approver <group>)`;
    case 'viewer':
      return `you need the viewer role to use "${verb}"; ask an admin: roles grant ${identity} viewer`;
  }
}

export function authorize(verb: Verb, roles: Iterable<Role>, identity: string, action?: string): Authorization {
  const needed = requiredRole(verb, action);
  if (needed === null || rankOf(roles) >= RANK[needed]) return { ok: true };
  return { ok: false, code: ErrorCode.Forbidden, message: refusal(verb, needed, identity, action) };
}
