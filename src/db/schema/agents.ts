/**
 * The agent area's tables: enrol secrets, per-agent node keys (hashes only), enrolments waiting for an admin's
 * approval, what each endpoint's agent reported about each patch, the manifest-signing key, signed manifests of the
 * central repository, distribution points (with their token hashes), and the log of endpoint site changes the
 * gateway follows to keep its key cache's sites current.
 */
import { sql } from 'drizzle-orm';
import {
  bigserial,
  boolean,
  index,
  integer,
  jsonb,
  pgTable,
  primaryKey,
  real,
  serial,
  text,
  timestamp,
  uniqueIndex,
} from 'drizzle-orm/pg-core';
import { endpoints, patches, type PatchPackage } from './core';

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
  (t) => [
    uniqueIndex('agent_enroll_secrets_name_uq').on(t.name),
    uniqueIndex('agent_enroll_secrets_hash_uq').on(t.secretHash),
  ],
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
    tags: text()
      .array()
      .notNull()
      .default(sql`'{}'::text[]`),
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

/**
 * Re-enrolments of a known machine made without its current node key: they wait here for an admin
 * (`patchops agents approve`). The key was handed to the requester but is refused until approved; the endpoint's
 * facts the request carries (hostname, OS, site) are applied only then.
 */
export const agentEnrollmentRequests = pgTable(
  'agent_enrollment_requests',
  {
    id: bigserial({ mode: 'number' }).primaryKey(),
    endpointId: text()
      .notNull()
      .references(() => endpoints.id, { onDelete: 'cascade' }),
    /** sha256 of the node key issued to the requester. */
    keyHash: text().notNull(),
    enrollSecretId: integer(),
    hostname: text().notNull(),
    osFamily: text().notNull(),
    osName: text().notNull().default(''),
    osVersion: text().notNull().default(''),
    arch: text().notNull().default(''),
    agentVersion: text(),
    site: text(),
    /** The address the request came from, for the admin deciding. */
    remoteAddress: text(),
    /** pending | approved | rejected | superseded (another request of the endpoint was approved) */
    state: text().notNull().default('pending'),
    /** When the endpoint's current agent had last been heard from at the time of the request. */
    activeAgentSeenAt: timestamp({ withTimezone: true }),
    createdAt: createdAt(),
    decidedAt: timestamp({ withTimezone: true }),
    decidedBy: text(),
  },
  (t) => [
    uniqueIndex('agent_enrollment_requests_key_hash_uq').on(t.keyHash),
    index('agent_enrollment_requests_endpoint_state_idx').on(t.endpointId, t.state),
  ],
);

/**
 * What an endpoint's own agent last reported about a patch it found missing: an observation about that endpoint
 * only. Install, verify and rollback jobs for the endpoint take their packages from here (else from the trusted
 * catalog); the shared `patches` row never takes packages or a successor from an agent.
 */
export const endpointPatchReports = pgTable(
  'endpoint_patch_reports',
  {
    endpointId: text()
      .notNull()
      .references(() => endpoints.id, { onDelete: 'cascade' }),
    patchId: text()
      .notNull()
      .references(() => patches.id, { onDelete: 'cascade' }),
    title: text().notNull(),
    type: text().notNull(),
    /** critical | important | moderate | low | unspecified, from this agent's vendor word or CVSS. */
    severity: text().notNull(),
    vendorSeverity: text(),
    cvss: real(),
    cves: text()
      .array()
      .notNull()
      .default(sql`'{}'::text[]`),
    rebootRequired: boolean().notNull().default(false),
    supersededBy: text(),
    packages: jsonb().$type<PatchPackage[]>().notNull().default([]),
    jobId: text(),
    reportedAt: timestamp({ withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [primaryKey({ columns: [t.endpointId, t.patchId] }), index('endpoint_patch_reports_patch_idx').on(t.patchId)],
);
