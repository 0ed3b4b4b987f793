/**
 * Personal access tokens of the REST API (/api/v1). The token text is `pat_<id>_<secret>`: `id` finds the row,
 * and only the SHA-256 of the secret is stored, so a leaked table does not leak live tokens. See db/api-tokens.ts.
 */
import { index, pgTable, text, timestamp } from 'drizzle-orm/pg-core';

export const apiTokens = pgTable(
  'api_tokens',
  {
    id: text().primaryKey(),
    /** The person's identity as the dashboard uses it: `web:alice`. */
    owner: text().notNull(),
    name: text().notNull(),
    /** read | approve | admin: the most the token may do (the owner's role may be lower). */
    scope: text().notNull(),
    /** sha256 (hex) of the secret part. */
    secretHash: text().notNull(),
    createdAt: timestamp({ withTimezone: true }).notNull().defaultNow(),
    expiresAt: timestamp({ withTimezone: true }).notNull(),
    revokedAt: timestamp({ withTimezone: true }),
    lastUsedAt: timestamp({ withTimezone: true }),
  },
  (t) => [index('api_tokens_owner_idx').on(t.owner)],
);
