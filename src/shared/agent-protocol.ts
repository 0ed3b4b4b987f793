/**
 * The wire contract between the server (gateway, job dispatch) and the endpoint agent. Both sides import
 * this one module (Fleet style); the agent imports nothing else of the server side. Types plus zod
 * schemas for what crosses the wire. Change additively: old agents keep running.
 */
import { z } from 'zod';

export const AGENT_PROTOCOL_VERSION = 1;

/**
 * Bounds on what an agent may send in one job result (the gateway refuses a larger one with 400 before reading it
 * further). Far above what a real endpoint reports: an old Debian release with everything outdated lists some
 * thousands of upgrades, a kernel advisory some hundreds of CVEs.
 */
export const RESULT_LIMITS = {
  /** install / rollback / verify outcomes per result. */
  patches: 10_000,
  /** Patches a scan may report missing. */
  missing: 20_000,
  /** Packages per patch. */
  packagesPerPatch: 1_000,
  /** CVEs per patch. */
  cvesPerPatch: 5_000,
} as const;

export const jobKindSchema = z.enum(['scan', 'install', 'rollback', 'verify', 'reboot']);

/**
 * A package as a backend installs it. Names and versions must also pass their backend's grammar
 * (src/shared/package-names.ts): the gateway refuses reports that fail it and the agent refuses jobs that do.
 */
export const packageRefSchema = z.object({
  /** apt | dnf | yum | zypper | windows-update | winget | softwareupdate | brew | fwupd | file */
  manager: z.string().min(1).max(32),
  name: z.string().min(1).max(255),
  version: z.string().max(128).optional(),
  url: z.string().max(2048).optional(),
  sha256: z
    .string()
    .regex(/^[0-9a-f]{64}$/)
    .optional(),
});
export type PackageRef = z.infer<typeof packageRefSchema>;

export const rebootPolicySchema = z.object({
  behaviour: z.enum(['never', 'if_required', 'always']),
  notifyUser: z.boolean().default(true),
  deferralLimit: z.number().int().min(0).default(0),
  deferralMinutes: z.number().int().min(1).default(60),
});
export type RebootPolicy = z.infer<typeof rebootPolicySchema>;

/** payload of an install / rollback / verify job. */
export const patchJobPayloadSchema = z.object({
  patches: z.array(
    z.object({
      patchId: z.string(),
      packages: z.array(packageRefSchema),
      /** For rollback: the version to return to (the one installed before). */
      previousVersions: z.record(z.string(), z.string()).optional(),
      rebootRequired: z.boolean().default(false),
    }),
  ),
  reboot: rebootPolicySchema.optional(),
});
export type PatchJobPayload = z.infer<typeof patchJobPayloadSchema>;

/** payload of a scan job. */
export const scanJobPayloadSchema = z.object({
  /** Limit the scan to these patch ids (verify after install); empty = full scan. */
  patchIds: z.array(z.string()).default([]),
});
export type ScanJobPayload = z.infer<typeof scanJobPayloadSchema>;

/** What GET /agent/v1/jobs hands out. */
export const agentJobSchema = z.object({
  id: z.string(),
  kind: jobKindSchema,
  payload: z.record(z.string(), z.unknown()),
  /** No work may start after this ISO time (window end minus expected install time). */
  deadline: z.string().nullable(),
  leaseExpiresAt: z.string(),
});
export type AgentJob = z.infer<typeof agentJobSchema>;

/** A patch the agent found missing (scan result), with the facts the catalog needs. */
export const foundPatchSchema = z.object({
  patchId: z.string().min(1).max(256),
  title: z.string().max(1024),
  vendor: z.string().max(256),
  product: z.string().max(256).default(''),
  /** One of the ten patch types (domain/patch.ts). */
  type: z.string().max(64),
  /** The vendor's own severity word (MSRC rating, Debian urgency, RHSA severity, …). */
  vendorSeverity: z.string().max(64).optional(),
  /** Where the severity word comes from, for normalisation: msrc | debian | ubuntu | redhat | suse | apple | vendor. */
  severitySource: z.string().max(32).optional(),
  cvss: z.number().min(0).max(10).optional(),
  cves: z.array(z.string().max(64)).max(RESULT_LIMITS.cvesPerPatch).default([]),
  rebootRequired: z.boolean().default(false),
  /**
   * The successor this endpoint's package manager names. An observation about this endpoint only: it never makes
   * the shared catalog drop the patch for other endpoints (docs/agent.md, "What agents report").
   */
  supersededBy: z.string().max(256).optional(),
  packages: z.array(packageRefSchema).max(RESULT_LIMITS.packagesPerPatch).default([]),
  releasedAt: z
    .string()
    .max(64)
    .refine((v) => !Number.isNaN(Date.parse(v)), 'expected an ISO 8601 date such as 2026-01-13T00:00:00Z')
    .optional(),
});
export type FoundPatch = z.infer<typeof foundPatchSchema>;

/** POST /agent/v1/jobs/:id/result body. */
export const jobResultSchema = z.object({
  status: z.enum(['succeeded', 'failed']),
  /** install / rollback / verify: per patch outcome. */
  patches: z
    .array(
      z.object({
        patchId: z.string().min(1).max(256),
        state: z.enum(['installed', 'failed', 'pending_reboot', 'rolled_back', 'missing', 'not_applicable']),
        error: z.string().max(8192).optional(),
        installedVersion: z.string().max(128).optional(),
      }),
    )
    .max(RESULT_LIMITS.patches)
    .default([]),
  /** scan: everything found missing now (the full list replaces the endpoint's missing set). */
  missing: z.array(foundPatchSchema).max(RESULT_LIMITS.missing).optional(),
  rebootPending: z.boolean().default(false),
  error: z
    .string()
    .max(64 * 1024)
    .optional(),
  /** Tail of the tool's output, for people reading the job later. */
  log: z
    .string()
    .max(64 * 1024)
    .optional(),
});
export type JobResult = z.infer<typeof jobResultSchema>;

// ---------------------------------------------------------------- enrolment, polling, inventory, manifests (added by the agent area)

/** A site name (endpoints tagged `site:<name>` use the site's distribution points); stored lowercase. */
export const siteSchema = z
  .string()
  .regex(
    /^[a-z0-9][a-z0-9._-]{0,62}$/i,
    'a site is 1-63 letters, digits, ".", "_" or "-", starting with a letter or digit',
  )
  .transform((s) => s.toLowerCase());

/** POST /agent/v1/enroll body. */
export const enrollRequestSchema = z.object({
  enrollSecret: z.string().min(1).max(512),
  machineId: z.string().min(8).max(256),
  hostname: z.string().min(1).max(255),
  osFamily: z.enum(['linux', 'windows', 'macos']),
  osName: z.string().max(255).default(''),
  osVersion: z.string().max(255).default(''),
  arch: z.string().max(64).default(''),
  agentVersion: z.string().max(64).optional(),
  protocolVersion: z.number().int().min(1).default(AGENT_PROTOCOL_VERSION),
  /** The endpoint's site: it gets exactly one `site:<site>` tag (replacing an older one). Left out: the tag is kept as it is. */
  site: siteSchema.optional(),
});
export type EnrollRequest = z.input<typeof enrollRequestSchema>;

/**
 * POST /agent/v1/enroll response. The node key is shown once; the server keeps only its hash.
 *
 * Enrolling a machine id that is already enrolled needs that endpoint's current node key (sent as
 * `Authorization: Bearer <node key>`: the key is rotated) or an admin's approval. Without the key the answer is
 * 202 with `pending: true`: the node key is issued but refused (403, ENROLLMENT_PENDING) until an admin runs
 * `patchops agents approve <endpoint>`; the endpoint's current agent keeps its key and its jobs meanwhile.
 */
export const enrollResponseSchema = z.object({
  endpointId: z.string(),
  nodeKey: z.string(),
  /** True when the key waits for an admin's approval (re-enrolment of a known machine without its current key). */
  pending: z.boolean().optional(),
  /** What the agent (and the person reading its log) should know, e.g. how to get a pending enrolment approved. */
  message: z.string().optional(),
  /** SPKI PEM of the ed25519 key that signs repository manifests: pin it. */
  manifestSigningKey: z.string(),
  protocolVersion: z.number().int(),
  /** Seconds the agent should wait between polls when the server answers at once with nothing. */
  pollIntervalSeconds: z.number().int().min(1),
});
export type EnrollResponse = z.infer<typeof enrollResponseSchema>;

/** GET /agent/v1/jobs?wait=<s> response. */
export const pollResponseSchema = z.object({
  jobs: z.array(agentJobSchema),
  /** Distribution points of the agent's site, nearest first; the central server is the fallback. */
  distributionPoints: z.array(z.string()).default([]),
  /**
   * Present whenever distributionPoints is not empty: a short-lived token (src/shared/download-token.ts) the agent
   * sends to those points as `Authorization: Bearer <downloadToken>`. The node key goes to the central server only.
   */
  downloadToken: z.string().optional(),
  /**
   * The poll said `lost=1` and the server has now offered again what it had leased to this agent before it (in
   * `jobs`, if anything). Until an answer says so, the agent keeps saying `lost=1`: a busy server may end a poll
   * before it looked.
   */
  lostChecked: z.boolean().optional(),
});
export type PollResponse = z.infer<typeof pollResponseSchema>;

/**
 * GET /agent/v1/whoami response: who the Bearer credential belongs to. A distribution point learns its own name and
 * site with it, and `tokenKey`, the public key (SPKI PEM) that download tokens verify with; it checks downstream
 * points' tokens with it too (and passes the key on to them).
 */
export const whoamiResponseSchema = z.union([
  z.object({ kind: z.literal('agent'), endpointId: z.string(), site: z.string().nullable() }),
  z.object({
    kind: z.literal('distribution-point'),
    name: z.string(),
    site: z.string(),
    tokenKey: z.string().optional(),
  }),
]);
export type WhoamiResponse = z.infer<typeof whoamiResponseSchema>;

/** POST /agent/v1/jobs/:id/lease response: the job stays this agent's until then. */
export const leaseRenewalResponseSchema = z.object({ leaseExpiresAt: z.string() });
export type LeaseRenewalResponse = z.infer<typeof leaseRenewalResponseSchema>;

/** PUT /agent/v1/inventory body. */
export const inventorySchema = z.object({
  hostname: z.string().min(1).max(255).optional(),
  osName: z.string().max(255).optional(),
  osVersion: z.string().max(255).optional(),
  arch: z.string().max(64).optional(),
  agentVersion: z.string().max(64).optional(),
  pendingReboot: z.boolean().default(false),
  software: z
    .array(
      z.object({
        /** apt | dnf | zypper | windows | winget | macos | brew | other */
        source: z.string().min(1).max(32),
        name: z.string().min(1).max(512),
        version: z.string().max(256),
        vendor: z.string().max(256).optional(),
      }),
    )
    .max(100_000)
    .default([]),
});
export type Inventory = z.input<typeof inventorySchema>;

/** A manifest of the central repository: the signed body. */
export const manifestBodySchema = z.object({
  version: z.number().int().min(1),
  /** ISO time after which the manifest must not be trusted (freeze attack). */
  expiresAt: z.string(),
  files: z.array(
    z.object({
      name: z.string().min(1),
      sha256: z.string().regex(/^[0-9a-f]{64}$/),
      size: z.number().int().min(0),
    }),
  ),
});
export type ManifestBody = z.infer<typeof manifestBodySchema>;

/** GET /agent/v1/manifest response: `body` is the exact signed text (JSON of ManifestBody). */
export const signedManifestSchema = z.object({
  body: z.string(),
  /** base64 ed25519 signature over the UTF-8 bytes of body. */
  signature: z.string(),
  keyId: z.number().int(),
});
export type SignedManifest = z.infer<typeof signedManifestSchema>;

/** Error body of every gateway 4xx/5xx. */
export interface GatewayError {
  error: string;
  message: string;
}
