import { pgTable, primaryKey, text, timestamp } from 'drizzle-orm/pg-core';

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
