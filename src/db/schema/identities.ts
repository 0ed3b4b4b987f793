import { index, integer, pgTable, primaryKey, text, timestamp } from 'drizzle-orm/pg-core';

/**
 * Who may do what, for every channel at once: an identity (`slack:U123`, `teams:<aad id>`,
 * `servicenow:<user>`, `cli:<user>`, `web:<user>`) holds roles (admin, approver, viewer) in named groups
 * (approval policies name approver groups; `default` when none).
 */
export const identityRoles = pgTable(
  'identity_roles',
  {
    identity: text().notNull(),
    /** admin | approver | viewer */
    role: text().notNull(),
    groupName: text().notNull().default('default'),
    grantedBy: text().notNull().default('system'),
    createdAt: timestamp({ withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [primaryKey({ columns: [t.identity, t.role, t.groupName] })],
);

/**
 * Failed sign-ins per key (`ip:<address>`, `user:<name>`), shared by every server process: the sign-in
 * throttle's counts (src/db/login-failures.ts; the rule is src/domain/login-backoff.ts). Bounded: quiet keys and
 * the least recently failed beyond a cap are swept.
 */
export const loginFailures = pgTable(
  'login_failures',
  {
    key: text().primaryKey(),
    failures: integer().notNull(),
    lockedUntil: timestamp({ withTimezone: true }).notNull(),
    lastFailureAt: timestamp({ withTimezone: true }).notNull(),
  },
  (t) => [index('login_failures_last_failure_at_idx').on(t.lastFailureAt)],
);
