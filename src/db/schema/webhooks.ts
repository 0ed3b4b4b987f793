/**
 * Outbound webhooks (area: webhooks): registered endpoints, the delivery outbox, the outbox's cursor over the
 * audit log, and the record of SLA breaches already announced. See migration 0015 and docs/webhooks.md.
 */
import {
  bigint,
  boolean,
  index,
  integer,
  jsonb,
  pgTable,
  primaryKey,
  text,
  timestamp,
  unique,
} from 'drizzle-orm/pg-core';

export const webhookEndpoints = pgTable('webhook_endpoints', {
  id: text().primaryKey(),
  url: text().notNull(),
  /** The signing secret sealed by the secret box (enc:v1:…); shown in clear once, at creation. */
  secretSealed: text().notNull(),
  /** Event types delivered; empty = every type. */
  eventTypes: text().array().notNull().default([]),
  description: text().notNull().default(''),
  enabled: boolean().notNull().default(true),
  createdBy: text().notNull(),
  createdAt: timestamp({ withTimezone: true }).notNull().defaultNow(),
});

export const webhookDeliveries = pgTable(
  'webhook_deliveries',
  {
    id: text().primaryKey(),
    endpointId: text()
      .notNull()
      .references(() => webhookEndpoints.id, { onDelete: 'cascade' }),
    eventId: text().notNull(),
    eventType: text().notNull(),
    payload: jsonb().$type<Record<string, unknown>>().notNull(),
    /** pending | delivered | failed */
    status: text().notNull().default('pending'),
    attempts: integer().notNull().default(0),
    /** Set by each claim; an attempt's outcome is recorded only while the row still carries it. */
    claimToken: text(),
    nextAttemptAt: timestamp({ withTimezone: true }).notNull().defaultNow(),
    lastHttpStatus: integer(),
    lastError: text(),
    deliveredAt: timestamp({ withTimezone: true }),
    createdAt: timestamp({ withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [
    unique('webhook_deliveries_endpoint_event_uq').on(t.endpointId, t.eventId),
    index('webhook_deliveries_endpoint_idx').on(t.endpointId, t.createdAt),
  ],
);

export const webhookOutboxCursor = pgTable('webhook_outbox_cursor', {
  name: text().primaryKey(),
  lastAuditId: bigint({ mode: 'number' }).notNull(),
});

export const slaBreachesRecorded = pgTable(
  'sla_breaches',
  {
    endpointId: text().notNull(),
    patchId: text().notNull(),
    detectedAt: timestamp({ withTimezone: true }).notNull(),
    dueAt: timestamp({ withTimezone: true }).notNull(),
    recordedAt: timestamp({ withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [primaryKey({ name: 'sla_breaches_pk', columns: [t.endpointId, t.patchId, t.detectedAt] })],
);
