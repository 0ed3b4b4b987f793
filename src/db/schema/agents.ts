/**
 * The agent area's tables: enrol secrets, per-agent node keys (hashes only), the manifest-signing key,
 * signed manifests of the central repository, distribution points (with their token hashes), and the log of
 * endpoint site changes the gateway follows to keep its key cache's sites current.
 */
import { sql } from 'drizzle-orm';
import { bigserial, boolean, index, integer, jsonb, pgTable, serial, text, timestamp, uniqueIndex } from 'drizzle-orm/pg-core';
import { endpoints } from './core';

const createdAt = () => timestamp({ withTimezone: true }).notNull().defaultNow();

/** Enrol secrets: several may be active at once (rotation = add new, revoke old). Only the sha256 is stored. */
export const agentEnrollSecrets = pgTable(
  'agent_enroll_secrets',
  {
    id: serial().primaryKey(),
    name: text().notNull(),
    secretHash: text().notNull(),
    createdBy: text().notNull().default('system'),
    createdAt: createdAt(),
    revokedAt: timestamp({ withTimezone: true }),
  },
  (t) => [uniqueIndex('agent_enroll_secrets_name_uq').on(t.name), uniqueIndex('agent_enroll_secrets_hash_uq').on(t.secretHash)],
);

/** Node keys: ≥256 random bits handed to the agent once; only sha256(key) is stored. Revocable. */
export const agentNodeKeys = pgTable(
  'agent_node_keys',
  {
    id: bigserial({ mode: 'number' }).primaryKey(),
    keyHash: text().notNull(),
    endpointId: text()
      .notNull()
      .references(() => endpoints.id, { onDelete: 'cascade' }),
    enrollSecretId: integer(),
    createdAt: createdAt(),
    revokedAt: timestamp({ withTimezone: true }),
  },
  (t) => [
    uniqueIndex('agent_node_keys_hash_uq').on(t.keyHash),
    index('agent_node_keys_endpoint_idx').on(t.endpointId),
    index('agent_node_keys_revoked_idx').on(t.revokedAt),
  ],
);

/** The ed25519 key that signs repository manifests; its public half is pinned by agents at enrolment. */
export const manifestSigningKeys = pgTable('manifest_signing_keys', {
  id: serial().primaryKey(),
  /** SPKI PEM */
  publicKey: text().notNull(),
  /** PKCS#8 PEM. Kept in the database so every server process signs with the same key. */
  privateKey: text().notNull(),
  active: boolean().notNull().default(true),
  createdAt: createdAt(),
});

/** Signed manifests of the central repository's files: version increases, each expires. */
export const repositoryManifests = pgTable(
  'repository_manifests',
  {
    version: integer().primaryKey(),
    /** The exact signed bytes (canonical JSON of the manifest body). */
    body: text().notNull(),
    /** base64 ed25519 signature over body. */
    signature: text().notNull(),
    keyId: integer().notNull(),
    files: jsonb().$type<Array<{ name: string; sha256: string; size: number }>>().notNull().default([]),
    expiresAt: timestamp({ withTimezone: true }).notNull(),
    createdAt: createdAt(),
  },
  (t) => [index('repository_manifests_expires_idx').on(t.expiresAt)],
);

/** Distribution points: site caches of the central repository that agents of the site fetch from first. */
export const distributionPoints = pgTable(
  'distribution_points',
  {
    id: serial().primaryKey(),
    name: text().notNull(),
    /** Base URL agents use, e.g. http://dp1.branch.example:8081 */
    url: text().notNull(),
    /** Endpoints whose tags contain `site:<site>` use this point. */
    site: text().notNull(),
    tags: text().array().notNull().default(sql`'{}'::text[]`),
    /** sha256 of the point's token (≥256 random bits, shown once at registration): it authenticates to the server with it. */
    tokenHash: text(),
    createdAt: createdAt(),
  },
  (t) => [
    uniqueIndex('distribution_points_name_uq').on(t.name),
    index('distribution_points_site_idx').on(t.site),
    uniqueIndex('distribution_points_token_hash_uq').on(t.tokenHash),
  ],
);

/**
 * One row per change of an endpoint's `site:<x>` tag (enrolment, `patchops agents site`). Every gateway process
 * reads the rows after its cursor on each refresh and drops those endpoints from its key cache, so the next
 * request reads the new site from the endpoint. Rows older than a day are pruned when a change is written.
 */
export const endpointSiteChanges = pgTable(
  'endpoint_site_changes',
  {
    id: bigserial({ mode: 'number' }).primaryKey(),
    endpointId: text().notNull(),
    site: text(),
    changedAt: createdAt(),
  },
  (t) => [index('endpoint_site_changes_changed_at_idx').on(t.changedAt)],
);
