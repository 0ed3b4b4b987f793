/**
 * The dashboard's own tables: local web accounts and their sessions, compliance snapshots for the trend
 * chart, and the maintained aggregates that keep the overview fast over millions of endpoint×patch rows.
 * Roles are not stored here: a web user `alice` is the identity `web:alice` in identity_roles.
 * The aggregates are kept by triggers on endpoint_patches (migration `web_aggregates`); see db/dashboard.ts.
 */
import {
  boolean,
  date,
  index,
  integer,
  jsonb,
  pgTable,
  primaryKey,
  real,
  serial,
  text,
  timestamp,
} from 'drizzle-orm/pg-core';

export const webUsers = pgTable('web_users', {
  username: text().primaryKey(),
  /** `scrypt$N$r$p$<salt b64>$<hash b64>` (node:crypto scrypt). */
  passwordHash: text().notNull(),
  createdBy: text().notNull(),
  createdAt: timestamp({ withTimezone: true }).notNull().defaultNow(),
  lastLoginAt: timestamp({ withTimezone: true }),
});

export const webSessions = pgTable(
  'web_sessions',
  {
    /** sha256 of the cookie token: a leaked table does not leak live sessions. */
    tokenHash: text().primaryKey(),
    username: text()
      .notNull()
      .references(() => webUsers.username, { onDelete: 'cascade' }),
    /** Synchroniser token for forms (CSRF), one per session. */
    csrfToken: text().notNull(),
    createdAt: timestamp({ withTimezone: true }).notNull().defaultNow(),
    expiresAt: timestamp({ withTimezone: true }).notNull(),
  },
  (t) => [index('web_sessions_username_idx').on(t.username), index('web_sessions_expires_idx').on(t.expiresAt)],
);

/** One row per snapshot: the fleet's compliance at a moment, for the trend chart. */
export const complianceSnapshots = pgTable(
  'compliance_snapshots',
  {
    id: serial().primaryKey(),
    takenAt: timestamp({ withTimezone: true }).notNull().defaultNow(),
    endpoints: integer().notNull(),
    compliantEndpoints: integer().notNull(),
    compliancePct: real().notNull(),
    /** Outstanding (missing or failed) endpoint×patch pairs by severity. */
    bySeverity: jsonb().$type<Record<string, number>>().notNull().default({}),
    knownExploited: integer().notNull().default(0),
    overdue: integer().notNull().default(0),
  },
  (t) => [index('compliance_snapshots_taken_idx').on(t.takenAt)],
);

/**
 * Maintained aggregate: per endpoint, how many patches are outstanding (missing or failed), with the
 * endpoint's OS family and whether it counts (not retired). Kept by triggers on endpoint_patches and
 * endpoints; an endpoint without a row has none outstanding.
 */
export const endpointCompliance = pgTable(
  'endpoint_compliance',
  {
    endpointId: text().primaryKey(),
    outstanding: integer().notNull().default(0),
    failed: integer().notNull().default(0),
    osFamily: text(),
    active: boolean().notNull().default(true),
  },
  (t) => [index('endpoint_compliance_outstanding_desc_idx').on(t.outstanding.desc(), t.endpointId)],
);

/**
 * Maintained aggregate: endpoints and compliant endpoints per OS family (dimension `os`) and per group
 * (dimension `group`), kept by triggers on endpoint_compliance and group_members. The overview reads
 * these few rows instead of joining 100,000 endpoints.
 */
export const complianceRollup = pgTable(
  'compliance_rollup',
  {
    dimension: text().notNull(),
    key: text().notNull(),
    endpoints: integer().notNull().default(0),
    compliant: integer().notNull().default(0),
  },
  (t) => [primaryKey({ columns: [t.dimension, t.key] })],
);

/**
 * Maintained aggregate: outstanding endpoint×patch pairs per patch, state (missing | failed) and UTC day
 * of detection. A few thousand rows at most, from which severity, known-exploited and overdue counts
 * are summed in milliseconds.
 */
export const patchOutstandingDaily = pgTable(
  'patch_outstanding_daily',
  {
    patchId: text().notNull(),
    state: text().notNull(),
    day: date({ mode: 'string' }).notNull(),
    n: integer().notNull(),
  },
  (t) => [primaryKey({ columns: [t.patchId, t.state, t.day] })],
);
