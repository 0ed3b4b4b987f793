/**
 * The core model. Columns are camelCase in TypeScript and snake_case in SQL (drizzle `casing: 'snake_case'`).
 * Later areas add their own files beside this one (agents.ts, chat.ts, servicenow.ts, web.ts) and export them
 * from index.ts; each area owns its tables.
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

const createdAt = () => timestamp({ withTimezone: true }).notNull().defaultNow();

// ---------------------------------------------------------------- endpoints and groups

export const endpoints = pgTable(
  'endpoints',
  {
    id: text().primaryKey(),
    /** Stable machine id reported by the agent (/etc/machine-id, IOPlatformUUID, MachineGuid). */
    machineId: text().notNull(),
    hostname: text().notNull(),
    /** windows | macos | linux */
    osFamily: text().notNull(),
    osName: text().notNull().default(''),
    osVersion: text().notNull().default(''),
    arch: text().notNull().default(''),
    /** 1 (low) … 4 (critical): business criticality. */
    criticality: integer().notNull().default(2),
    /** internal | dmz | internet */
    exposure: text().notNull().default('internal'),
    tags: text()
      .array()
      .notNull()
      .default(sql`'{}'::text[]`),
    /** active | unreachable | retired */
    status: text().notNull().default('active'),
    pendingReboot: boolean().notNull().default(false),
    agentVersion: text(),
    lastSeenAt: timestamp({ withTimezone: true }),
    lastScanAt: timestamp({ withTimezone: true }),
    /** sha256 of the last full scan's findings, written in full; null after any other change to its patch rows. */
    lastScanDigest: text(),
    createdAt: createdAt(),
  },
  (t) => [
    uniqueIndex('endpoints_machine_id_uq').on(t.machineId),
    index('endpoints_hostname_idx').on(t.hostname),
    index('endpoints_os_family_idx').on(t.osFamily),
  ],
);

export const maintenanceWindows = pgTable('maintenance_windows', {
  id: serial().primaryKey(),
  name: text().notNull().unique(),
  /** RFC 5545 RRULE, e.g. FREQ=WEEKLY;BYDAY=SA;BYHOUR=22;BYMINUTE=0 */
  rrule: text().notNull(),
  /** IANA time zone the rule is read in, e.g. Europe/London. */
  timezone: text().notNull(),
  durationMinutes: integer().notNull(),
  /** ISO dates (YYYY-MM-DD, in the window's zone) on which no window opens. */
  blackoutDates: jsonb().$type<string[]>().notNull().default([]),
  createdAt: createdAt(),
});

export const endpointGroups = pgTable('endpoint_groups', {
  id: serial().primaryKey(),
  name: text().notNull().unique(),
  description: text().notNull().default(''),
  /** Overrides the members' criticality when higher. */
  criticality: integer().notNull().default(2),
  exposure: text().notNull().default('internal'),
  isTestGroup: boolean().notNull().default(false),
  maintenanceWindowId: integer().references(() => maintenanceWindows.id, { onDelete: 'set null' }),
  createdAt: createdAt(),
});

export const groupMembers = pgTable(
  'group_members',
  {
    groupId: integer()
      .notNull()
      .references(() => endpointGroups.id, { onDelete: 'cascade' }),
    endpointId: text()
      .notNull()
      .references(() => endpoints.id, { onDelete: 'cascade' }),
  },
  (t) => [primaryKey({ columns: [t.groupId, t.endpointId] }), index('group_members_endpoint_idx').on(t.endpointId)],
);

export const softwareInventory = pgTable(
  'software_inventory',
  {
    endpointId: text()
      .notNull()
      .references(() => endpoints.id, { onDelete: 'cascade' }),
    /** apt | dnf | zypper | windows | winget | macos | brew | other */
    source: text().notNull(),
    name: text().notNull(),
    version: text().notNull(),
    vendor: text(),
    updatedAt: timestamp({ withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [primaryKey({ columns: [t.endpointId, t.source, t.name] }), index('software_inventory_name_idx').on(t.name)],
);

// ---------------------------------------------------------------- patch catalog

export interface PatchPackage {
  /** apt | dnf | yum | zypper | windows-update | winget | softwareupdate | brew | file */
  manager: string;
  name: string;
  version?: string;
  /** For file-carrying installs (third-party): the file and its digest. */
  url?: string;
  sha256?: string;
}

export const patches = pgTable(
  'patches',
  {
    /** Vendor-stable id: KB5034441, RHSA-2024:1234, DSA-5678-1, or third-party:<product>:<version>. */
    id: text().primaryKey(),
    title: text().notNull(),
    vendor: text().notNull(),
    product: text().notNull().default(''),
    /** One of the ten PatchType values (domain/patch.ts). */
    type: text().notNull(),
    /** critical | important | moderate | low | unspecified */
    severity: text().notNull(),
    /** The vendor's own word for severity, as published. */
    vendorSeverity: text(),
    cvss: real(),
    cves: text()
      .array()
      .notNull()
      .default(sql`'{}'::text[]`),
    knownExploited: boolean().notNull().default(false),
    /** windows | macos | linux | any */
    osFamily: text().notNull(),
    rebootRequired: boolean().notNull().default(false),
    supersededBy: text(),
    packages: jsonb().$type<PatchPackage[]>().notNull().default([]),
    description: text().notNull().default(''),
    releasedAt: timestamp({ withTimezone: true }),
    createdAt: createdAt(),
  },
  (t) => [index('patches_severity_idx').on(t.severity), index('patches_superseded_by_idx').on(t.supersededBy)],
);

export const endpointPatches = pgTable(
  'endpoint_patches',
  {
    endpointId: text()
      .notNull()
      .references(() => endpoints.id, { onDelete: 'cascade' }),
    patchId: text()
      .notNull()
      .references(() => patches.id, { onDelete: 'cascade' }),
    /** missing | installed | failed | pending_reboot | not_applicable */
    state: text().notNull(),
    detectedAt: timestamp({ withTimezone: true }).notNull().defaultNow(),
    installedAt: timestamp({ withTimezone: true }),
    lastError: text(),
    lastJobId: text(),
    updatedAt: timestamp({ withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [
    primaryKey({ columns: [t.endpointId, t.patchId] }),
    index('endpoint_patches_patch_state_idx').on(t.patchId, t.state),
    // Also endpoint_patches_outstanding_detected_idx (migration 0021: a partial index with INCLUDE columns, which
    // drizzle's index builder cannot declare): the outstanding rows in detection order, for the SLA breach pages.
  ],
);

// ---------------------------------------------------------------- policies

export const deploymentPolicies = pgTable(
  'deployment_policies',
  {
    id: serial().primaryKey(),
    name: text().notNull(),
    version: integer().notNull(),
    /** The zod-validated DeploymentPolicy document (domain/policy.ts). */
    definition: jsonb().$type<Record<string, unknown>>().notNull(),
    createdBy: text().notNull().default('system'),
    createdAt: createdAt(),
  },
  (t) => [uniqueIndex('deployment_policies_name_version_uq').on(t.name, t.version)],
);

export const patchExceptions = pgTable(
  'patch_exceptions',
  {
    id: serial().primaryKey(),
    /** Human code, EXC-<id>. */
    code: text().notNull().unique(),
    patchId: text(),
    endpointId: text(),
    groupName: text(),
    reason: text().notNull(),
    expiresAt: timestamp({ withTimezone: true }).notNull(),
    createdBy: text().notNull(),
    createdAt: createdAt(),
    removedAt: timestamp({ withTimezone: true }),
    removedBy: text(),
  },
  (t) => [index('patch_exceptions_active_idx').on(t.expiresAt)],
);

// ---------------------------------------------------------------- cycles, approvals, jobs

export const patchCycles = pgTable(
  'patch_cycles',
  {
    id: text().primaryKey(),
    workflowId: text().notNull(),
    policyName: text().notNull(),
    policyVersion: integer().notNull(),
    scope: jsonb().$type<Record<string, unknown>>().notNull().default({}),
    stage: text().notNull(),
    emergency: boolean().notNull().default(false),
    requestedBy: text().notNull(),
    changeNumber: text(),
    reason: text(),
    summary: jsonb().$type<Record<string, unknown>>(),
    /** Paused by an admin or the failure threshold: queued installs are held and none is handed out until resumed. */
    paused: boolean().notNull().default(false),
    /** The workflow's count of pause/resume controls: an older control arriving late never undoes a newer one. */
    pauseSeq: integer().notNull().default(0),
    createdAt: createdAt(),
    updatedAt: timestamp({ withTimezone: true }).notNull().defaultNow(),
    completedAt: timestamp({ withTimezone: true }),
    /** Compliance % of the cycle's scope when it assessed, before any install (the report's "before"). */
    complianceBefore: real(),
    /** The scope that was measured over; the report measures the same scope again at the end. */
    complianceScope: jsonb().$type<Record<string, unknown>>(),
  },
  (t) => [index('patch_cycles_stage_idx').on(t.stage), index('patch_cycles_created_idx').on(t.createdAt)],
);

export const cycleStageEvents = pgTable(
  'cycle_stage_events',
  {
    id: bigserial({ mode: 'number' }).primaryKey(),
    cycleId: text()
      .notNull()
      .references(() => patchCycles.id, { onDelete: 'cascade' }),
    stage: text().notNull(),
    detail: jsonb().$type<Record<string, unknown>>().notNull().default({}),
    at: timestamp({ withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [index('cycle_stage_events_cycle_idx').on(t.cycleId, t.at)],
);

export const cycleApprovals = pgTable(
  'cycle_approvals',
  {
    id: serial().primaryKey(),
    cycleId: text()
      .notNull()
      .references(() => patchCycles.id, { onDelete: 'cascade' }),
    /** slack:U123 | teams:<aad id> | servicenow:<user> | cli:<user> | web:<user> */
    identity: text().notNull(),
    /** approve | reject */
    decision: text().notNull(),
    reason: text(),
    /** slack | teams | servicenow | cli | web | email */
    channel: text().notNull(),
    at: timestamp({ withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [uniqueIndex('cycle_approvals_cycle_identity_uq').on(t.cycleId, t.identity)],
);

export const agentJobs = pgTable(
  'agent_jobs',
  {
    /** Deterministic from (cycle, wave, endpoint, kind): a retried activity never dispatches twice. */
    id: text().primaryKey(),
    cycleId: text(),
    wave: integer(),
    endpointId: text()
      .notNull()
      .references(() => endpoints.id, { onDelete: 'cascade' }),
    /** scan | install | rollback | verify | reboot */
    kind: text().notNull(),
    payload: jsonb().$type<Record<string, unknown>>().notNull().default({}),
    /** queued | leased | succeeded | failed | unreachable | cancelled */
    state: text().notNull().default('queued'),
    attempts: integer().notNull().default(0),
    leaseExpiresAt: timestamp({ withTimezone: true }),
    notBefore: timestamp({ withTimezone: true }),
    deadline: timestamp({ withTimezone: true }),
    result: jsonb().$type<Record<string, unknown>>(),
    error: text(),
    createdAt: createdAt(),
    startedAt: timestamp({ withTimezone: true }),
    finishedAt: timestamp({ withTimezone: true }),
  },
  (t) => [
    index('agent_jobs_endpoint_state_idx').on(t.endpointId, t.state),
    index('agent_jobs_cycle_wave_state_idx').on(t.cycleId, t.wave, t.state),
  ],
);

// ---------------------------------------------------------------- audit

/**
 * Append-only and hash-chained: each row carries the hash of the previous one. Triggers (migration
 * 0001_audit_append_only) refuse UPDATE, DELETE and TRUNCATE; the application's role may only INSERT and
 * SELECT (0013_audit_keyed_app_role). `keyId` names the key of a keyed (HMAC) row; null = a row from before
 * keying, chained with plain SHA-256.
 */
export const auditLog = pgTable(
  'audit_log',
  {
    id: bigserial({ mode: 'number' }).primaryKey(),
    at: timestamp({ withTimezone: true, precision: 3 }).notNull(),
    actor: text().notNull(),
    action: text().notNull(),
    subjectType: text().notNull(),
    subjectId: text().notNull(),
    details: jsonb().$type<Record<string, unknown>>().notNull().default({}),
    prevHash: text().notNull(),
    hash: text().notNull(),
    keyId: text(),
  },
  (t) => [index('audit_log_subject_idx').on(t.subjectType, t.subjectId), index('audit_log_at_idx').on(t.at)],
);
