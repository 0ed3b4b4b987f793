import { index, integer, pgTable, serial, text, timestamp, uniqueIndex } from 'drizzle-orm/pg-core';
import { sql } from 'drizzle-orm';

/**
 * People and the identities they act through (`slack:U0123`, `teams:<aad object id>`, `web:alice`, `api:…`).
 * Quorum counts people and separation of duties compares people; an identity in no row here is its own person.
 */
export const people = pgTable(
  'people',
  {
    id: serial().primaryKey(),
    name: text().notNull().unique(),
    email: text(),
    createdBy: text().notNull().default('system'),
    createdAt: timestamp({ withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [
    uniqueIndex('people_email_uq')
      .on(sql`lower(${t.email})`)
      .where(sql`${t.email} IS NOT NULL`),
  ],
);

export const personIdentities = pgTable(
  'person_identities',
  {
    identity: text().primaryKey(),
    personId: integer()
      .notNull()
      .references(() => people.id, { onDelete: 'cascade' }),
    linkedBy: text().notNull().default('system'),
    createdAt: timestamp({ withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [index('person_identities_person_idx').on(t.personId)],
);
